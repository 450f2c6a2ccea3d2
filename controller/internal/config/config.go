// Package config reads the controller's settings from SWITCHYARD_* environment
// variables, with defaults that make `make run` work out of the box. It must
// not open connections or start anything.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/switchyard/switchyard/openapi/client"
)

// Config is the controller's configuration.
type Config struct {
	DatabaseURL      string
	Listen           string
	AdminToken       string
	ServiceCIDR      netip.Prefix
	HeartbeatTimeout time.Duration
	LogLevel         slog.Level
	// EventRetention keeps the event log's entries this long (0: no age
	// limit); EventRetentionRevisions keeps those of this many latest
	// revisions (0: no count limit). An entry goes once either limit
	// passes it.
	EventRetention          time.Duration
	EventRetentionRevisions int64
	// DNSDomain is the domain of container and service names:
	// <name>.<network>.<domain>.
	DNSDomain string
	// TLSCert and TLSKey are the PEM files of the certificate (chain) and
	// key the API is served with over HTTPS; both empty: plain HTTP, which
	// Listen must then keep on loopback unless InsecureHTTP.
	TLSCert, TLSKey string
	InsecureHTTP    bool
	// MaxInflightWrites is how many writes one replica runs at once, and
	// AdmissionWait how long a write waits for a slot before its 429
	// (docs/failure-matrix.md row 8).
	MaxInflightWrites int
	AdmissionWait     time.Duration
	// DBAcquireTimeout bounds a write's wait for a database connection
	// before it answers 503; DBConnectTimeout bounds one connection
	// attempt to one host of the database URL (unless the URL sets
	// connect_timeout). See docs/failure-matrix-pg.md.
	DBAcquireTimeout, DBConnectTimeout time.Duration
	// DebugListen, when set, is a loopback HOST:PORT where Go's profiler
	// is served (/debug/pprof/, no token: loopback only), for "where does
	// the controller's CPU go". Empty: not served.
	DebugListen string
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
	c.EventRetention, err = time.ParseDuration(or(getenv("SWITCHYARD_EVENT_RETENTION"), "24h"))
	if err != nil || c.EventRetention < 0 {
		return c, fmt.Errorf("SWITCHYARD_EVENT_RETENTION: %q is not a duration of 0 or more (0 keeps events of any age)", getenv("SWITCHYARD_EVENT_RETENTION"))
	}
	c.EventRetentionRevisions, err = strconv.ParseInt(or(getenv("SWITCHYARD_EVENT_RETENTION_REVISIONS"), "0"), 10, 64)
	if err != nil || c.EventRetentionRevisions < 0 {
		return c, fmt.Errorf("SWITCHYARD_EVENT_RETENTION_REVISIONS: %q is not a count of 0 or more (0 sets no count limit)", getenv("SWITCHYARD_EVENT_RETENTION_REVISIONS"))
	}
	c.DNSDomain = strings.TrimSuffix(strings.ToLower(or(getenv("SWITCHYARD_DNS_DOMAIN"), "switchyard.local")), ".")
	if err := checkDNSDomain(c.DNSDomain); err != nil {
		return c, fmt.Errorf("SWITCHYARD_DNS_DOMAIN: %q %w", getenv("SWITCHYARD_DNS_DOMAIN"), err)
	}
	if err := c.tls(getenv); err != nil {
		return c, err
	}
	c.MaxInflightWrites, err = strconv.Atoi(or(getenv("SWITCHYARD_MAX_INFLIGHT_WRITES"), "64"))
	if err != nil || c.MaxInflightWrites < 1 {
		return c, fmt.Errorf("SWITCHYARD_MAX_INFLIGHT_WRITES: %q is not a count of 1 or more", getenv("SWITCHYARD_MAX_INFLIGHT_WRITES"))
	}
	c.AdmissionWait, err = time.ParseDuration(or(getenv("SWITCHYARD_ADMISSION_WAIT"), "1s"))
	if err != nil || c.AdmissionWait < 0 {
		return c, fmt.Errorf("SWITCHYARD_ADMISSION_WAIT: %q is not a duration of 0 or more", getenv("SWITCHYARD_ADMISSION_WAIT"))
	}
	for _, d := range []struct {
		env, def string
		to       *time.Duration
	}{{"SWITCHYARD_DB_ACQUIRE_TIMEOUT", "1s", &c.DBAcquireTimeout}, {"SWITCHYARD_DB_CONNECT_TIMEOUT", "2s", &c.DBConnectTimeout}} {
		if *d.to, err = time.ParseDuration(or(getenv(d.env), d.def)); err != nil || *d.to <= 0 {
			return c, fmt.Errorf("%s: %q is not a positive duration", d.env, getenv(d.env))
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(strings.ToUpper(or(getenv("SWITCHYARD_LOG_LEVEL"), "info")))); err != nil {
		return c, fmt.Errorf("SWITCHYARD_LOG_LEVEL: %w", err)
	}
	if c.DebugListen = getenv("SWITCHYARD_DEBUG_LISTEN"); c.DebugListen != "" {
		host, _, err := net.SplitHostPort(c.DebugListen)
		if err != nil || !client.IsLoopback(host) {
			return c, fmt.Errorf("SWITCHYARD_DEBUG_LISTEN %q: want a loopback HOST:PORT (the profiler asks for no token)", c.DebugListen)
		}
	}
	return c, nil
}

// tls reads the TLS settings: a certificate goes with a key, and plain
// HTTP on an address other hosts reach must be asked for.
func (c *Config) tls(getenv func(string) string) error {
	c.TLSCert, c.TLSKey = getenv("SWITCHYARD_TLS_CERT"), getenv("SWITCHYARD_TLS_KEY")
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("SWITCHYARD_TLS_CERT and SWITCHYARD_TLS_KEY go together: set both (HTTPS) or neither (plain HTTP)")
	}
	var err error
	if c.InsecureHTTP, err = client.ParseInsecureHTTP(getenv(client.EnvInsecureHTTP)); err != nil {
		return err
	}
	if c.TLSCert != "" || c.InsecureHTTP {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("SWITCHYARD_LISTEN %q: want HOST:PORT", c.Listen)
	}
	if !client.IsLoopback(host) {
		return fmt.Errorf("SWITCHYARD_LISTEN %q is not a loopback address and no SWITCHYARD_TLS_CERT/SWITCHYARD_TLS_KEY are set: "+
			"tokens would cross the network in clear; serve HTTPS (docs/security.md) or set %s=1 to allow plain HTTP", c.Listen, client.EnvInsecureHTTP)
	}
	return nil
}

// MaxDNSDomain bounds the DNS domain so that every name under it,
// <name>.<network>.<domain> with 63-character labels, fits DNS's 253.
const MaxDNSDomain = 253 - 2*64

// checkDNSDomain validates a DNS domain: lower-case labels of letters,
// digits and '-', at most MaxDNSDomain characters.
func checkDNSDomain(d string) error {
	if len(d) > MaxDNSDomain {
		return fmt.Errorf("is longer than %d characters (names under it must fit 253)", MaxDNSDomain)
	}
	for _, label := range strings.Split(d, ".") {
		if errs := validation.IsDNS1123Label(label); len(errs) > 0 {
			return fmt.Errorf("is not a DNS name: label %q: %s", label, strings.Join(errs, "; "))
		}
	}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
