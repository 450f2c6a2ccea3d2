package link

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/openapi"
)

// The agent's DNS namespace holds the node-local resolver's sockets. It is
// the agent's own: a named netns (DNSNetnsName) with one veth, whose end
// inside is eth0 with MAC openapi.DNSMAC and whose host end (the OVS port
// openapi.DNSPortName) carries the alias DNSAliasPrefix+<netns name>.
// Inside, each network served has its resolver address
// openapi.DNSAddr(vni)/32 on lo; everything else leaves by eth0 through a
// default route via DNSNextHop (onlink) whose neighbour is permanent
// (openapi.DNSNextHopMAC), so the namespace never ARPs; IPv6 is off.
//
// Only the served addresses are local (not a whole range), and queries
// arrive SNATed to the next hop (the compiler's DNS zone), so no client
// address can be mistaken for a local one.

// DNSAliasPrefix starts the alias of the DNS veth's host end. It is not
// AliasPrefix: Prune never deletes it.
const DNSAliasPrefix = "switchyard-dns:"

// DNSNextHop is the DNS namespace's default gateway (never on the wire:
// OVS takes every packet from the namespace).
const DNSNextHop = "169.254.0.1"

// DNSNetnsName is the default name of host's DNS namespace: "sydns-" and
// 12 hex digits of SHA-256(host).
func DNSNetnsName(host string) string {
	sum := sha256.Sum256([]byte(host))
	return "sydns-" + hex.EncodeToString(sum[:])[:12]
}

// DNSSpec is the DNS namespace wanted.
type DNSSpec struct {
	// Netns is the namespace's name, in the netns directory.
	Netns string
	// Port is the veth's host end (openapi.DNSPortName).
	Port string
	// VNIs are the networks whose resolver addresses go on lo.
	VNIs []int64
	// KeepAddrs leaves lo's addresses as they are (VNIs not known yet:
	// the agent just started, and the namespace serves on meanwhile).
	KeepAddrs bool
}

// DNSPath is where the DNS namespace named name lives.
func (m *Manager) DNSPath(name string) string { return filepath.Join(m.opts.NetnsDir, name) }

// EnsureDNS converges the DNS namespace and its veth to s and returns what
// it changed; a created host end is reported with CreatedVeth.
func (m *Manager) EnsureDNS(s DNSSpec) ([]string, error) {
	if err := validSandboxName(s.Netns); err != nil {
		return nil, fmt.Errorf("dns netns: %w", err)
	}
	if strings.HasPrefix(s.Netns, m.opts.SandboxPrefix) {
		return nil, fmt.Errorf("dns netns %s: the prefix %q is the managed sandboxes' (they would prune it)", s.Netns, m.opts.SandboxPrefix)
	}
	path := m.DNSPath(s.Netns)
	ns, created, err := m.namedNetns(path, true)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if id, err := nsIDOf(int(ns)); err == nil {
		m.dnsNS.Store(&id)
	}
	var diffs []string
	if created {
		diffs = append(diffs, "created dns netns "+path)
	}
	c, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return diffs, fmt.Errorf("netlink in netns %s: %w", path, err)
	}
	defer c.Close()
	if d, err := ipv6Off(ns); err != nil {
		return diffs, err
	} else if d != "" {
		diffs = append(diffs, d)
	}
	host, peer, d, err := m.ensureDNSPair(c, ns, s)
	diffs = append(diffs, d...)
	if err != nil {
		return diffs, err
	}
	d, err = ensureDNSInside(c, peer, s)
	diffs = append(diffs, d...)
	if err != nil {
		return diffs, err
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		diffs = append(diffs, s.Port+": down")
		if err := m.host.LinkSetUp(host); err != nil {
			return diffs, fmt.Errorf("%s up: %w", s.Port, err)
		}
	}
	if !m.opts.TxOffloadOff {
		return diffs, nil
	}
	diffs, err = m.ensureOffload(ns, ContainerIface, diffs, true)
	if err != nil {
		return diffs, err
	}
	return m.hostTxOff(s.Port, diffs, true)
}

// ensureDNSPair finds or (re)makes the veth between the host and the DNS
// namespace. The namespace is the agent's: an eth0 there that is not the
// peer of the host end is deleted. A host end by that name that the agent
// did not label is never touched.
func (m *Manager) ensureDNSPair(c *netlink.Handle, ns netns.NsHandle, s DNSSpec) (host, peer netlink.Link, diffs []string, err error) {
	alias := DNSAliasPrefix + s.Netns
	host, _ = m.host.LinkByName(s.Port)
	peer, _ = c.LinkByName(ContainerIface)
	if paired(host, peer) && host.Attrs().Alias == alias {
		return host, peer, nil, nil
	}
	if host != nil && (host.Type() != "veth" || !strings.HasPrefix(host.Attrs().Alias, DNSAliasPrefix)) {
		return nil, nil, nil, fmt.Errorf("interface %s exists in the host namespace and was not created by switchyard; refusing to touch it", s.Port)
	}
	if m.opts.BeforeCreate != nil {
		if err := m.opts.BeforeCreate(s.Port); err != nil {
			return nil, nil, nil, fmt.Errorf("veth %s: %w", s.Port, err)
		}
	}
	if host != nil {
		if err := m.host.LinkDel(host); err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, nil, nil, fmt.Errorf("delete %s: %w", s.Port, err)
		}
		diffs = append(diffs, "deleted stale "+s.Port)
	}
	if peer, _ = c.LinkByName(ContainerIface); peer != nil {
		if err := c.LinkDel(peer); err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, nil, diffs, fmt.Errorf("delete stale %s in the dns netns: %w", ContainerIface, err)
		}
	}
	mac, _ := net.ParseMAC(openapi.DNSMAC)
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: s.Port, Alias: alias},
		PeerName:         ContainerIface,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err := m.host.LinkAdd(veth); err != nil {
		return nil, nil, diffs, fmt.Errorf("create veth %s: %w", s.Port, err)
	}
	if host, err = m.host.LinkByName(s.Port); err != nil {
		return nil, nil, diffs, fmt.Errorf("created veth %s: %w", s.Port, err)
	}
	if err := m.host.LinkSetAlias(host, alias); err != nil { // LinkAdd does not set it
		return nil, nil, diffs, fmt.Errorf("created veth %s: label: %w", s.Port, err)
	}
	host.Attrs().Alias = alias
	if peer, err = c.LinkByName(ContainerIface); err != nil {
		return nil, nil, diffs, fmt.Errorf("created veth %s: peer: %w", s.Port, err)
	}
	return host, peer, append(diffs, CreatedVeth+s.Port), nil
}

// ensureDNSInside converges eth0 (MAC, up), lo (up, one resolver address
// per network), the default route and the next hop's neighbour entry.
func ensureDNSInside(c *netlink.Handle, eth0 netlink.Link, s DNSSpec) ([]string, error) {
	var diffs []string
	mac, _ := net.ParseMAC(openapi.DNSMAC)
	if eth0.Attrs().HardwareAddr.String() != mac.String() {
		diffs = append(diffs, ContainerIface+": mac")
		if err := c.LinkSetHardwareAddr(eth0, mac); err != nil {
			return diffs, fmt.Errorf("dns %s mac: %w", ContainerIface, err)
		}
	}
	lo, err := c.LinkByName("lo")
	if err != nil {
		return diffs, fmt.Errorf("lo in the dns netns: %w", err)
	}
	for _, l := range []netlink.Link{eth0, lo} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			diffs = append(diffs, l.Attrs().Name+": down")
			if err := c.LinkSetUp(l); err != nil {
				return diffs, fmt.Errorf("dns %s up: %w", l.Attrs().Name, err)
			}
		}
	}
	if !s.KeepAddrs {
		d, err := ensureResolverAddrs(c, lo, s.VNIs)
		diffs = append(diffs, d...)
		if err != nil {
			return diffs, err
		}
	}
	gw := net.ParseIP(DNSNextHop).To4()
	routes, err := c.RouteList(eth0, unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return diffs, fmt.Errorf("dns routes: %w", err)
	}
	haveRoute := false
	for _, r := range routes {
		haveRoute = haveRoute || (isDefault(r.Dst) && r.Gw.Equal(gw) && r.Flags&int(netlink.FLAG_ONLINK) != 0)
	}
	if !haveRoute {
		diffs = append(diffs, "dns default route missing")
		r := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw, Flags: int(netlink.FLAG_ONLINK), Protocol: RouteProtocol}
		if err := c.RouteReplace(r); err != nil {
			return diffs, fmt.Errorf("dns default route via %s: %w", gw, err)
		}
	}
	hop, _ := net.ParseMAC(openapi.DNSNextHopMAC)
	neighs, err := c.NeighList(eth0.Attrs().Index, unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return diffs, fmt.Errorf("dns neighbours: %w", err)
	}
	for _, n := range neighs {
		if n.IP.Equal(gw) && n.HardwareAddr.String() == hop.String() && n.State == netlink.NUD_PERMANENT {
			return diffs, nil
		}
	}
	diffs = append(diffs, "dns next hop neighbour missing")
	n := &netlink.Neigh{LinkIndex: eth0.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: hop}
	if err := c.NeighSet(n); err != nil {
		return diffs, fmt.Errorf("dns neighbour %s: %w", gw, err)
	}
	return diffs, nil
}

// ensureResolverAddrs makes the /32 addresses on lo exactly the resolver
// addresses of vnis (lo's 127.0.0.1/8 is left alone).
func ensureResolverAddrs(c *netlink.Handle, lo netlink.Link, vnis []int64) ([]string, error) {
	want := map[netip.Addr]bool{}
	for _, v := range vnis {
		want[netip.MustParseAddr(openapi.DNSAddr(v))] = true
	}
	addrs, err := c.AddrList(lo, unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("dns addresses: %w", err)
	}
	var diffs []string
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if ones, _ := a.Mask.Size(); ones != 32 || ip.IsLoopback() {
			continue
		}
		if want[ip] {
			delete(want, ip)
			continue
		}
		diffs = append(diffs, "dns address "+ip.String()+" removed")
		if err := c.AddrDel(lo, &a); err != nil {
			return diffs, fmt.Errorf("dns address %s: %w", ip, err)
		}
	}
	for ip := range want {
		diffs = append(diffs, "dns address "+ip.String()+" added")
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: unix.RT_SCOPE_HOST}
		if err := c.AddrReplace(lo, a); err != nil {
			return diffs, fmt.Errorf("dns address %s: %w", ip, err)
		}
	}
	return diffs, nil
}

// ipv6Off turns IPv6 off in ns (all and default interfaces).
func ipv6Off(ns netns.NsHandle) (string, error) {
	var changed bool
	err := inNetns(ns, func() error {
		for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
			b, err := os.ReadFile(p)
			if os.IsNotExist(err) {
				return nil // no IPv6 in this kernel
			}
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(b)) == "1" {
				continue
			}
			changed = true
			if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("dns netns: ipv6 off: %w", err)
	}
	if changed {
		return "dns ipv6 off", nil
	}
	return "", nil
}

// DeleteDNS deletes the DNS namespace named name (and with it its veth),
// if it is there. Only the agent's own namespace name may be given.
func (m *Manager) DeleteDNS(name string) error {
	if err := validSandboxName(name); err != nil {
		return err
	}
	m.dnsNS.Store(nil)
	return deleteNamedNetns(m.DNSPath(name))
}
