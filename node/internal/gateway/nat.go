// Package gateway realizes a host's external access in its own kernel, from
// the program's Gateway (openapi.Gateway): the gateway port's MAC and link
// state, the routes into it, IPv4 forwarding, the egress IPs the host holds
// on its underlay interface (announced by gratuitous ARP), and the NAT
// table openapi.NATTable (nftables, through sigs.k8s.io/knftables):
// published ports, node ports and egress SNAT.
//
// It owns only what it names: the table openapi.NATTable (rewritten whole,
// atomically, on every change and on resync), the routes on the gateway
// port (an agent port nobody else uses), and the addresses labelled
// AddrLabel on the underlay interface. It must not touch OVS (package ovs
// makes the gateway port) nor any other table, route or address.
package gateway

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/switchyard/switchyard/openapi"
)

// The table's chains: external holds the DNAT rules (published and node
// ports), reached from prerouting (clients outside) and output (the host
// itself); postrouting holds the SNAT rules.
const (
	chainExternal    = "external"
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
)

// natTransaction is the transaction that makes the table exactly g's rules
// (nil g: no table at all). Flushing the table and adding everything in one
// transaction is atomic: no packet sees a half-written table.
func natTransaction(nft knftables.Interface, g *openapi.Gateway) (*knftables.Transaction, error) {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	if g == nil {
		tx.Delete(&knftables.Table{})
		return tx, nil
	}
	rules, err := natRules(g)
	if err != nil {
		return nil, err
	}
	tx.Flush(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: chainExternal})
	base := func(name string, t knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority) {
		tx.Add(&knftables.Chain{Name: name, Type: knftables.PtrTo(t), Hook: knftables.PtrTo(hook), Priority: knftables.PtrTo(prio)})
	}
	base(chainPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority)
	base(chainOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority)
	base(chainPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority)
	base(chainForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority)
	for i := range rules {
		tx.Add(&rules[i])
	}
	return tx, nil
}

// natRules are the rules of g's table, in order (Drift counts them).
func natRules(g *openapi.Gateway) ([]knftables.Rule, error) {
	rules := []knftables.Rule{
		// Isolation: the kernel forwards into br-int only what a published
		// or node port DNATed, and what belongs to connections already
		// there (egress replies). Without it, a container's packet to
		// another network's address would leave by the gateway and come
		// back in that network through the kernel's route; and a machine
		// routing a network's CIDR via a host would reach its containers
		// directly.
		{Chain: chainForward, Rule: `oifname "` + openapi.GatewayPortName + `" ct state new ct status & dnat == 0 drop`},
		{Chain: chainPrerouting, Rule: "jump " + chainExternal},
		{Chain: chainOutput, Rule: "jump " + chainExternal},
	}
	// Hairpin: a container reaching a published port of its own host
	// comes back into br-int DNATed; SNAT it to the host so that the reply
	// returns through the kernel (else it would go straight to the client,
	// from the wrong address).
	var cidrs []string
	for _, r := range g.Routes {
		if r.Via == "" {
			if err := checkPrefix(r.Dst); err != nil {
				return nil, err
			}
			cidrs = append(cidrs, r.Dst)
		}
	}
	if len(cidrs) > 0 {
		rules = append(rules, knftables.Rule{Chain: chainPostrouting, Rule: knftables.Concat(
			`oifname "`+openapi.GatewayPortName+`" ct status dnat ip saddr {`, strings.Join(cidrs, ", "), "} snat to", g.Address)})
	}
	for i := range g.NAT {
		r := &g.NAT[i]
		rule, chain, err := natRule(g, r)
		if err != nil {
			return nil, fmt.Errorf("NAT rule %s: %w", r.Key(), err)
		}
		if rule != "" {
			rules = append(rules, knftables.Rule{Chain: chain, Rule: rule, Comment: knftables.PtrTo(r.Owner)})
		}
	}
	return rules, nil
}

// natRule is r as an nft rule and the chain it goes to ("" when r has
// nothing to do here: a node port whose service has no backend network on
// this host, which the kernel then refuses like any closed port).
func natRule(g *openapi.Gateway, r *openapi.NATRule) (rule, chain string, err error) {
	switch r.Kind {
	case openapi.NATPublish, openapi.NATNodePort:
		if r.ToIP == "" {
			return "", "", nil
		}
		proto, err := l4(r.Protocol)
		if err != nil {
			return "", "", err
		}
		if err := checkPort(r.HostPort); err != nil {
			return "", "", err
		}
		if err := checkPort(r.ToPort); err != nil {
			return "", "", err
		}
		if err := checkIPv4(r.ToIP); err != nil {
			return "", "", err
		}
		dst := cmp.Or(r.HostIP, g.Address)
		if err := checkIPv4(dst); err != nil {
			return "", "", err
		}
		return knftables.Concat("ip daddr", dst, proto, "dport", r.HostPort, "dnat to", r.ToIP+":"+strconv.Itoa(r.ToPort)), chainExternal, nil
	case openapi.NATEgress:
		if err := checkPrefix(r.Source); err != nil {
			return "", "", err
		}
		out := `oifname != "` + openapi.GatewayPortName + `"`
		if r.SNATTo == "" {
			return knftables.Concat("ip saddr", r.Source, out, "masquerade"), chainPostrouting, nil
		}
		if err := checkIPv4(r.SNATTo); err != nil {
			return "", "", err
		}
		return knftables.Concat("ip saddr", r.Source, out, "snat to", r.SNATTo), chainPostrouting, nil
	}
	return "", "", fmt.Errorf("unknown kind %q", r.Kind)
}

func l4(p string) (string, error) {
	switch strings.ToUpper(cmp.Or(p, "TCP")) {
	case "TCP":
		return "tcp", nil
	case "UDP":
		return "udp", nil
	}
	return "", fmt.Errorf("protocol %q is not TCP or UDP", p)
}

func checkPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d out of range", p)
	}
	return nil
}

func checkIPv4(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Errorf("%q is not an IPv4 address", s)
	}
	return nil
}

func checkPrefix(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("%q is not an IPv4 prefix", s)
	}
	return nil
}
