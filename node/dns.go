package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/node/internal/dns"
	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
)

// resolvConfDir is where managed sandboxes get their resolv.conf (where
// `ip netns exec` looks).
const resolvConfDir = "/etc/netns"

// dnsSettings configure the node-local resolver.
type dnsSettings struct {
	On        bool
	Upstreams []string // empty: the host's /etc/resolv.conf nameservers
	Netns     string
}

func parseDNS(on, upstreams, netns, host string) (dnsSettings, error) {
	var d dnsSettings
	switch on {
	case "on":
		d.On = true
	case "off":
		return d, nil
	default:
		return d, fmt.Errorf("SWITCHYARD_DNS (-dns) %q: want on or off", on)
	}
	ups, err := dns.ParseUpstreams(upstreams)
	if err != nil {
		return d, fmt.Errorf("SWITCHYARD_DNS_UPSTREAM (-dns-upstream): %w", err)
	}
	d.Upstreams, d.Netns = ups, netns
	if d.Netns == "" {
		d.Netns = link.DNSNetnsName(host)
	}
	return d, nil
}

// resolver runs the dns server in the namespace the applier keeps.
type resolver struct {
	app *ovs.Applier
	srv *dns.Server
	log *slog.Logger
}

func newResolver(app *ovs.Applier, s dnsSettings, log *slog.Logger) (*resolver, error) {
	srv, err := dns.New(dns.Config{Upstreams: s.Upstreams})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if len(srv.Upstreams()) == 0 {
		log.Warn("no upstream resolver (SWITCHYARD_DNS_UPSTREAM unset, none in /etc/resolv.conf): names outside the networks get SERVFAIL")
	}
	return &resolver{app: app, srv: srv, log: log}, nil
}

func (r *resolver) Start(ctx context.Context) error {
	path, err := r.app.EnsureDNS(ctx)
	if err != nil {
		return fmt.Errorf("dns namespace: %w", err)
	}
	udp, tcp, err := dns.ListenIn(path, "0.0.0.0:53")
	if err != nil {
		return err
	}
	go func() {
		if err := r.srv.Serve(ctx, udp, tcp); err != nil {
			r.log.Error("node-local DNS resolver stopped", "err", err)
		}
	}()
	r.log.Info("node-local DNS resolver", "netns", path, "upstreams", r.srv.Upstreams())
	return nil
}

func (r *resolver) Update(prog *openapi.Program)       { r.srv.Update(prog) }
func (r *resolver) Collectors() []prometheus.Collector { return r.srv.Collectors() }
