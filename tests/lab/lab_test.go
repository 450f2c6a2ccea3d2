package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vni is the tunnel key the self-test's one network uses.
const vni = 5001

// container is a "container" of the self-test: a netns whose eth0 is a veth
// with its peer on br-int of its host.
type container struct {
	host   *Host
	netns  string
	port   string // host end of the veth, an OVS port on br-int
	ip     string
	mac    string
	ofport int
}

// TestRecipe proves the LAB.md recipe in Go the way the agent will use it:
// br-phy holding the underlay, br-int with a tunnel port, veth containers,
// flows by ovs-ofctl; then ping on one host and across hosts, and a TCP
// transfer across hosts, over geneve and over vxlan. Afterwards the lab
// must be gone: no namespace with its prefix, no live pid, no run dir.
func TestRecipe(t *testing.T) {
	for _, tunnel := range []string{"geneve", "vxlan"} {
		var l *Lab
		t.Run(tunnel, func(t *testing.T) {
			l = New(t, Options{Tunnel: tunnel})
			recipe(t, l)
		})
		if l != nil {
			assertGone(t, l)
		}
	}
}

func recipe(t *testing.T, l *Lab) {
	if l.Tunnel == "" || len(l.Hosts) != 2 {
		t.Fatalf("lab: tunnel %q, %d hosts", l.Tunnel, len(l.Hosts))
	}
	var all []*container
	for i, h := range l.Hosts {
		peer := l.Hosts[1-i]
		setupBridges(t, h, peer.UnderlayAddr.Addr().String(), l.Tunnel)
		for n := 1; n <= 2; n++ {
			all = append(all, addContainer(t, l, h, n))
		}
	}
	for _, c := range all {
		for _, o := range all {
			if o != c {
				mustRunIn(t, c.netns, "ip", "neigh", "replace", o.ip, "lladdr", o.mac, "dev", "eth0", "nud", "permanent")
			}
		}
	}
	for _, h := range l.Hosts {
		installFlows(t, h, all)
	}
	h1c1, h1c2, h2c1 := all[0], all[1], all[2]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("ping-same-host", func(t *testing.T) { assertPing(t, ctx, h1c1, h1c2) })
	t.Run("ping-across-hosts", func(t *testing.T) { assertPing(t, ctx, h1c1, h2c1) })
	t.Run("tcp-across-hosts", func(t *testing.T) { assertTCP(t, ctx, l, h1c1, h2c1) })
}

// setupBridges builds br-phy (the underlay veth plus the host's underlay
// address on its internal port) and br-int (secure, with one tunnel port).
func setupBridges(t *testing.T, h *Host, peerIP, tunnel string) {
	h.VSCtl(t, "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
		"--", "add-port", "br-phy", h.UnderlayIface)
	addr := h.UnderlayAddr.String()
	h.MustRun(t, "ip", "addr", "del", addr, "dev", h.UnderlayIface)
	h.MustRun(t, "ip", "addr", "add", addr, "dev", "br-phy")
	h.MustRun(t, "ip", "link", "set", "br-phy", "up")
	h.VSCtl(t, "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
		"--", "add-port", "br-int", "tun0", "--", "set", "interface", "tun0", "type="+tunnel,
		"options:remote_ip="+peerIP, "options:key=flow")
}

// addContainer makes container n of host h: netns, veth (made directly in
// the two namespaces), tx offload off on both ends, MTU 1400, address.
func addContainer(t *testing.T, l *Lab, h *Host, n int) *container {
	hi := h.Name[1:]
	c := &container{
		host:  h,
		netns: l.NewNetns(t, h.Name+"c"+fmt.Sprint(n)),
		port:  fmt.Sprintf("v%sc%d", h.Name, n),
		ip:    fmt.Sprintf("10.0.0.%s%d", hi, n),
		mac:   fmt.Sprintf("02:00:00:00:%02s:%02d", hi, n),
	}
	h.MustRun(t, "ip", "link", "add", "name", c.port, "mtu", "1400", "type", "veth",
		"peer", "name", "eth0", "netns", c.netns, "mtu", "1400")
	h.MustRun(t, "ethtool", "-K", c.port, "tx", "off")
	h.MustRun(t, "ip", "link", "set", c.port, "up")
	mustRunIn(t, c.netns, "ethtool", "-K", "eth0", "tx", "off")
	mustRunIn(t, c.netns, "ip", "link", "set", "eth0", "address", c.mac)
	mustRunIn(t, c.netns, "ip", "addr", "add", c.ip+"/24", "dev", "eth0")
	mustRunIn(t, c.netns, "ip", "link", "set", "eth0", "up")
	h.VSCtl(t, "add-port", "br-int", c.port)
	c.ofport = h.OFPort(t, c.port)
	return c
}

// installFlows replaces br-int's flows in one bundle: table 0 admits the
// local ports and the tunnel (with the network's VNI), table 1 forwards by
// destination MAC to a local port or into the tunnel with tun_id=VNI.
func installFlows(t *testing.T, h *Host, all []*container) {
	tun := h.OFPort(t, "tun0")
	flows := []string{fmt.Sprintf("table=0,priority=100,in_port=%d,tun_id=%d,actions=goto_table:1", tun, vni)}
	for _, c := range all {
		if c.host == h {
			flows = append(flows,
				fmt.Sprintf("table=0,priority=100,in_port=%d,actions=goto_table:1", c.ofport),
				fmt.Sprintf("table=1,priority=100,dl_dst=%s,actions=output:%d", c.mac, c.ofport))
		} else {
			flows = append(flows, fmt.Sprintf("table=1,priority=100,dl_dst=%s,actions=set_field:%d->tun_id,output:%d", c.mac, vni, tun))
		}
	}
	file := h.Path("br-int.flows")
	if err := os.WriteFile(file, []byte(strings.Join(flows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.OFCtl(t, "--bundle", "replace-flows", "br-int", file)
	if got := strings.Count(h.OFCtl(t, "dump-flows", "br-int"), "priority=100"); got != len(flows) {
		t.Fatalf("%s: %d flows installed, want %d", h.Name, got, len(flows))
	}
}

// assertPing waits for the path to come up (the first tunnelled packet
// may wait for the underlay ARP), then wants 5 of 5 replies.
func assertPing(t *testing.T, ctx context.Context, from, to *container) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := Ping(ctx, from.netns, to.ip, 1, 0); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("ping %s -> %s never answered: %v", from.netns, to.ip, err)
		}
	}
	r, err := Ping(ctx, from.netns, to.ip, 5, 50*time.Millisecond)
	if err != nil || r.Received != r.Sent || r.Loss != 0 || r.Avg <= 0 {
		t.Fatalf("ping %s -> %s: %+v, %v", from.netns, to.ip, r, err)
	}
	t.Logf("ping %s -> %s: %d/%d, rtt avg %v max %v", from.ip, to.ip, r.Received, r.Sent, r.Avg, r.Max)
}

// assertTCP runs a one-shot iperf3 server in dst (a lab Proc, waited for
// until it listens) and a 1 s client in src, and wants the transfer to
// complete (no "error" in the client's JSON, at least 1 MiB received) and
// the server to exit.
func assertTCP(t *testing.T, ctx context.Context, l *Lab, src, dst *container) {
	srv := l.StartIPerf3(t, "iperf3-"+l.Tunnel, dst.netns, dst.ip)
	res, err := IPerf3(ctx, src.netns, dst.ip, 1, "--connect-timeout", "2000")
	if err != nil {
		t.Fatalf("iperf3 client: %v\n%s\nserver log:\n%s", err, res.Output, srv.Log())
	}
	if res.Bytes() < 1<<20 {
		t.Fatalf("iperf3 moved only %d bytes:\n%s", res.Bytes(), res.Output)
	}
	t.Logf("iperf3 %s -> %s over %s: %.0f Mbit/s", src.ip, dst.ip, l.Tunnel, res.Mbps())
	if err := srv.Wait(5 * time.Second); err != nil {
		t.Fatalf("iperf3 server did not finish cleanly: %v\n%s", err, srv.Log())
	}
	if !srv.Exited() || alive(srv.Pid(), 0) {
		t.Fatalf("iperf3 server pid %d still alive", srv.Pid())
	}
}

// assertGone checks that a closed lab left nothing behind.
func assertGone(t *testing.T, l *Lab) {
	t.Helper()
	if left, _ := listNetns(l.Prefix()); len(left) > 0 {
		t.Errorf("lab %s left namespaces %v", l.ID, left)
	}
	for _, p := range l.man.Procs {
		if alive(p.Pid, p.Start) {
			t.Errorf("lab %s left %s (pid %d) running", l.ID, p.Name, p.Pid)
		}
	}
	if len(l.man.Procs) == 0 {
		t.Errorf("lab %s recorded no pids", l.ID)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) && !(t.Failed() && os.Getenv(EnvKeep) == "1") {
		t.Errorf("lab %s left %s (%v)", l.ID, l.Dir, err)
	}
	if m, _ := filepath.Glob(filepath.Join("/sys/class/net", "sy"+l.ID+"*")); len(m) > 0 {
		t.Errorf("lab %s left links %v", l.ID, m)
	}
}

func mustRunIn(t testing.TB, netns, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := RunIn(ctx, netns, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
