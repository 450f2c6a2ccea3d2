package agent

import (
	"context"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// fakeDatapath counts calls and reports no drift.
type fakeDatapath struct{ underlay, observe int }

func (f *fakeDatapath) EnsureUnderlay(context.Context, string, netip.Prefix) error {
	f.underlay++
	return nil
}
func (f *fakeDatapath) NewGeneration(context.Context) (uint16, error) { return 1, nil }
func (f *fakeDatapath) Apply(context.Context, *openapi.Program) (Result, error) {
	return Result{}, nil
}
func (f *fakeDatapath) Observe(context.Context) (Observation, error) {
	f.observe++
	return Observation{}, nil
}

// A resync checks the underlay bridge too: an OVS restart wipes its flow.
func TestResyncEnsuresUnderlay(t *testing.T) {
	for _, iface := range []string{"", "ul0"} {
		dp := &fakeDatapath{}
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
