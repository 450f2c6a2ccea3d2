package policy

import (
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// TestConsultedFollowsDecide: the policies Consulted lists are in
// evaluation order, and the first with a matching rule is the one Verdict
// names.
func TestConsultedFollowsDecide(t *testing.T) {
	sel := func(s string) *string { return &s }
	ctrs := []Container{
		{Name: "web", IP: netip.MustParseAddr("10.0.0.2"), Labels: map[string]string{"app": "web"}},
		{Name: "db", IP: netip.MustParseAddr("10.0.0.3"), Labels: map[string]string{"app": "db"}},
	}
	pols := []openapi.Policy{
		{Meta: openapi.Meta{ID: "p1"}, Name: "allow-web", Selector: "app=db", Priority: 100, Action: openapi.ActionAllow,
			Ingress: []openapi.PolicyRule{{Peers: []openapi.PolicyPeer{{Selector: sel("app=other")}}}, {Peers: []openapi.PolicyPeer{{Selector: sel("app=web")}}}}},
		{Meta: openapi.Meta{ID: "p2"}, Name: "deny-all", Selector: "app=db", Priority: 50, Action: openapi.ActionDeny,
			Ingress: []openapi.PolicyRule{{Ports: []openapi.PolicyPort{{Protocol: "UDP"}}}}},
		{Meta: openapi.Meta{ID: "p3"}, Name: "egress-only", Selector: "app=db", Priority: 10, Action: openapi.ActionAllow,
			Egress: []openapi.PolicyRule{}},
	}
	e, err := New(ctrs, pols)
	if err != nil {
		t.Fatal(err)
	}
	web, _ := e.Container("web")
	db, _ := e.Container("db")
	got := e.Consulted(Ingress, db, web, "TCP", 80)
	if len(got) != 2 || got[0].Policy != "deny-all" || got[0].Rule != -1 || got[1].Policy != "allow-web" || got[1].Rule != 1 {
		t.Fatalf("consulted %+v", got)
	}
	v := e.Verdict(web, db, "TCP", 80)
	if v.Ingress.Policy != "allow-web" || v.Ingress.Rule != 1 {
		t.Fatalf("verdict %+v", v.Ingress)
	}
	if got := e.Consulted(Egress, web, db, "TCP", 80); len(got) != 0 {
		t.Fatalf("web is selected by no policy, got %+v", got)
	}
}
