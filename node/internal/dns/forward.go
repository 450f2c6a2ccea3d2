package dns

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// forwarder sends names the resolver does not own to the upstreams, in
// order, from the agent's own namespace, over the transport the query came
// by (a truncated UDP answer is passed on: the client retries over TCP).
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	failures  *prometheus.CounterVec
}

// forward returns the first upstream answer to r, or nil when none came
// in time.
func (f *forwarder) forward(r *dns.Msg, tcp bool) *dns.Msg {
	c := &dns.Client{Net: "udp", Timeout: f.timeout}
	if tcp {
		c.Net = "tcp"
	}
	q := r.Copy()
	for _, u := range f.upstreams {
		resp, _, err := c.Exchange(q, u)
		if err == nil && resp != nil && resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused {
			return resp
		}
		f.failures.WithLabelValues(u).Inc()
	}
	return nil
}

// DefaultUpstreams are the nameservers of the host's /etc/resolv.conf.
func DefaultUpstreams() ([]string, error) {
	return upstreamsFrom("/etc/resolv.conf")
}

func upstreamsFrom(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("upstream resolvers: %w (set SWITCHYARD_DNS_UPSTREAM)", err)
	}
	port := cc.Port
	if port == "" {
		port = "53"
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("upstream resolvers: %s names no nameserver (set SWITCHYARD_DNS_UPSTREAM)", path)
	}
	return out, nil
}

// ParseUpstreams reads a comma-separated list of host:port (a host alone
// means port 53).
func ParseUpstreams(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		host, port, err := net.SplitHostPort(f)
		if err != nil {
			host, port = f, "53"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || net.ParseIP(host) == nil {
			return nil, fmt.Errorf("upstream %q: want an IP address and port, e.g. 192.0.2.53:53", f)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}
