// Package config reads the controller's settings from SWITCHYARD_* environment
// variables, with defaults that make `make run` work out of the box. It must
// not open connections or start anything.
package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Config is the controller's configuration.
type Config struct {
	DatabaseURL      string
	Listen           string
	AdminToken       string
	ServiceCIDR      netip.Prefix
	HeartbeatTimeout time.Duration
	LogLevel         slog.Level
}

// FromEnv reads the configuration. getenv is os.Getenv outside tests.
func FromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{
		DatabaseURL: getenv("SWITCHYARD_DATABASE_URL"),
		Listen:      or(getenv("SWITCHYARD_LISTEN"), "127.0.0.1:8080"),
		AdminToken:  getenv("SWITCHYARD_ADMIN_TOKEN"),
	}
	if c.DatabaseURL == "" {
		return c, fmt.Errorf("SWITCHYARD_DATABASE_URL is not set (make run sets it to a project-local PostgreSQL)")
	}
	p, err := netip.ParsePrefix(or(getenv("SWITCHYARD_SERVICE_CIDR"), "10.96.0.0/16"))
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return c, fmt.Errorf("SWITCHYARD_SERVICE_CIDR: %q is not an IPv4 CIDR", getenv("SWITCHYARD_SERVICE_CIDR"))
	}
	c.ServiceCIDR = p
	c.HeartbeatTimeout, err = time.ParseDuration(or(getenv("SWITCHYARD_HEARTBEAT_TIMEOUT"), "15s"))
	if err != nil || c.HeartbeatTimeout <= 0 {
		return c, fmt.Errorf("SWITCHYARD_HEARTBEAT_TIMEOUT: %q is not a duration", getenv("SWITCHYARD_HEARTBEAT_TIMEOUT"))
	}
	if err := c.LogLevel.UnmarshalText([]byte(strings.ToUpper(or(getenv("SWITCHYARD_LOG_LEVEL"), "info")))); err != nil {
		return c, fmt.Errorf("SWITCHYARD_LOG_LEVEL: %w", err)
	}
	return c, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
