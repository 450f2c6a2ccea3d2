package converge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/tests/lab"
)

func TestTwoHostsTunnels(t *testing.T) {
	for _, tunnel := range []string{"geneve", "vxlan"} {
		t.Run(tunnel, func(t *testing.T) { testTwoHosts(t, tunnel) })
	}
}

func testTwoHosts(t *testing.T, tunnel string) {
	l := newLab(t, 2, tunnel)
	h1, h2 := l.Hosts[0], l.Hosts[1]
	a1, a2 := newHost(t, l, h1), newHost(t, l, h2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, a := range []*Host{a1, a2} {
		h := l.Hosts[i]
		for try := 0; try < 2; try++ { // the second call must change nothing
			if err := a.EnsureUnderlay(ctx, h.UnderlayIface, h.UnderlayAddr); err != nil {
				t.Fatalf("%s EnsureUnderlay #%d: %v", h.Name, try+1, err)
			}
		}
		addrs := h.MustRun(t, "ip", "-o", "addr", "show")
		if !strings.Contains(addrs, "br-phy    inet "+h.UnderlayAddr.String()) ||
			strings.Contains(addrs, h.UnderlayIface+"    inet ") {
			t.Fatalf("%s: underlay address not moved to br-phy:\n%s", h.Name, addrs)
		}
		// The underlay interface answers no ARP for the moved address; its
		// original settings (the lab's: 0, 0) are recorded on its Port.
		sys := "net.ipv4.conf." + h.UnderlayIface + "."
		if got := strings.Fields(h.MustRun(t, "sysctl", "-n", sys+"arp_ignore", sys+"arp_announce")); strings.Join(got, " ") != "1 2" {
			t.Fatalf("%s: %s arp_ignore, arp_announce = %v, want 1 2", h.Name, h.UnderlayIface, got)
		}
		if ids := h.VSCtl(t, "get", "Port", h.UnderlayIface, "external_ids"); !strings.Contains(ids, ovs.KeyARPIgnore+`="0"`) || !strings.Contains(ids, ovs.KeyARPAnnounce+`="0"`) {
			t.Fatalf("%s: original ARP settings not recorded: %s", h.Name, ids)
		}
		if f := h.OFCtl(t, "--no-stats", "dump-flows", "br-phy"); strings.Count(f, "actions=NORMAL") != 1 {
			t.Fatalf("%s: br-phy flows:\n%s", h.Name, f)
		}
	}
	c1, c2 := ctr{N: 1, Host: "h1"}, ctr{N: 2, Host: "h1"}
	c3, c4 := ctr{N: 3, Host: "h2"}, ctr{N: 4, Host: "h2"}
	all := []ctr{c1, c2, c3, c4}
	p1 := program("h1", 1, all, map[string]string{"h2": h2.UnderlayAddr.Addr().String()}, tunnel)
	p2 := program("h2", 1, all, map[string]string{"h1": h1.UnderlayAddr.Addr().String()}, tunnel)
	r1, r2 := apply(t, a1, p1), apply(t, a2, p2)
	if r1.Degraded() || r2.Degraded() {
		t.Fatalf("degraded: %+v / %+v", r1, r2)
	}
	if typ := strings.TrimSpace(h1.VSCtl(t, "get", "Interface", "tun-h2", "type")); typ != tunnel {
		t.Fatalf("tunnel type %s", typ)
	}
	opts := h1.VSCtl(t, "get", "Interface", "tun-h2", "options")
	if !strings.Contains(opts, `remote_ip="`+h2.UnderlayAddr.Addr().String()+`"`) || !strings.Contains(opts, "key=flow") {
		t.Fatalf("tunnel options %s", opts)
	}
	ping(t, sandbox(l, h1, c1), c3)
	ping(t, sandbox(l, h2, c4), c2)
	ping(t, sandbox(l, h1, c2), c1)
	tcp(t, l, sandbox(l, h1, c1), sandbox(l, h2, c3), c3)
	if o := observe(t, a1); o.Drifted() {
		t.Fatalf("drift: %v", o.Drift)
	}
	for _, ps := range r1.Ports {
		if !ps.Up || ps.OFPort <= 0 {
			t.Errorf("port status %+v", ps)
		}
	}
}

// tcp runs a one-second iperf3 transfer from netns src to dst (TCP hangs
// when tx checksum offload is left on, see LAB.md), once the server listens.
func tcp(t *testing.T, l *lab.Lab, src, dst string, to ctr) {
	t.Helper()
	l.StartIPerf3(t, "iperf3-"+to.Name(), dst, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := lab.IPerf3(ctx, src, to.IP(), 1)
	if err != nil {
		t.Fatalf("iperf3 to %s: %v\n%s", to.IP(), err, res.Output)
	}
	t.Logf("tcp %s: %.0f Mbit/s", to.IP(), res.Mbps())
}
