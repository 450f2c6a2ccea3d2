package gateway

import (
	"context"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"

	"github.com/switchyard/switchyard/openapi"
)

// Drift compares the host with g, cheaply (the NAT table's rule counts per
// chain, from one listing of the table; the routes on the gateway port;
// the egress IPs) and says what differs; after any difference the next
// Ensure rewrites everything.
func (m *Manager) Drift(ctx context.Context, g *openapi.Gateway) []string {
	var out []string
	want := map[string]int{}
	if g != nil {
		rules, err := natRules(g)
		if err != nil {
			return []string{err.Error()}
		}
		for _, r := range rules {
			want[r.Chain]++
		}
	}
	have := map[string]int{}
	rules, err := m.nft.ListRules(ctx, "")
	switch {
	case knftables.IsNotFound(err) && g == nil:
	case err != nil:
		out = append(out, fmt.Sprintf("NAT table %s: %v", openapi.NATTable, err))
	default:
		for _, r := range rules {
			have[r.Chain]++
		}
		for _, chain := range []string{chainExternal, chainPrerouting, chainOutput, chainPostrouting, chainForward} {
			if have[chain] != want[chain] {
				out = append(out, fmt.Sprintf("NAT chain %s has %d rules, want %d", chain, have[chain], want[chain]))
			}
		}
	}
	if g != nil {
		out = append(out, routeDrift(g)...)
	}
	out = append(out, m.egressDrift(g)...)
	if len(out) > 0 {
		m.done = false
	}
	return out
}

func routeDrift(g *openapi.Gateway) []string {
	l, err := netlink.LinkByName(openapi.GatewayPortName)
	if err != nil {
		return []string{fmt.Sprintf("port %s: %v", openapi.GatewayPortName, err)}
	}
	have, err := netlink.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return []string{fmt.Sprintf("routes: %v", err)}
	}
	var got, want []string
	for _, r := range have {
		if r.Dst != nil {
			got = append(got, r.Dst.String())
		}
	}
	for _, r := range g.Routes {
		want = append(want, r.Dst)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return []string{fmt.Sprintf("routes on %s %v, want %v", openapi.GatewayPortName, got, want)}
	}
	return nil
}

func (m *Manager) egressDrift(g *openapi.Gateway) []string {
	if m.Underlay == "" {
		return nil
	}
	l, err := netlink.LinkByName(m.Underlay)
	if err != nil {
		return []string{fmt.Sprintf("underlay %s: %v", m.Underlay, err)}
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return []string{err.Error()}
	}
	var got, want []string
	for _, a := range addrs {
		if a.Label == m.Underlay+AddrLabelSuffix {
			got = append(got, a.IP.String())
		}
	}
	if g != nil {
		want = slices.Clone(g.EgressIPs)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return []string{fmt.Sprintf("egress IPs %v, want %v", got, want)}
	}
	return nil
}
