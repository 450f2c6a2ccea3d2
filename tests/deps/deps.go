//go:build tools

// Package deps pins the modules Switchyard builds on, so that `go mod tidy`
// keeps them while the code that uses them is being written. It is never
// compiled into a binary.
package deps

import (
	_ "github.com/containernetworking/cni/pkg/skel"
	_ "github.com/containernetworking/plugins/pkg/ns"
	_ "github.com/getkin/kin-openapi/openapi3filter"
	_ "github.com/getkin/kin-openapi/routers/gorillamux"
	_ "github.com/gin-gonic/gin"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/miekg/dns"
	_ "github.com/ovn-org/libovsdb/client"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/safchain/ethtool"
	_ "github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "k8s.io/apimachinery/pkg/labels"
)
