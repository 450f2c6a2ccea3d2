package gateway

import (
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/switchyard/switchyard/openapi"
)

// TestNATTransaction: a gateway's rules as nft commands, in one
// transaction that flushes the table first (atomic rewrite).
func TestNATTransaction(t *testing.T) {
	g := &openapi.Gateway{
		MAC: "0a:59:c0:a8:01:01", Address: "192.168.1.1",
		Routes: []openapi.GatewayRoute{{Dst: "10.1.0.0/16"}, {Dst: "10.96.1.3/32", Via: "10.1.0.1"}},
		NAT: []openapi.NATRule{
			{Kind: openapi.NATEgress, Owner: "network/blue", Source: "10.1.0.0/16"},
			{Kind: openapi.NATEgress, Owner: "network/red", Source: "10.3.0.0/16", SNATTo: "192.168.1.200"},
			{Kind: openapi.NATNodePort, Owner: "service/s1", Protocol: "TCP", HostPort: 30080, ToIP: "10.96.1.3", ToPort: 80},
			{Kind: openapi.NATNodePort, Owner: "service/s2", Protocol: "TCP", HostPort: 30081}, // no backend network here
			{Kind: openapi.NATPublish, Owner: "container/c1", Protocol: "UDP", HostIP: "192.168.1.1", HostPort: 8053, ToIP: "10.1.0.2", ToPort: 53},
		},
	}
	tx, err := natTransaction(knftables.NewFake(knftables.IPv4Family, openapi.NATTable), g)
	if err != nil {
		t.Fatal(err)
	}
	got := tx.String()
	for _, want := range []string{
		"flush table ip switchyard",
		"add chain ip switchyard prerouting { type nat hook prerouting priority -100 ; }",
		`add rule ip switchyard forward oifname "sygw0" ct state new ct status & dnat == 0 drop`,
		`add rule ip switchyard postrouting oifname "sygw0" ct status dnat ip saddr { 10.1.0.0/16 } snat to 192.168.1.1`,
		`add rule ip switchyard postrouting ip saddr 10.1.0.0/16 oifname != "sygw0" masquerade comment "network/blue"`,
		`add rule ip switchyard postrouting ip saddr 10.3.0.0/16 oifname != "sygw0" snat to 192.168.1.200 comment "network/red"`,
		`add rule ip switchyard external ip daddr 192.168.1.1 tcp dport 30080 dnat to 10.96.1.3:80 comment "service/s1"`,
		`add rule ip switchyard external ip daddr 192.168.1.1 udp dport 8053 dnat to 10.1.0.2:53 comment "container/c1"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "30081") {
		t.Errorf("a node port without a backend network here got a rule:\n%s", got)
	}
	// Removal: the table goes.
	tx, _ = natTransaction(knftables.NewFake(knftables.IPv4Family, openapi.NATTable), nil)
	if s := tx.String(); !strings.Contains(s, "delete table ip switchyard") {
		t.Errorf("nil gateway: %s", s)
	}
}

// TestNATRuleRefusesBadInput: a rule the compiler never makes (bad
// protocol, port, address) fails the transaction instead of reaching nft.
func TestNATRuleRefusesBadInput(t *testing.T) {
	g := &openapi.Gateway{Address: "192.168.1.1"}
	for _, r := range []openapi.NATRule{
		{Kind: openapi.NATPublish, Protocol: "SCTP", HostPort: 1, ToIP: "10.0.0.1", ToPort: 1},
		{Kind: openapi.NATPublish, Protocol: "TCP", HostPort: 70000, ToIP: "10.0.0.1", ToPort: 1},
		{Kind: openapi.NATPublish, Protocol: "TCP", HostPort: 80, ToIP: "10.0.0.1; flush ruleset", ToPort: 1},
		{Kind: openapi.NATEgress, Source: "10.0.0.0/8 accept"},
		{Kind: "other"},
	} {
		g.NAT = []openapi.NATRule{r}
		if _, err := natTransaction(knftables.NewFake(knftables.IPv4Family, openapi.NATTable), g); err == nil {
			t.Errorf("%+v: accepted", r)
		}
	}
}
