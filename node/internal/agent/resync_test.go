package agent

import (
	"context"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// A resync checks the underlay bridge too: an OVS restart wipes its flow.
func TestResyncEnsuresUnderlay(t *testing.T) {
	for _, iface := range []string{"", "ul0"} {
		dp := newFakeDatapath()
		a := New(Config{ControllerURL: "http://127.0.0.1:1", Host: "h1", UnderlayIface: iface,
			UnderlayPrefix: netip.MustParsePrefix("192.168.200.11/24")}, dp)
		a.resync(context.Background()) // nothing applied yet: nothing to check
		a.prog = &openapi.Program{Revision: 1}
		a.resync(context.Background())
		want := 0
		if iface != "" {
			want = 1
		}
		if dp.underlay != want || dp.observe != 1 {
			t.Errorf("underlay iface %q: EnsureUnderlay called %d times (want %d), Observe %d (want 1)", iface, dp.underlay, want, dp.observe)
		}
	}
}
