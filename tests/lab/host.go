package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Host is one simulated host: a network namespace with its own
// ovsdb-server and ovs-vswitchd and one veth into the underlay.
type Host struct {
	// Name is "h1", "h2", ...
	Name string
	// Netns is the host's namespace, "sy-<id>-<Name>".
	Netns string
	// Dir is this host's OVS_RUNDIR: conf.db, db.sock, *.pid, *.ctl, *.log
	// and the bridges' <bridge>.mgmt OpenFlow sockets.
	Dir string
	// DB is "unix:<Dir>/db.sock", what libovsdb and ovs-vsctl --db take.
	DB string
	// UnderlayIface is the host end of its underlay veth, inside Netns.
	UnderlayIface string
	// UnderlayPeer is the other end, inside the lab's Underlay namespace,
	// enslaved to the underlay bridge.
	UnderlayPeer string
	// UnderlayAddr is configured on UnderlayIface when the lab starts (link
	// up, lab MTU). Tests and agents may move it to a br-phy port.
	UnderlayAddr netip.Prefix

	lab *Lab
	mu  sync.Mutex
	// vswitchd and ovsdb are the running daemons (pid, start time).
	vswitchd, ovsdb manifestProc
}

// Env is the environment OVS commands of this host need (OVS_RUNDIR etc.).
func (h *Host) Env() []string {
	return []string{"OVS_RUNDIR=" + h.Dir, "OVS_LOGDIR=" + h.Dir, "OVS_DBDIR=" + h.Dir}
}

// Path returns a path inside the host's Dir, e.g. h.Path("br-int.mgmt").
func (h *Host) Path(name string) string { return filepath.Join(h.Dir, name) }

// MgmtSocket is the OpenFlow management socket of a bridge, as a target for
// ovs-ofctl or an OpenFlow client: "unix:<Dir>/<bridge>.mgmt".
func (h *Host) MgmtSocket(bridge string) string { return "unix:" + h.Path(bridge+".mgmt") }

// CtlSocket is ovs-vswitchd's unixctl socket (what ovs-appctl -t takes).
func (h *Host) CtlSocket() string { return h.Path("vswitchd.ctl") }

// VSwitchdPid is the pid of the host's ovs-vswitchd (0 when stopped).
func (h *Host) VSwitchdPid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vswitchd.Pid
}

// OVSDBPid is the pid of the host's ovsdb-server (0 when stopped).
func (h *Host) OVSDBPid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ovsdb.Pid
}

// Run runs a command inside the host namespace with the host's OVS env and
// returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	return runIn(ctx, h.Netns, h.Env(), name, args...)
}

// MustRun is Run with a 60 s timeout that fails the test on error.
func (h *Host) MustRun(t T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	return out
}

// VSCtl runs ovs-vsctl --db=<DB> args... in the host.
func (h *Host) VSCtl(t T, args ...string) string {
	t.Helper()
	return h.MustRun(t, "ovs-vsctl", append([]string{"--db=" + h.DB, "--timeout=30"}, args...)...)
}

// OFCtl runs ovs-ofctl -O OpenFlow15 args... in the host; bridge names
// resolve to <Dir>/<bridge>.mgmt through OVS_RUNDIR.
func (h *Host) OFCtl(t T, args ...string) string {
	t.Helper()
	return h.MustRun(t, "ovs-ofctl", append([]string{"-O", "OpenFlow15"}, args...)...)
}

// AppCtl runs ovs-appctl -t <Dir>/vswitchd.ctl args... in the host.
func (h *Host) AppCtl(t T, args ...string) string {
	t.Helper()
	return h.MustRun(t, "ovs-appctl", append([]string{"-t", h.CtlSocket()}, args...)...)
}

// OFPort returns the OpenFlow port number OVS gave an interface, waiting up
// to 10 s for it to be assigned.
func (h *Host) OFPort(t T, iface string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := strings.TrimSpace(h.VSCtl(t, "get", "Interface", iface, "ofport"))
		n, err := strconv.Atoi(out)
		if err == nil && n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: interface %s has ofport %q", h.Name, iface, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RestartOVS stops ovs-vswitchd by pid (SIGTERM, waits until gone) and
// starts it again on the same database. As on a real host, OpenFlow flows
// and the userspace datapath's state (conntrack, tunnel ARP cache) do not
// survive; OVSDB content does, and so do the internal ports' tap devices
// with their addresses (checked: br-phy keeps the underlay address).
func (h *Host) RestartOVS(t T) {
	t.Helper()
	if err := h.stopVSwitchd(); err != nil {
		t.Fatalf("%s: stopping ovs-vswitchd: %v", h.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.startVSwitchd(ctx); err != nil {
		t.Fatalf("%s: starting ovs-vswitchd: %v", h.Name, err)
	}
}

// RestartOVSDB stops this host's ovsdb-server by pid and starts it again on
// the same database file, as an upgrade or a crash-restart would; it
// returns once the new server answers. ovs-vswitchd keeps running (and
// forwarding) and reconnects by itself.
func (h *Host) RestartOVSDB(t T) {
	t.Helper()
	h.mu.Lock()
	p := h.ovsdb
	h.ovsdb = manifestProc{}
	h.mu.Unlock()
	if err := stopPid(p.Pid, p.Start, 10*time.Second); err != nil {
		t.Fatalf("%s: stopping ovsdb-server: %v", h.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.startOVSDB(ctx); err != nil {
		t.Fatalf("%s: starting ovsdb-server: %v", h.Name, err)
	}
}

// addHost makes host i: namespace, underlay veth, OVS daemons. It returns
// the host even on error, so that cleanup knows about what was started.
func (l *Lab) addHost(ctx context.Context, i int) (*Host, error) {
	addr, err := l.hostAddr(i)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("h%d", i)
	h := &Host{
		Name:          name,
		Netns:         l.Prefix() + name,
		Dir:           filepath.Join(l.Dir, name),
		UnderlayIface: "ul0",
		UnderlayPeer:  name,
		UnderlayAddr:  addr,
		lab:           l,
	}
	h.DB = "unix:" + h.Path("db.sock")
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return h, err
	}
	if err := l.addNetns(ctx, h.Netns); err != nil {
		return h, err
	}
	if err := l.plugUnderlay(ctx, h); err != nil {
		return h, err
	}
	if l.Management {
		b := MgmtSubnet.Addr().As4()
		b[3] = byte(10 + i)
		if err := l.plugVeth(ctx, mgmtBridge, h.Netns, "mg0", name+"m", netip.PrefixFrom(netip.AddrFrom4(b), MgmtSubnet.Bits())); err != nil {
			return h, err
		}
	}
	if err := h.startOVSDB(ctx); err != nil {
		return h, err
	}
	return h, h.startVSwitchd(ctx)
}

// plugUnderlay makes the veth pair between the host and the underlay
// bridge (see plugVeth).
func (l *Lab) plugUnderlay(ctx context.Context, h *Host) error {
	return l.plugVeth(ctx, l.UnderlayBridge, h.Netns, h.UnderlayIface, h.UnderlayPeer, h.UnderlayAddr)
}

// plugVeth joins namespace netns to bridge (in the underlay namespace): a veth pair made
// directly in the two namespaces (nothing in the root namespace), iface
// in netns, peer in the underlay, the lab's MTU and tx offload off on
// both ends (see LAB.md), then addrs on iface in that order (the first is
// the primary) and iface up.
func (l *Lab) plugVeth(ctx context.Context, bridge, netns, iface, peer string, addrs ...netip.Prefix) error {
	mtu := strconv.Itoa(l.MTU)
	steps := []struct {
		netns string
		args  []string
	}{
		{"", []string{"ip", "link", "add", "name", iface, "netns", netns, "mtu", mtu,
			"type", "veth", "peer", "name", peer, "netns", l.Underlay, "mtu", mtu}},
		{l.Underlay, []string{"ethtool", "-K", peer, "tx", "off"}},
		{l.Underlay, []string{"ip", "link", "set", peer, "master", bridge, "up"}},
		{netns, []string{"ethtool", "-K", iface, "tx", "off"}},
	}
	for _, a := range addrs {
		steps = append(steps, struct {
			netns string
			args  []string
		}{netns, []string{"ip", "addr", "add", a.String(), "dev", iface}})
	}
	steps = append(steps, struct {
		netns string
		args  []string
	}{netns, []string{"ip", "link", "set", iface, "up"}})
	for _, s := range steps {
		if _, err := runIn(ctx, s.netns, nil, s.args[0], s.args[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startOVSDB creates the database (first time only), starts ovsdb-server
// detached inside the host namespace and initializes the database.
func (h *Host) startOVSDB(ctx context.Context) error {
	db := h.Path("conf.db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		if _, err := run(ctx, h.Env(), "ovsdb-tool", "create", db, SchemaPath); err != nil {
			return err
		}
	}
	p, err := h.startDaemon(ctx, "ovsdb", "ovsdb-server", db, "--remote=punix:"+h.Path("db.sock"))
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.ovsdb = p
	h.mu.Unlock()
	_, err = h.Run(ctx, "ovs-vsctl", "--db="+h.DB, "--no-wait", "init")
	return err
}

// startVSwitchd starts ovs-vswitchd detached inside the host namespace and
// waits until it answers on its control socket.
func (h *Host) startVSwitchd(ctx context.Context) error {
	p, err := h.startDaemon(ctx, "vswitchd", "ovs-vswitchd", h.DB)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.vswitchd = p
	h.mu.Unlock()
	_, err = h.Run(ctx, "ovs-appctl", "-t", h.CtlSocket(), "version")
	return err
}

// startDaemon runs an OVS daemon with --detach and the pidfile, unixctl
// socket and log file <Dir>/<short>.{pid,ctl,log}, and records its pid.
func (h *Host) startDaemon(ctx context.Context, short, prog string, args ...string) (manifestProc, error) {
	pidfile := h.Path(short + ".pid")
	_ = os.Remove(pidfile)
	args = append(args,
		"--pidfile="+pidfile,
		"--unixctl="+h.Path(short+".ctl"),
		"--log-file="+h.Path(short+".log"),
		"--detach", "--no-chdir")
	if _, err := h.Run(ctx, prog, args...); err != nil {
		return manifestProc{}, err
	}
	pid, err := readPidfile(pidfile, 10*time.Second)
	if err != nil {
		return manifestProc{}, fmt.Errorf("%s pidfile: %w", prog, err)
	}
	name := h.Name + "/" + prog
	if err := h.lab.recordPid(name, pid); err != nil {
		return manifestProc{}, err
	}
	_, start, _ := procStat(pid)
	return manifestProc{Name: name, Pid: pid, Start: start}, nil
}

func (h *Host) stopVSwitchd() error {
	h.mu.Lock()
	p := h.vswitchd
	h.vswitchd = manifestProc{}
	h.mu.Unlock()
	return stopPid(p.Pid, p.Start, 10*time.Second)
}

// stopOVS stops ovs-vswitchd, then ovsdb-server, by pid, waiting for each.
func (h *Host) stopOVS() error {
	err := h.stopVSwitchd()
	h.mu.Lock()
	p := h.ovsdb
	h.ovsdb = manifestProc{}
	h.mu.Unlock()
	return errors.Join(err, stopPid(p.Pid, p.Start, 10*time.Second))
}
