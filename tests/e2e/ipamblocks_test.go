package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// blocks: every container's address comes from an IPAM block of its host
// (ipBlock); a and b share h1's, the hosts' blocks differ. A container
// created in h1's block, then deleted, leaves the flow tables of h2 and h3
// exactly as they were (their programs only learn and forget its name), and
// it is reachable from h3 meanwhile: by the block's one flow there.
func (l *lifecycle) blocks(t *testing.T) {
	owner := map[string]string{} // block -> host
	for _, name := range []string{"a", "b", "c", "d"} {
		c := l.GetContainer(t, name)
		b, err := netip.ParsePrefix(c.IPBlock)
		if err != nil || !b.Contains(netip.MustParseAddr(c.IP)) {
			t.Fatalf("container %s (%s on %s): ipBlock %q does not hold its address", name, c.IP, c.Host, c.IPBlock)
		}
		if h, ok := owner[c.IPBlock]; ok && h != c.Host {
			t.Fatalf("block %s has containers on %s and %s", c.IPBlock, h, c.Host)
		}
		owner[c.IPBlock] = c.Host
	}
	if a, b := l.GetContainer(t, "a"), l.GetContainer(t, "b"); a.IPBlock != b.IPBlock {
		t.Errorf("a and b (both on h1) in blocks %s and %s", a.IPBlock, b.IPBlock)
	}
	before := map[string][]string{"h2": l.sortedFlows(t, "h2"), "h3": l.sortedFlows(t, "h3")}
	unchanged := func(when string) {
		t.Helper()
		for h, want := range before {
			if got := l.sortedFlows(t, h); !slices.Equal(got, want) {
				t.Errorf("%s: %s's flow table changed:\n%s", when, h, flowDiff(want, got))
			}
		}
	}
	f := l.Container(t, "f", "blue", "h1", nil)
	if want := l.GetContainer(t, "a").IPBlock; f.IPBlock != want {
		t.Errorf("f on h1 got block %q, want h1's %s", f.IPBlock, want)
	}
	l.ct["f"] = f
	unchanged("after f's create")
	l.reach(t, "d", f.IP)
	l.reach(t, "f", l.ct["c"].IP)
	l.MustDo(t, 204, "DELETE", "/api/v1/containers/f?wait=realized&timeout=30s", nil, nil)
	delete(l.ct, "f")
	unchanged("after f's delete")
	if h := l.GetHost(t, "h3"); h.Status != openapi.HostReady {
		t.Errorf("h3: %s", h.Status)
	}
}

// sortedFlows is host's br-int table, sorted.
func (l *lifecycle) sortedFlows(t *testing.T, host string) []string {
	fs := l.Flows(t, host)
	slices.Sort(fs)
	return fs
}

// flowDiff lists the lines only in a (-) and only in b (+).
func flowDiff(a, b []string) string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}
