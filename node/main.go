// Command switchyard-agent is the Switchyard node agent. It runs on every
// host (in the lab: inside the host's network namespace), registers the host
// with the controller, and applies the host's program to Open vSwitch and
// the kernel: bridges, tunnels, container veths and flows.
//
// Every flag has an environment variable; see README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/node/internal/agent"
	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func main() {
	var (
		controller = flag.String("controller", env("SWITCHYARD_CONTROLLER_URL", "http://127.0.0.1:8080"), "controller URL (SWITCHYARD_CONTROLLER_URL)")
		host       = flag.String("host", env("SWITCHYARD_HOST", hostname()), "this host's name (SWITCHYARD_HOST)")
		token      = flag.String("token", env("SWITCHYARD_NODE_TOKEN", ""), "node token scoped to this host (SWITCHYARD_NODE_TOKEN)")
		ovsdb      = flag.String("ovsdb", env("SWITCHYARD_OVSDB", "unix:/var/run/openvswitch/db.sock"), "OVSDB endpoint (SWITCHYARD_OVSDB)")
		rundir     = flag.String("ovs-rundir", env("SWITCHYARD_OVS_RUNDIR", "/var/run/openvswitch"), "OVS run directory holding <bridge>.mgmt (SWITCHYARD_OVS_RUNDIR)")
		datapath   = flag.String("datapath", env("SWITCHYARD_DATAPATH", "netdev"), "netdev (userspace) or system (kernel) (SWITCHYARD_DATAPATH)")
		tunnel     = flag.String("tunnel", env("SWITCHYARD_TUNNEL_TYPE", openapi.TunnelGeneve), "geneve or vxlan (SWITCHYARD_TUNNEL_TYPE)")
		iface      = flag.String("underlay-iface", env("SWITCHYARD_UNDERLAY_IFACE", ""), "interface tunnels leave by (SWITCHYARD_UNDERLAY_IFACE)")
		address    = flag.String("underlay-address", env("SWITCHYARD_UNDERLAY_ADDRESS", ""), "this host's underlay address with prefix length, e.g. 192.168.200.11/24 (SWITCHYARD_UNDERLAY_ADDRESS)")
		sandbox    = flag.String("sandbox-prefix", env("SWITCHYARD_SANDBOX_PREFIX", ""), "prefix of managed sandbox namespace names (SWITCHYARD_SANDBOX_PREFIX)")
		netnsDir   = flag.String("netns-dir", env("SWITCHYARD_NETNS_DIR", "/run/netns"), "directory a container's netns path must resolve beneath; managed sandboxes live there too (SWITCHYARD_NETNS_DIR)")
		resync     = flag.Duration("resync", envDuration("SWITCHYARD_RESYNC_INTERVAL", 30*time.Second), "how often to check the host for drift (SWITCHYARD_RESYNC_INTERVAL)")
		heartbeat  = flag.Duration("heartbeat", envDuration("SWITCHYARD_HEARTBEAT_INTERVAL", 5*time.Second), "how often to report (SWITCHYARD_HEARTBEAT_INTERVAL)")
		level      = flag.String("log-level", env("SWITCHYARD_LOG_LEVEL", "info"), "debug, info, warn or error (SWITCHYARD_LOG_LEVEL)")
	)
	flag.Parse()
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(*level)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("host", *host)
	slog.SetDefault(log)

	cfg := agent.Config{ControllerURL: *controller, Host: *host, Token: *token, TunnelType: *tunnel,
		Resync: *resync, Heartbeat: *heartbeat, Log: log}
	if err := underlay(&cfg, *iface, *address); err != nil {
		fail(err)
	}
	if cfg.Token == "" {
		fail(fmt.Errorf("no node token: set SWITCHYARD_NODE_TOKEN (create one with POST /api/v1/tokens, role node, host %s)", *host))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := ovs.New(ctx, ovs.Options{DB: *ovsdb, RunDir: *rundir, Datapath: *datapath, SandboxPrefix: *sandbox, NetnsDir: *netnsDir, Logger: log})
	if err != nil {
		fail(fmt.Errorf("open vswitch: %w", err))
	}
	defer app.Close()
	if err := agent.New(cfg, ovsDatapath{app}).Run(ctx); err != nil && ctx.Err() == nil {
		fail(err)
	}
	log.Info("agent stopped; the datapath keeps running as last applied")
}

// underlay reads the underlay interface and address settings.
func underlay(cfg *agent.Config, iface, address string) error {
	if address == "" {
		return fmt.Errorf("set SWITCHYARD_UNDERLAY_ADDRESS to this host's tunnel endpoint address, e.g. 192.168.200.11/24")
	}
	p, err := netip.ParsePrefix(address)
	if err != nil {
		a, err2 := netip.ParseAddr(address)
		if err2 != nil {
			return fmt.Errorf("SWITCHYARD_UNDERLAY_ADDRESS %q: want an address with prefix length, e.g. 192.168.200.11/24", address)
		}
		p = netip.PrefixFrom(a, 32)
	}
	cfg.Address, cfg.UnderlayIface, cfg.UnderlayPrefix = p.Addr(), iface, p
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "switchyard-agent:", err)
	os.Exit(1)
}

// datapath adapts the OVS applier to what the agent loop needs.
type ovsDatapath struct{ a *ovs.Applier }

func (d ovsDatapath) EnsureUnderlay(ctx context.Context, iface string, addr netip.Prefix) error {
	return d.a.EnsureUnderlay(ctx, iface, addr)
}

func (d ovsDatapath) NewGeneration(ctx context.Context) (uint16, error) {
	return d.a.NewGeneration(ctx)
}

func (d ovsDatapath) Apply(ctx context.Context, p *openapi.Program) (agent.Result, error) {
	r, err := d.a.Apply(ctx, p)
	sum := fmt.Sprintf("links:%d ovsdb-ops:%d openflow:%s +%d/-%d dropped:%d took:%s",
		len(r.LinkChanges), r.OVSDBOps, r.OpenFlow, r.FlowsAdded, r.FlowsRemoved, len(r.Dropped), r.Timing.Total)
	return agent.Result{Ports: r.Ports, Degraded: r.Degraded(), Summary: sum}, err
}

func (d ovsDatapath) Observe(ctx context.Context) (agent.Observation, error) {
	o, err := d.a.Observe(ctx)
	return agent.Observation{Ports: o.Ports, Drift: o.Drift}, err
}
