package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/node/internal/converge"
	"github.com/switchyard/switchyard/node/internal/dns"
	"github.com/switchyard/switchyard/node/internal/link"
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

// resolver runs the dns server in the namespace the host keeps (package converge). Its
// sockets belong to the namespace they were made in: when an apply had to
// make the namespace anew (someone deleted it), Update opens new ones there.
type resolver struct {
	app *converge.Host
	srv *dns.Server
	log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // Start's
	stop    context.CancelFunc
	serving unix.Stat_t // the namespace served
	busy    bool
}

func newResolver(app *converge.Host, s dnsSettings, log *slog.Logger) (*resolver, error) {
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
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx = ctx
	return r.listen()
}

// listen (r.mu held) ensures the namespace and serves in it.
func (r *resolver) listen() error {
	path, err := r.app.EnsureDNS(r.ctx)
	if err != nil {
		return fmt.Errorf("dns namespace: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	udp, tcp, err := dns.ListenIn(path, "0.0.0.0:53")
	if err != nil {
		return err
	}
	if r.stop != nil {
		r.stop() // the old namespace's sockets
	}
	ctx, stop := context.WithCancel(r.ctx)
	r.stop, r.serving = stop, st
	go func() {
		if err := r.srv.Serve(ctx, udp, tcp); err != nil {
			r.log.Error("node-local DNS resolver stopped", "err", err)
		}
	}()
	r.log.Info("node-local DNS resolver", "netns", path, "upstreams", r.srv.Upstreams())
	return nil
}

// Update takes prog's names, and serves in the namespace again if it was
// made anew (in the background: the agent's loop never waits for it).
func (r *resolver) Update(prog *openapi.Program) {
	r.srv.Update(prog)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || r.busy {
		return // not started yet, or already moving
	}
	var st unix.Stat_t
	err := unix.Stat(r.app.DNSPath(), &st)
	if err != nil || (st.Dev == r.serving.Dev && st.Ino == r.serving.Ino) {
		return
	}
	r.busy = true
	go func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.busy = false
		if err := r.listen(); err != nil {
			r.log.Error("node-local DNS resolver: the namespace was made anew and cannot be served", "err", err)
		}
	}()
}

func (r *resolver) Collectors() []prometheus.Collector { return r.srv.Collectors() }
