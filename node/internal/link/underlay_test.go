package link

import (
	"os/exec"
	"strings"
	"testing"
)

// After the underlay address moved off the underlay interface, the
// interface must not answer ARP for it with its own MAC (issue 7 item 11).
// Here: "host" has ulx (the underlay interface, no address) and brx (stands
// for br-phy, holding 10.88.0.1); a peer on ulx's wire asks for 10.88.0.1.
// By default Linux answers on ulx; after QuietARP it does not, and SetARP
// restores the original settings.
func TestQuietARP(t *testing.T) {
	e := newEnv(t)
	peer := "sylt-" + e.id + "-peer"
	if err := createNamedNetns(DefaultNetnsDir + "/" + peer); err != nil {
		t.Fatal(err)
	}
	in(t, e.host, "ip", "link", "add", "ulx", "type", "veth", "peer", "name", "wire", "netns", peer)
	in(t, e.host, "ip", "link", "add", "brx", "type", "veth", "peer", "name", "brx-end")
	in(t, e.host, "ip", "addr", "add", "10.88.0.1/24", "dev", "brx")
	for _, l := range []string{"ulx", "brx", "brx-end"} {
		in(t, e.host, "ip", "link", "set", l, "up")
	}
	in(t, peer, "ip", "addr", "add", "10.88.0.2/24", "dev", "wire")
	in(t, peer, "ip", "link", "set", "wire", "up")
	ulxMAC := strings.Fields(in(t, e.host, "cat", "/sys/class/net/ulx/address"))[0]

	// resolve asks for 10.88.0.1 from the peer and returns the MAC learnt
	// ("" when nobody answered).
	resolve := func() string {
		t.Helper()
		in(t, peer, "ip", "neigh", "flush", "dev", "wire")
		// The ping's outcome does not matter, only who answered its ARP.
		exec.Command("ip", "netns", "exec", peer, "ping", "-c1", "-W1", "10.88.0.1").Run()
		out := in(t, peer, "ip", "neigh", "show", "10.88.0.1", "dev", "wire")
		if f := strings.Fields(out); len(f) >= 3 && f[1] == "lladdr" {
			return f[2]
		}
		return ""
	}
	if mac := resolve(); mac != ulxMAC {
		t.Fatalf("before: 10.88.0.1 resolved to %q, want ulx's %s (the kernel's default)", mac, ulxMAC)
	}
	orig, changed, err := e.m.QuietARP("ulx")
	if err != nil || !changed {
		t.Fatalf("QuietARP: %v %v", changed, err)
	}
	if mac := resolve(); mac != "" {
		t.Fatalf("after QuietARP: ulx still answers ARP for 10.88.0.1 (%s)", mac)
	}
	if got, _ := e.m.ARPOf("ulx"); got != (ARP{Ignore: 1, Announce: 2}) {
		t.Fatalf("settings after QuietARP: %+v", got)
	}
	if _, changed, err := e.m.QuietARP("ulx"); err != nil || changed {
		t.Fatalf("second QuietARP changed %v (%v)", changed, err)
	}
	if err := e.m.SetARP("ulx", orig); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.m.ARPOf("ulx"); got != orig {
		t.Fatalf("restored %+v, want %+v", got, orig)
	}
	if _, err := e.m.ARPOf("../all"); err == nil {
		t.Fatalf("ARPOf accepted a path as interface name")
	}
}
