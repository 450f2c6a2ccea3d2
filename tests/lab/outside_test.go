package lab

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseSeen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		peer string
		bad  bool
	}{
		{in: "outside 192.168.200.11:40000", name: "outside", peer: "192.168.200.11:40000"},
		{in: SeenReply("x/a b", "10.0.0.1:5"), name: "x/a b", peer: "10.0.0.1:5"},
		{in: "web", bad: true},
		{in: "web 10.0.0.1", bad: true},
		{in: "web nothing:80", bad: true},
	} {
		s, err := ParseSeen(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseSeen(%q): %+v %v", tc.in, s, err)
			continue
		}
		if !tc.bad && (s.Name != tc.name || s.Peer.String() != tc.peer) {
			t.Errorf("ParseSeen(%q) = %+v, want %s %s", tc.in, s, tc.name, tc.peer)
		}
	}
	if _, err := (ProbeResult{Error: "timeout"}).Seen(); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Seen of a failed probe: %v", err)
	}
}

func TestOutsideAddrs(t *testing.T) {
	l := &Lab{Subnet: netip.MustParsePrefix("192.168.200.0/24")}
	if got := l.offsetAddr(outsideClientOffset); got.String() != "192.168.200.250" {
		t.Errorf("client %s", got)
	}
	if got := l.SpareAddr(0); got.String() != "192.168.200.230" {
		t.Errorf("SpareAddr(0) = %s", got)
	}
	if got := l.SpareAddr(19); got.String() != "192.168.200.249" {
		t.Errorf("SpareAddr(19) = %s", got)
	}
	// No host of the largest lab (200) takes a spare or outside address.
	last, err := l.hostAddr(200)
	if err != nil || !last.Addr().Less(l.SpareAddr(0)) {
		t.Errorf("host 200 at %v (%v), spares from %s", last, err, l.SpareAddr(0))
	}
	l.Subnet = netip.MustParsePrefix("10.1.0.0/16")
	if got := l.offsetAddr(outsideServerOffset); got.String() != "10.1.0.251" {
		t.Errorf("server in a /16: %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("SpareAddr(20) did not panic")
		}
	}()
	l.SpareAddr(20)
}

// TestOutside: the outside namespace holds its two addresses, the client
// one primary, on the underlay bridge; its seen-by server and client work
// with a host (a probe server in h1's namespace, on the underlay address):
// the host sees the outside's client address (or the server one when a
// probe names it as source), the outside's server sees the host's
// address, over TCP and UDP, and a UDP answer comes from the address it
// was sent to; the same once the host's address is on an OVS br-phy, as
// the agent puts it. AddOutside twice gives the same outside; the lab
// removes it.
func TestOutside(t *testing.T) {
	var l *Lab
	t.Run("up", func(t *testing.T) {
		l = New(t, Options{Hosts: 1})
		bin := buildProbe(t)
		o := l.AddOutside(t)
		if again := l.AddOutside(t); again != o || l.Outside() != o {
			t.Errorf("AddOutside twice: %p then %p", o, again)
		}
		if o.Netns != l.Prefix()+"out" || o.Client.String() != "192.168.200.250" || o.Server.String() != "192.168.200.251" {
			t.Errorf("outside %+v", o)
		}
		addrs := mustRunIn(t, o.Netns, "ip", "-4", "-o", "addr", "show", "dev", o.Iface)
		ci, si := strings.Index(addrs, o.Client.String()+"/24"), strings.Index(addrs, o.Server.String()+"/24")
		if ci < 0 || si < 0 || ci > si || !strings.Contains(addrs[si:], "secondary") {
			t.Errorf("outside addresses (client first and primary, server secondary):\n%s", addrs)
		}
		h1 := l.Hosts[0]
		host := h1.UnderlayAddr.Addr().String()
		hp := l.StartProbe(t, bin, "h1", h1.Netns)
		out := o.StartServer(t, bin)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		at := func(a netip.Addr) string { return netip.AddrPortFrom(a, SeenByPort).String() }
		seenBoth := func(phase string) {
			t.Helper()
			for _, proto := range []string{"tcp", "udp"} {
				for _, c := range []struct {
					p         *Probe
					src, dst  string
					name, see string
				}{
					{out, "", host, "h1", o.Client.String()},
					{out, o.Server.String(), host, "h1", o.Server.String()},
					{hp, "", o.Server.String(), OutsideName, host},
					{hp, "", o.Client.String(), OutsideName, host},
				} {
					dst := at(netip.MustParseAddr(c.dst))
					s, err := c.p.Ask(ctx, proto, c.src, dst, 2*time.Second)
					if err != nil || s.Name != c.name || s.Peer.Addr().String() != c.see || s.Peer.Port() == 0 {
						t.Errorf("%s: %s %s (src %q) -> %s: %+v %v; want %s seeing %s", phase, proto, c.p.Name, c.src, dst, s, err, c.name, c.see)
					}
				}
			}
		}
		seenBoth("host address on " + h1.UnderlayIface)
		// The ordinary probe ports answer with the name alone.
		res, err := out.Run(ctx, []ProbeRequest{{Proto: "tcp", Addr: host + ":80", TimeoutMs: 2000}, {Proto: "udp", Addr: host + ":80", TimeoutMs: 2000}})
		if err != nil || !res[0].OK || res[0].Reply != "h1" || !res[1].OK || res[1].Reply != "h1" {
			t.Errorf("outside -> h1 port 80: %+v %v", res, err)
		}
		// A bad source is refused, not ignored.
		if res, err := out.Run(ctx, []ProbeRequest{{Proto: "tcp", Addr: host + ":80", Src: "nonsense", TimeoutMs: 500}}); err != nil || res[0].OK {
			t.Errorf("probe with src nonsense: %+v %v", res, err)
		}
		// A kept connection from a chosen source.
		c, err := out.OpenFrom(ctx, o.Server.String(), at(h1.UnderlayAddr.Addr()), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r, err := c.Send(ctx, 2*time.Second)
			s, serr := r.Seen()
			if err != nil || serr != nil || s.Peer.Addr() != o.Server {
				t.Errorf("kept connection from %s: %+v %v %v", o.Server, r, err, serr)
			}
		}
		_ = c.Close(ctx)
		// The outside is on the underlay, so the host reaches it by ping.
		if r, err := Ping(ctx, h1.Netns, o.Server.String(), 1, 100*time.Millisecond); err != nil || r.Received != 1 {
			t.Errorf("h1 -> ping outside: %+v %v", r, err)
		}
		// As the agent runs a host: the underlay address on an OVS
		// (userspace datapath) br-phy holding the underlay veth. The
		// outside's TCP and UDP still work both ways (checksums complete).
		setupBridges(t, h1, o.Server.String(), "geneve")
		seenBoth("host address on OVS br-phy")
		if r, err := Ping(ctx, h1.Netns, o.Server.String(), 1, 100*time.Millisecond); err != nil || r.Received != 1 {
			t.Errorf("h1 (br-phy) -> ping outside: %+v %v", r, err)
		}
	})
	if l != nil {
		assertGone(t, l)
		if m, _ := listNetns(l.Prefix() + "out"); len(m) > 0 {
			t.Errorf("outside namespace left: %v", m)
		}
	}
}
