package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/switchyard/switchyard/openapi"
)

// linkWait bounds the wait for OVS to make the gateway port's link.
const linkWait = 10 * time.Second

// AddrLabel is the label of the egress IPs the agent puts on the underlay
// interface: the addresses it may remove.
const AddrLabelSuffix = ":sy"

// Manager realizes programs' gateways in the host's kernel. Its methods
// are not safe for concurrent use (package converge serializes them).
type Manager struct {
	// Underlay is the interface that holds the host's address (the
	// underlay bridge's internal port): egress IPs go there.
	Underlay string
	// ProcSys is the root of the sysctls ("/proc/sys"; tests change it).
	ProcSys string

	nft  knftables.Interface
	last *openapi.Gateway // what the last successful Ensure realized
	done bool             // last is realized
}

// New returns a manager of the gateway in the current network namespace.
func New(underlay string) (*Manager, error) {
	nft, err := knftables.New(knftables.IPv4Family, openapi.NATTable)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return &Manager{Underlay: underlay, ProcSys: "/proc/sys", nft: nft}, nil
}

// Ensure makes the kernel match g (nil: no gateway: the NAT table, routes
// and egress IPs go). When g equals what the last call realized and full
// is false, it does nothing; full re-checks everything (resync repairs
// drift). It returns what it changed, one line each.
func (m *Manager) Ensure(ctx context.Context, g *openapi.Gateway, full bool) ([]string, error) {
	if !full && m.done && reflect.DeepEqual(m.last, g) {
		return nil, nil
	}
	var changes []string
	var errs []error
	note := func(c []string, err error) {
		changes = append(changes, c...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if g != nil {
		note(m.ensureLink(ctx, g))
		note(m.ensureRoutes(g))
		note(m.ensureForwarding())
	}
	note(m.ensureEgressIPs(g))
	tx, err := natTransaction(m.nft, g)
	if err == nil {
		err = m.nft.Run(ctx, tx)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("nftables table %s: %w", openapi.NATTable, err))
	} else {
		removed := removedDNAT(m.last, g)
		if len(removed) > 0 {
			changes = append(changes, fmt.Sprintf("NAT table %s rewritten; conntrack flushed for %d removed port(s)", openapi.NATTable, len(removed)))
			if err := flushConntrack(removed); err != nil {
				errs = append(errs, err)
			}
		}
	}
	err = errors.Join(errs...)
	m.last, m.done = g, err == nil
	if err != nil {
		m.last = nil
	}
	return changes, err
}

// ensureLink waits for the gateway port's link (OVS makes internal ports
// asynchronously), gives it g.MAC, turns tx checksum offload off (the
// userspace datapath would forward partial checksums) and brings it up.
func (m *Manager) ensureLink(ctx context.Context, g *openapi.Gateway) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, linkWait)
	defer cancel()
	var l netlink.Link
	for {
		var err error
		if l, err = netlink.LinkByName(openapi.GatewayPortName); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gateway port %s: %w", openapi.GatewayPortName, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var changes []string
	mac, err := net.ParseMAC(g.MAC)
	if err != nil {
		return nil, fmt.Errorf("gateway MAC %q: %w", g.MAC, err)
	}
	if l.Attrs().HardwareAddr.String() != mac.String() {
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			return nil, fmt.Errorf("set %s MAC: %w", openapi.GatewayPortName, err)
		}
		changes = append(changes, "gateway port MAC "+g.MAC)
	}
	if e, err := ethtool.NewEthtool(); err == nil {
		feats, ferr := e.Features(openapi.GatewayPortName)
		if ferr == nil && feats["tx-checksumming"] {
			_ = e.Change(openapi.GatewayPortName, map[string]bool{"tx-checksumming": false})
		}
		e.Close()
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return changes, fmt.Errorf("set %s up: %w", openapi.GatewayPortName, err)
		}
		changes = append(changes, "gateway port up")
	}
	return changes, nil
}

// ensureRoutes makes the routes on the gateway port exactly g.Routes.
func (m *Manager) ensureRoutes(g *openapi.Gateway) ([]string, error) {
	l, err := netlink.LinkByName(openapi.GatewayPortName)
	if err != nil {
		return nil, err
	}
	want := map[string]*netlink.Route{}
	for _, r := range g.Routes {
		rt, err := route(l, r)
		if err != nil {
			return nil, err
		}
		want[rt.Dst.String()] = rt
	}
	have, err := netlink.RouteList(l, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("routes of %s: %w", openapi.GatewayPortName, err)
	}
	var changes []string
	var errs []error
	for i := range have {
		h := &have[i]
		if h.Dst == nil {
			continue
		}
		w := want[h.Dst.String()]
		if w != nil && sameRoute(h, w) {
			delete(want, h.Dst.String())
			continue
		}
		if w == nil {
			if err := netlink.RouteDel(h); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %s: %w", h.Dst, err))
				continue
			}
			changes = append(changes, "deleted route "+h.Dst.String())
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := netlink.RouteReplace(want[k]); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", k, err))
			continue
		}
		changes = append(changes, "route "+k+" via "+openapi.GatewayPortName)
	}
	return changes, errors.Join(errs...)
}

func route(l netlink.Link, r openapi.GatewayRoute) (*netlink.Route, error) {
	p, err := netip.ParsePrefix(r.Dst)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("route destination %q is not an IPv4 prefix", r.Dst)
	}
	p = p.Masked()
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(p), Protocol: unix.RTPROT_STATIC}
	if r.Via == "" {
		rt.Scope = netlink.SCOPE_LINK
		return rt, nil
	}
	via, err := netip.ParseAddr(r.Via)
	if err != nil || !via.Is4() {
		return nil, fmt.Errorf("route next hop %q is not IPv4", r.Via)
	}
	rt.Gw = via.AsSlice()
	rt.Flags = int(netlink.FLAG_ONLINK)
	return rt, nil
}

func sameRoute(a, b *netlink.Route) bool {
	return a.Gw.Equal(b.Gw) && (a.Gw == nil) == (b.Gw == nil) && a.Scope == b.Scope
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ensureForwarding turns IPv4 forwarding on (the host's kernel routes
// between the underlay and the gateway port) and ICMP redirects off on
// the gateway port (a packet the kernel drops there must not teach anyone
// a shortcut; conf/all/send_redirects, the host's, is left alone).
func (m *Manager) ensureForwarding() ([]string, error) {
	redirects := m.ProcSys + "/net/ipv4/conf/" + openapi.GatewayPortName + "/send_redirects"
	if b, err := os.ReadFile(redirects); err == nil && len(b) > 0 && b[0] != '0' {
		if err := os.WriteFile(redirects, []byte("0\n"), 0o644); err != nil {
			return nil, fmt.Errorf("ICMP redirects off on %s: %w", openapi.GatewayPortName, err)
		}
	}
	path := m.ProcSys + "/net/ipv4/ip_forward"
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[0] == '1' {
		return nil, nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return nil, fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return []string{"IPv4 forwarding on"}, nil
}

// ensureEgressIPs makes the labelled addresses of the underlay interface
// exactly g's egress IPs (as /32), announcing each one it adds.
func (m *Manager) ensureEgressIPs(g *openapi.Gateway) ([]string, error) {
	if m.Underlay == "" {
		if g != nil && len(g.EgressIPs) > 0 {
			return nil, errors.New("egress IPs need the underlay interface, which this agent does not manage")
		}
		return nil, nil
	}
	l, err := netlink.LinkByName(m.Underlay)
	if err != nil {
		return nil, fmt.Errorf("underlay interface %s: %w", m.Underlay, err)
	}
	want := map[string]bool{}
	if g != nil {
		for _, ip := range g.EgressIPs {
			want[ip] = true
		}
	}
	label := m.Underlay + AddrLabelSuffix
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var changes []string
	var errs []error
	for _, a := range addrs {
		if a.Label != label {
			continue
		}
		ip := a.IP.String()
		if want[ip] {
			delete(want, ip)
			continue
		}
		if err := netlink.AddrDel(l, &a); err != nil {
			errs = append(errs, fmt.Errorf("remove egress IP %s: %w", ip, err))
			continue
		}
		changes = append(changes, "released egress IP "+ip)
	}
	for ip := range want {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("egress IP %q is not IPv4", ip))
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(a, 32)), Label: label}
		if err := netlink.AddrReplace(l, addr); err != nil {
			errs = append(errs, fmt.Errorf("add egress IP %s: %w", ip, err))
			continue
		}
		changes = append(changes, "holds egress IP "+ip)
		if err := announce(l, a); err != nil {
			errs = append(errs, fmt.Errorf("announce egress IP %s: %w", ip, err))
		}
	}
	return changes, errors.Join(errs...)
}
