// Command switchyard-agent is the Switchyard node agent. It runs on every
// host (in the lab: inside the host's network namespace), registers the host
// with the controller, and applies the host's program to Open vSwitch and
// the kernel: bridges, tunnels, container veths and flows.
//
// Every flag has an environment variable; see README.md. A setting that
// cannot be parsed stops the agent with a message naming it: it never falls
// back to a default.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/node/internal/agent"
	"github.com/switchyard/switchyard/node/internal/cniproto"
	"github.com/switchyard/switchyard/node/internal/cniserver"
	"github.com/switchyard/switchyard/node/internal/converge"
	"github.com/switchyard/switchyard/node/internal/gateway"
	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// settings is the agent's whole configuration, as parsed from flags and
// environment variables by parseSettings.
type settings struct {
	Agent    agent.Config
	OVS      converge.Options
	DNS      dnsSettings
	LogLevel slog.Level
	// Gateway: external access through the host (package gateway).
	Gateway bool
	// CNISocket, when set, is where the CNI server listens for the
	// switchyard-cni plugin (package cniserver); CNIStateDir keeps its
	// state.
	CNISocket, CNIStateDir string
}

// parseSettings reads the settings from args (without the program name) and
// getenv. A flag wins over its environment variable; a value that does not
// parse is an error naming the variable (and flag).
func parseSettings(args []string, getenv func(string) string) (settings, error) {
	var s settings
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("switchyard-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	str := func(flagName, envName, def, usage string) *string {
		return fs.String(flagName, env(envName, def), usage+" ("+envName+")")
	}
	var (
		controller = str("controller", "SWITCHYARD_CONTROLLER_URL", "http://127.0.0.1:8080", "controller URL")
		host       = str("host", "SWITCHYARD_HOST", hostname(), "this host's name")
		token      = str("token", "SWITCHYARD_NODE_TOKEN", "", "node token scoped to this host")
		ovsdb      = str("ovsdb", "SWITCHYARD_OVSDB", "unix:/var/run/openvswitch/db.sock", "OVSDB endpoint")
		rundir     = str("ovs-rundir", "SWITCHYARD_OVS_RUNDIR", "/var/run/openvswitch", "OVS run directory holding <bridge>.mgmt")
		datapath   = str("datapath", "SWITCHYARD_DATAPATH", "netdev", "netdev (userspace) or system (kernel)")
		tunnel     = str("tunnel", "SWITCHYARD_TUNNEL_TYPE", openapi.TunnelGeneve, "geneve or vxlan")
		iface      = str("underlay-iface", "SWITCHYARD_UNDERLAY_IFACE", "", "interface tunnels leave by")
		address    = str("underlay-address", "SWITCHYARD_UNDERLAY_ADDRESS", "", "this host's underlay address with prefix length, e.g. 192.168.200.11/24")
		sandbox    = str("sandbox-prefix", "SWITCHYARD_SANDBOX_PREFIX", "", "prefix of managed sandbox namespace names")
		netnsDir   = str("netns-dir", "SWITCHYARD_NETNS_DIR", "/run/netns", "directory a container's netns path must resolve beneath; managed sandboxes live there too")
		resync     = str("resync", "SWITCHYARD_RESYNC_INTERVAL", "30s", "how often to check the host for drift")
		heartbeat  = str("heartbeat", "SWITCHYARD_HEARTBEAT_INTERVAL", "5s", "how often to report")
		metrics    = str("metrics", "SWITCHYARD_AGENT_METRICS", "", "address to serve Prometheus metrics on, e.g. 127.0.0.1:9464 (empty: off)")
		level      = str("log-level", "SWITCHYARD_LOG_LEVEL", "info", "debug, info, warn or error")
		dnsOn      = str("dns", "SWITCHYARD_DNS", "on", "node-local DNS resolver: on or off")
		dnsUp      = str("dns-upstream", "SWITCHYARD_DNS_UPSTREAM", "", "comma-separated upstream resolvers host:port (empty: /etc/resolv.conf's)")
		dnsNetns   = str("dns-netns", "SWITCHYARD_DNS_NETNS", "", "name of the agent's DNS namespace (empty: sydns-<12 hex of sha256(host)>)")
		logRate    = str("policy-log-rate", "SWITCHYARD_POLICY_LOG_RATE", strconv.Itoa(ovs.DefaultPolicyLogRate), "at most this many logged connections per second (the log meter's rate)")
		rejectRate = str("reject-rate", "SWITCHYARD_REJECT_RATE", strconv.Itoa(ovs.DefaultRejectRate), "at most this many rejected connections per second are answered (the reject meter's rate)")
		gatewayOn  = str("gateway", "SWITCHYARD_GATEWAY", "on", "external access through the host (gateway port sygw0, nftables table switchyard): on or off")
		cniSocket  = str("cni-socket", cniproto.EnvSocket, "", "unix socket for the switchyard-cni plugin, e.g. "+cniproto.DefaultSocket+" (empty: no CNI server)")
		cniState   = str("cni-state-dir", "SWITCHYARD_CNI_STATE_DIR", "/var/lib/switchyard/cni", "where the CNI server keeps past addresses and queued deletes")
		caFile     = str("ca-file", client.EnvCAFile, "", "PEM file of the CA that signs the controller's certificate (empty: the system's roots)")
		serverName = str("tls-server-name", client.EnvTLSServerName, "", "name to verify in the controller's certificate (empty: the URL's host)")
		insecure   = str("insecure-http", client.EnvInsecureHTTP, "0", "1 allows a plain http:// controller URL to another host than loopback")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if err = s.LogLevel.UnmarshalText([]byte(strings.ToUpper(*level))); err != nil {
		return s, fmt.Errorf("SWITCHYARD_LOG_LEVEL (-log-level) %q: want debug, info, warn or error", *level)
	}
	s.Agent = agent.Config{ControllerURL: *controller, Host: *host, Token: *token, TunnelType: *tunnel, MetricsListen: *metrics}
	sec := client.Security{CAFile: *caFile, ServerName: *serverName}
	if sec.InsecureHTTP, err = client.ParseInsecureHTTP(*insecure); err != nil {
		return s, fmt.Errorf("%w (-insecure-http)", err)
	}
	if err := sec.CheckURL(*controller); err != nil {
		return s, fmt.Errorf("SWITCHYARD_CONTROLLER_URL (-controller): %w", err)
	}
	if s.Agent.API, err = client.NewSecure(*controller, *token, sec); err != nil {
		return s, fmt.Errorf("%w (-ca-file)", err) // the CA file: it names the variable
	}
	for _, d := range []struct {
		env, flag, val string
		to             *time.Duration
	}{
		{"SWITCHYARD_RESYNC_INTERVAL", "resync", *resync, &s.Agent.Resync},
		{"SWITCHYARD_HEARTBEAT_INTERVAL", "heartbeat", *heartbeat, &s.Agent.Heartbeat},
	} {
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return s, fmt.Errorf("%s (-%s) %q: want a positive duration such as 30s", d.env, d.flag, d.val)
		}
		*d.to = v
	}
	if err := underlay(&s.Agent, *iface, *address); err != nil {
		return s, err
	}
	if s.Agent.Token == "" {
		return s, fmt.Errorf("no node token: set SWITCHYARD_NODE_TOKEN (create one with POST /api/v1/tokens, role node, host %s)", *host)
	}
	rate, err := strconv.Atoi(*logRate)
	if err != nil || rate < 1 || rate > 1_000_000 {
		return s, fmt.Errorf("SWITCHYARD_POLICY_LOG_RATE (-policy-log-rate) %q: want a number of connections per second from 1 to 1000000", *logRate)
	}
	rrate, err := strconv.Atoi(*rejectRate)
	if err != nil || rrate < 1 || rrate > 1_000_000 {
		return s, fmt.Errorf("SWITCHYARD_REJECT_RATE (-reject-rate) %q: want a number of packets per second from 1 to 1000000", *rejectRate)
	}
	s.CNISocket, s.CNIStateDir = *cniSocket, *cniState
	s.OVS = converge.Options{Options: ovs.Options{DB: *ovsdb, RunDir: *rundir, Datapath: *datapath,
		PolicyLogRate: rate, RejectRate: rrate}, SandboxPrefix: *sandbox, NetnsDir: *netnsDir}
	if s.DNS, err = parseDNS(*dnsOn, *dnsUp, *dnsNetns, *host); err != nil {
		return s, err
	}
	if s.DNS.On {
		s.OVS.DNSNetns, s.OVS.ResolvConfDir = s.DNS.Netns, resolvConfDir
	}
	switch *gatewayOn {
	case "on":
		s.Gateway = true
	case "off":
	default:
		return s, fmt.Errorf("SWITCHYARD_GATEWAY (-gateway) %q: want on or off", *gatewayOn)
	}
	return s, nil
}

// defaultMemoryLimit is the agent's soft memory limit (runtime/debug
// SetMemoryLimit) unless GOMEMLIMIT sets one: the Go collector then runs
// sooner than its doubling of the live heap would, so a host of 1,000
// containers (about 45 MB live) stays under 100 MB resident
// (docs/benchmarks-convergence.md).
const defaultMemoryLimit = 80 << 20

// memoryLimit is the soft limit main sets: 0 when GOMEMLIMIT is set (the
// Go runtime read it already; "off" switches the limit off).
func memoryLimit(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	return defaultMemoryLimit
}

func main() {
	if l := memoryLimit(os.Getenv); l > 0 {
		debug.SetMemoryLimit(l)
	}
	s, err := parseSettings(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fail(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: s.LogLevel})).With("host", s.Agent.Host)
	slog.SetDefault(log)
	s.Agent.Log, s.OVS.Logger = log, log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s.Gateway {
		// Egress IPs go on the underlay bridge's port, which holds the
		// host's address when the agent builds the underlay (netdev).
		ul := ""
		if s.Agent.UnderlayIface != "" && s.OVS.Datapath != "system" {
			ul = cmp.Or(s.OVS.UnderlayBridge, "br-phy")
		}
		if gw, err := gateway.New(ul); err != nil {
			// No nft on this host: the overlay works without external
			// access; flows naming the gateway port are left out.
			log.Warn("external access is off (SWITCHYARD_GATEWAY=off silences this)", "err", err)
		} else {
			s.OVS.Gateway = gw
		}
	}
	app, err := converge.New(ctx, s.OVS)
	if err != nil {
		fail(fmt.Errorf("open vswitch: %w", err))
	}
	defer app.Close()
	obs := app.Switch().PolicyObserver()
	defer obs.Close()
	s.Agent.Observer = obs
	s.Agent.NetnsPath = app.NetnsPath
	s.Agent.Tracer = app.Switch()
	if s.DNS.On {
		r, err := newResolver(app, s.DNS, log)
		if err != nil {
			fail(err)
		}
		s.Agent.DNS = r
	}
	dp := ovsDatapath{a: app}
	if s.CNISocket != "" {
		progs := &cniserver.Programs{Check: app.CheckPort}
		srv, err := cniserver.New(cniserver.Config{Socket: s.CNISocket, StateDir: s.CNIStateDir, Host: s.Agent.Host,
			API: s.Agent.API, Local: progs, Log: log})
		if err != nil {
			fail(err)
		}
		dp.applied = progs.Applied
		go func() {
			if err := srv.Serve(ctx); err != nil {
				log.Error("cni server stopped", "err", err)
			}
		}()
	}
	if err := agent.New(s.Agent, dp).Run(ctx); err != nil && ctx.Err() == nil {
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

// ovsDatapath adapts the host's convergence (package converge) to what the
// agent loop needs; applied, when set, hears of every program applied
// without error (the CNI server).
type ovsDatapath struct {
	a       *converge.Host
	applied func(*openapi.Program)
}

func (d ovsDatapath) EnsureUnderlay(ctx context.Context, iface string, addr netip.Prefix) error {
	return d.a.EnsureUnderlay(ctx, iface, addr)
}

func (d ovsDatapath) NewGeneration(ctx context.Context) (uint16, error) {
	return d.a.NewGeneration(ctx)
}

func (d ovsDatapath) Apply(ctx context.Context, p *openapi.Program, change *openapi.ProgramDelta) (agent.Result, error) {
	r, err := d.a.ApplyDelta(ctx, p, change)
	if err == nil && d.applied != nil {
		d.applied(p)
	}
	sum := fmt.Sprintf("links:%d ovsdb-ops:%d openflow:%s +%d/-%d rendered:%d dropped:%d took:%s (links %s ovsdb %s ofports %s openflow %s)",
		len(r.LinkChanges), r.OVSDBOps, r.OpenFlow, r.FlowsAdded, r.FlowsRemoved, r.FlowsRendered, len(r.Dropped), r.Timing.Total,
		r.Timing.Links, r.Timing.OVSDB, r.Timing.OFPorts, r.Timing.OpenFlow)
	if r.PortsAfterFlows {
		sum += " ports:after-flows"
	}
	return agent.Result{Ports: r.Ports, Degraded: r.Degraded(), Summary: sum, Flows: r.Flows}, err
}

func (d ovsDatapath) Restarts() <-chan string { return d.a.Switch().Restarts() }

func (d ovsDatapath) Observe(ctx context.Context) (agent.Observation, error) {
	o, err := d.a.Observe(ctx)
	return agent.Observation{Ports: o.Ports, Drift: o.Drift}, err
}
