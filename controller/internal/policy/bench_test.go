package policy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// BenchmarkMatrix: the reachability endpoint's largest default answer, 200
// containers (40,000 pairs), under 100 policies with two rules each.
func BenchmarkMatrix(b *testing.B) {
	var cs []Container
	for i := range 200 {
		cs = append(cs, Container{Name: fmt.Sprintf("c%03d", i), IP: netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(1 + i%250)}),
			Labels: map[string]string{"app": fmt.Sprintf("a%d", i%20), "tier": fmt.Sprintf("t%d", i%3)}})
	}
	var ps []openapi.Policy
	for i := range 100 {
		ps = append(ps, pol(fmt.Sprintf("p%d", i), fmt.Sprintf("app=a%d", i%20), "", 1+i, rules(
			openapi.PolicyRule{Peers: []openapi.PolicyPeer{sel(fmt.Sprintf("tier=t%d", i%3))}, Ports: []openapi.PolicyPort{tcp(80, 90)}},
			from(cidr("10.0.0.0/25"))), nil))
	}
	e, err := New(cs, ps)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		e.Matrix("TCP", 80)
	}
}
