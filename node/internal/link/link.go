// Package link attaches containers to the host with netlink: for each
// container port it converges a veth pair whose host end carries the OVS port
// name and whose container end is eth0 in the container's network namespace
// (MAC, MTU, address, default route, tx offload), creates and deletes the
// managed sandbox namespaces the agent owns (with their resolv.conf under
// /etc/netns, resolvconf.go), converges the agent's DNS namespace and its
// veth (dnsns.go), and moves the underlay address onto the tunnel endpoint
// bridge.
//
// It must not talk to OVS (package ovs does), must not delete or change a
// link, route or namespace it cannot prove it created (both veth ends carry
// an alias label "switchyard:<container id>", its default routes the
// protocol RouteProtocol, managed sandboxes a name prefix, the DNS veth the
// alias DNSAliasPrefix, resolv.conf files a first line; a user's netns
// path is never deleted), must not enter a namespace a container names
// unless the path resolves beneath the netns directory and is neither the
// host's namespace nor a managed sandbox (guard.go), and must not leave any
// OS thread in a foreign namespace.
package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/openapi"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AliasPrefix starts the alias (IFLA_IFALIAS) of every host-side veth this
// package creates: it is how Prune recognizes its own links.
const AliasPrefix = "switchyard:"

// ContainerIface is the name of the container end of every veth.
const ContainerIface = "eth0"

// CreatedVeth starts the change Ensure reports when it (re)created a veth
// pair: the host end is a new device even if its name is old.
const CreatedVeth = "created veth "

// DefaultSandboxPrefix names managed sandboxes when Options.SandboxPrefix is empty.
const DefaultSandboxPrefix = "switchyard-"

// Options configure a Manager.
type Options struct {
	// HostNetns is the path of the namespace the agent's side of every veth
	// lives in (the namespace OVS runs in). Empty: the calling process's.
	HostNetns string
	// NetnsDir holds managed sandboxes, and the netns path a container
	// names must resolve beneath it. Empty: /run/netns.
	NetnsDir string
	// SandboxPrefix is prepended to ContainerPort.Sandbox to name a managed
	// sandbox; namespaces with this prefix belong to this manager. Empty:
	// DefaultSandboxPrefix.
	SandboxPrefix string
	// TxOffloadOff turns tx checksum offload off on both veth ends. Needed on
	// the userspace (netdev) datapath, where TCP hangs otherwise.
	TxOffloadOff bool
	// ResolvConfDir, when set (normally /etc/netns), gets a resolv.conf
	// for every managed sandbox with a gateway (resolvconf.go).
	ResolvConfDir string
	// BeforeCreate, if set, is called with the host end's name before
	// Ensure deletes or creates a veth; an error fails Ensure. Package ovs
	// uses it to make ovs-vswitchd let go of a device by that name first.
	BeforeCreate func(name string) error
}

// Manager converges links. Its methods are safe for concurrent use.
type Manager struct {
	opts   Options
	hostNs netns.NsHandle
	// hostIsOwn: the host namespace is the agent's own, so host sysctls
	// are read and written without moving a thread into it.
	hostIsOwn bool
	host      *netlink.Handle
	hostET    *ethtoolSock

	prepareOnce sync.Once
	prepareErr  error

	// netnsDir is opts.NetnsDir with symlinks resolved; hostIDs are the
	// namespaces no container may name (see guard.go).
	netnsDir string
	hostIDs  map[nsID]string
	// dnsNS is the agent's DNS namespace (dnsns.go), once ensured: no
	// container may name it either.
	dnsNS atomic.Pointer[nsID]
}

// New opens netlink and ethtool sockets in the host namespace.
func New(opts Options) (*Manager, error) {
	if opts.NetnsDir == "" {
		opts.NetnsDir = DefaultNetnsDir
	}
	if opts.SandboxPrefix == "" {
		opts.SandboxPrefix = DefaultSandboxPrefix
	}
	m := &Manager{opts: opts}
	var err error
	if opts.HostNetns == "" {
		m.hostNs, err = netns.Get()
	} else {
		m.hostNs, err = netns.GetFromPath(opts.HostNetns)
	}
	if err != nil {
		return nil, fmt.Errorf("open host netns %q: %w", opts.HostNetns, err)
	}
	if m.host, err = netlink.NewHandleAt(m.hostNs, unix.NETLINK_ROUTE); err != nil {
		m.hostNs.Close()
		return nil, fmt.Errorf("netlink in host netns: %w", err)
	}
	if m.hostIDs, err = hostNamespaces(m.hostNs); err != nil {
		m.host.Close()
		m.hostNs.Close()
		return nil, err
	}
	if m.hostET, err = ethtoolSocketIn(m.hostNs); err != nil {
		m.host.Close()
		m.hostNs.Close()
		return nil, fmt.Errorf("ethtool in host netns: %w", err)
	}
	m.netnsDir = resolveDir(opts.NetnsDir)
	if hid, err := nsIDOf(int(m.hostNs)); err == nil {
		own, err := nsIDOfPath("/proc/self/ns/net")
		m.hostIsOwn = err == nil && own == hid
	}
	return m, nil
}

// Close releases the manager's sockets.
func (m *Manager) Close() error {
	m.hostET.Close()
	m.host.Close()
	return m.hostNs.Close()
}

// SandboxPath is where the managed sandbox of a port lives.
func (m *Manager) SandboxPath(sandbox string) string {
	return filepath.Join(m.opts.NetnsDir, m.opts.SandboxPrefix+sandbox)
}

// NetnsPath is the container namespace of p: its Netns path, or the path of
// its managed sandbox.
func (m *Manager) NetnsPath(p openapi.ContainerPort) string {
	if p.Netns != "" {
		return p.Netns
	}
	return m.SandboxPath(sandboxName(p))
}

func sandboxName(p openapi.ContainerPort) string {
	if p.Sandbox != "" {
		return p.Sandbox
	}
	return p.Container
}

// Ensure converges the veth of p and returns what it changed (nothing when
// the link was already right).
func (m *Manager) Ensure(p openapi.ContainerPort) ([]string, error) {
	return m.converge(p, true)
}

// Check returns how the link of p differs from p, changing nothing.
func (m *Manager) Check(p openapi.ContainerPort) ([]string, error) {
	return m.converge(p, false)
}

// spec is a validated ContainerPort.
type spec struct {
	mac  net.HardwareAddr
	addr *net.IPNet
	gw   net.IP
	fam  int
}

func parseSpec(p openapi.ContainerPort) (spec, error) {
	var s spec
	if p.Name == "" || len(p.Name) > unix.IFNAMSIZ-1 || strings.ContainsAny(p.Name, "/ ") {
		return s, fmt.Errorf("invalid port name %q", p.Name)
	}
	var err error
	if s.mac, err = net.ParseMAC(p.MAC); err != nil {
		return s, fmt.Errorf("port %s: bad MAC %q", p.Name, p.MAC)
	}
	ip, err := netip.ParseAddr(p.IP)
	if err != nil {
		return s, fmt.Errorf("port %s: bad IP %q", p.Name, p.IP)
	}
	if p.PrefixLen <= 0 || p.PrefixLen > ip.BitLen() {
		return s, fmt.Errorf("port %s: bad prefix length %d", p.Name, p.PrefixLen)
	}
	s.addr = &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(p.PrefixLen, ip.BitLen())}
	s.fam = unix.AF_INET
	if ip.Is6() {
		s.fam = unix.AF_INET6
	}
	if p.Gateway != "" {
		gw, err := netip.ParseAddr(p.Gateway)
		if err != nil || gw.Is6() != ip.Is6() {
			return s, fmt.Errorf("port %s: bad gateway %q", p.Name, p.Gateway)
		}
		s.gw = gw.AsSlice()
	}
	if p.MTU < 0 || (p.MTU > 0 && p.MTU < 68) {
		return s, fmt.Errorf("port %s: bad MTU %d", p.Name, p.MTU)
	}
	return s, nil
}

// converge compares the link of p with p; with fix it repairs every
// difference. It returns the differences found, and an error when p cannot
// be realized (bad spec, missing netns path, netlink failure).
func (m *Manager) converge(p openapi.ContainerPort, fix bool) ([]string, error) {
	s, err := parseSpec(p)
	if err != nil {
		return nil, err
	}
	var diffs []string
	ns, created, err := m.containerNetns(p, fix)
	if err != nil || (ns < 0 && !fix) {
		if err == nil {
			diffs = append(diffs, "sandbox "+m.NetnsPath(p)+" missing")
		}
		return diffs, err
	}
	defer ns.Close()
	nsPath := m.NetnsPath(p)
	if created {
		diffs = append(diffs, "created sandbox "+nsPath)
	}
	c, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return diffs, fmt.Errorf("netlink in netns %s: %w", nsPath, err)
	}
	defer c.Close()

	host, peer, d, err := m.ensurePair(c, ns, p, s, fix)
	diffs = append(diffs, d...)
	if err != nil || host == nil {
		return diffs, err
	}
	d, err = m.ensureAttrs(c, ns, host, peer, p, s, fix)
	diffs = append(diffs, d...)
	if err != nil {
		return diffs, err
	}
	d, err = m.ensureResolvConf(p, fix)
	return append(diffs, d...), err
}

// containerNetns opens the namespace of p. A user path is checked first
// (see guard.go) and must exist; a missing managed sandbox is created when
// fix is set, else an invalid handle (-1) is returned.
func (m *Manager) containerNetns(p openapi.ContainerPort, fix bool) (ns netns.NsHandle, created bool, err error) {
	if p.Netns != "" {
		ns, err := m.openUserNetns(p.Netns)
		if err != nil {
			return -1, false, fmt.Errorf("container %s: %w", p.Container, err)
		}
		return ns, false, nil
	}
	name := sandboxName(p)
	if err := validSandboxName(name); err != nil {
		return -1, false, fmt.Errorf("container %s: %w", p.Container, err)
	}
	return m.namedNetns(m.SandboxPath(name), fix)
}

// namedNetns opens the named namespace at path (the agent's own), or when
// fix is set creates it when missing (replacing a stale plain file); else
// it returns an invalid handle (-1) for a missing one.
func (m *Manager) namedNetns(path string, fix bool) (ns netns.NsHandle, created bool, err error) {
	ok, err := isNetns(path)
	if err == nil && ok {
		return openNetns(path, false)
	}
	if !fix {
		return -1, false, nil
	}
	if err == nil { // a stale plain file from an earlier life: replace it
		if err := deleteNamedNetns(path); err != nil {
			return -1, false, err
		}
	}
	if m.prepareOnce.Do(func() { m.prepareErr = prepareNetnsDir(m.opts.NetnsDir) }); m.prepareErr != nil {
		return -1, false, m.prepareErr
	}
	if err := createNamedNetns(path); err != nil {
		return -1, false, fmt.Errorf("create netns %s: %w", path, err)
	}
	return openNetns(path, true)
}

func openNetns(path string, created bool) (netns.NsHandle, bool, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return -1, created, fmt.Errorf("open netns %s: %w", path, err)
	}
	return ns, created, nil
}

// ensurePair finds the veth pair of p, or (with fix) recreates it. It
// returns nil links when the pair is wrong and fix is unset. It deletes
// only a host end it labelled (and with it that end's peer, its own), never
// an eth0 that is not the peer of p's host end: such an eth0 is another
// port's, or not the agent's at all, and p fails instead.
func (m *Manager) ensurePair(c *netlink.Handle, ns netns.NsHandle, p openapi.ContainerPort, s spec, fix bool) (host, peer netlink.Link, diffs []string, err error) {
	host, _ = m.host.LinkByName(p.Name)
	peer, _ = c.LinkByName(ContainerIface)
	if paired(host, peer) {
		return host, peer, nil, nil
	}
	if host != nil && !m.ours(host) {
		return nil, nil, nil, fmt.Errorf("container %s: interface %s exists in the host namespace and was not created by switchyard; refusing to touch it",
			p.Container, p.Name)
	}
	if peer != nil {
		return nil, nil, nil, fmt.Errorf("container %s: netns %s already has an %s %s; refusing to touch it",
			p.Container, m.NetnsPath(p), ContainerIface, m.whose(peer))
	}
	// The pair is (re)made below: refuse first, when the namespace's
	// default route is someone else's, rather than half-configure it.
	if err := foreignDefaultRoute(c, s, -1); err != nil {
		return nil, nil, nil, fmt.Errorf("container %s: netns %s: %w", p.Container, m.NetnsPath(p), err)
	}
	if host == nil {
		diffs = append(diffs, "veth "+p.Name+" missing")
	} else {
		diffs = append(diffs, "veth "+p.Name+": peer "+ContainerIface+" missing")
	}
	if !fix {
		return nil, nil, diffs, nil
	}
	if m.opts.BeforeCreate != nil {
		if err := m.opts.BeforeCreate(p.Name); err != nil {
			return nil, nil, diffs, fmt.Errorf("veth %s: %w", p.Name, err)
		}
	}
	if host != nil {
		if err := m.host.LinkDel(host); err != nil {
			return nil, nil, diffs, fmt.Errorf("delete %s: %w", p.Name, err)
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: p.Name, MTU: p.MTU, Alias: alias(p)},
		PeerName:         ContainerIface,
		PeerHardwareAddr: s.mac,
		PeerNamespace:    netlink.NsFd(int(ns)),
		PeerMTU:          uint32(p.MTU),
	}
	if err := m.host.LinkAdd(veth); err != nil {
		return nil, nil, diffs, fmt.Errorf("create veth %s: %w", p.Name, err)
	}
	if host, err = m.host.LinkByName(p.Name); err != nil {
		return nil, nil, diffs, fmt.Errorf("created veth %s: %w", p.Name, err)
	}
	if peer, err = c.LinkByName(ContainerIface); err != nil {
		return nil, nil, diffs, fmt.Errorf("created veth %s: peer: %w", p.Name, err)
	}
	// Before either end comes up: no IPv6 link-local address on them, so
	// neither end sends router solicitations, MLD reports or duplicate
	// address probes into the switch, and the host's ovs-vswitchd does not
	// re-read the namespace's addresses and routes for each new port (see
	// quietIPv6). The host end's is set with its other changes, last
	// (ensureAttrs).
	if err := quietIPv6(c, peer); err != nil {
		return nil, nil, diffs, fmt.Errorf("created veth %s: peer: %w", p.Name, err)
	}
	if err := c.LinkSetAlias(peer, alias(p)); err != nil {
		return nil, nil, diffs, fmt.Errorf("created veth %s: label %s: %w", p.Name, ContainerIface, err)
	}
	peer.Attrs().Alias = alias(p)
	return host, peer, append(diffs, CreatedVeth+p.Name), nil
}

// addrGenModeNone is the kernel's IN6_ADDR_GEN_MODE_NONE: the link gets no
// IPv6 link-local address (IFLA_INET6_ADDR_GEN_MODE).
const addrGenModeNone = 1

// quietIPv6 keeps IPv6 off the air on one end of a container's veth: the
// overlay is IPv4 (IPAM hands out IPv4 addresses only), and a link-local
// address brings duplicate-address probes, router solicitations and MLD
// reports into br-int for each new container, plus an address and route
// notification that makes ovs-vswitchd dump every link and address of the
// host (its cost grows with the host's ports). Measured in
// docs/benchmarks-convergence-early.md ("IPv6 chatter"). Only links this package
// just created are touched; the sysctl defaults of the namespace are not.
func quietIPv6(h *netlink.Handle, l netlink.Link) error {
	err := h.LinkSetIP6AddrGenMode(l, addrGenModeNone)
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil // a kernel without IPv6: nothing to keep quiet
	}
	if err != nil {
		return fmt.Errorf("IPv6 address generation off on %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// hostIPv6Off turns IPv6 off on the host end of a container's veth before
// it comes up (the sysctl disable_ipv6 of that interface alone, in the host
// namespace). More than quietIPv6: no link-local address and also no
// multicast route (ff00::/8), whose addition at link-up and removal at
// deletion are route notifications in ovs-vswitchd's namespace. In OVS 3.1
// every such notification makes it flush and re-read the whole routing
// table, and while it does, tunnel packets that meet a revalidation are
// lost (docs/failure-matrix.md, "Link changes on a userspace-datapath
// host"). A link without IPv6 has nothing to turn off.
func (m *Manager) hostIPv6Off(name string) error {
	err := m.hostSysctls("ipv6", name, func(path func(string) string) error {
		p := path("disable_ipv6")
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil // no IPv6 on it: a kernel without, or an MTU below 1280
		}
		if err != nil || strings.TrimSpace(string(b)) == "1" {
			return err
		}
		return os.WriteFile(p, []byte("1\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("IPv6 off on %s: %w", name, err)
	}
	return nil
}

// ours reports whether l is a host-side veth this package created.
func (m *Manager) ours(l netlink.Link) bool {
	return l.Type() == "veth" && strings.HasPrefix(l.Attrs().Alias, AliasPrefix)
}

// whose describes a container-side interface that is not p's.
func (m *Manager) whose(peer netlink.Link) string {
	a := peer.Attrs()
	if peer.Type() == "veth" && strings.HasPrefix(a.Alias, AliasPrefix) {
		return fmt.Sprintf("of another switchyard port (%s)", strings.TrimPrefix(a.Alias, AliasPrefix))
	}
	return fmt.Sprintf("(a %s) that switchyard did not create", peer.Type())
}

// paired reports whether host and peer are the two ends of one veth.
func paired(host, peer netlink.Link) bool {
	if host == nil || peer == nil || host.Type() != "veth" || peer.Type() != "veth" {
		return false
	}
	return host.Attrs().ParentIndex == peer.Attrs().Index &&
		peer.Attrs().ParentIndex == host.Attrs().Index
}

func alias(p openapi.ContainerPort) string {
	id := p.ID
	if id == "" {
		id = p.Container
	}
	return AliasPrefix + id
}

// ensureAttrs converges everything about an existing pair.
func (m *Manager) ensureAttrs(c *netlink.Handle, ns netns.NsHandle, host, peer netlink.Link, p openapi.ContainerPort, s spec, fix bool) ([]string, error) {
	var diffs []string
	// step records a difference and, with fix, repairs it.
	step := func(wrong bool, what string, repair func() error) error {
		if !wrong {
			return nil
		}
		diffs = append(diffs, what)
		if !fix {
			return nil
		}
		if err := repair(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	pa := peer.Attrs()
	mtu := p.MTU
	// lo is the agent's to bring up only in its own sandboxes.
	loDown := false
	var lo netlink.Link
	if p.Netns == "" {
		var err error
		if lo, err = c.LinkByName("lo"); err != nil {
			return diffs, fmt.Errorf("lo in %s: %w", m.NetnsPath(p), err)
		}
		loDown = lo.Attrs().Flags&net.FlagUp == 0
	}
	// The container's link first, then the host end, then the container's
	// addresses and routes. Every change of the host end is a link
	// notification in the host's namespace, and ovs-vswitchd reconfigures
	// its bridges on each batch of them it reads (linear in their ports,
	// about 10 ms at 110 ports on the reference machine): the host end's
	// changes go together, and right after a new pair's creation, so that
	// as few reconfigurations as possible see them (measured in
	// docs/benchmarks-convergence.md, seventh and tenth passes). eth0 is up
	// before the host end comes up, so the host end's carrier comes with
	// it, not as one more notification later.
	steps := []error{
		step(pa.Alias != alias(p), ContainerIface+": alias", func() error { return c.LinkSetAlias(peer, alias(p)) }),
		step(mtu > 0 && pa.MTU != mtu, fmt.Sprintf("%s: mtu %d", ContainerIface, pa.MTU), func() error { return c.LinkSetMTU(peer, mtu) }),
		step(pa.HardwareAddr.String() != s.mac.String(), ContainerIface+": mac "+pa.HardwareAddr.String(),
			func() error { return c.LinkSetHardwareAddr(peer, s.mac) }),
		step(pa.Flags&net.FlagUp == 0, ContainerIface+": down", func() error { return c.LinkSetUp(peer) }),
	}
	if err := errors.Join(steps...); err != nil {
		return diffs, err
	}
	// The host end: its alias and MTU (set when it is made, so normally
	// right), IPv6 off before it comes up (hostIPv6Off), promiscuous, up,
	// and its tx checksum offload.
	ha := host.Attrs()
	steps = []error{
		step(ha.Alias != alias(p), p.Name+": alias", func() error { return m.host.LinkSetAlias(host, alias(p)) }),
		step(mtu > 0 && ha.MTU != mtu, fmt.Sprintf("%s: mtu %d", p.Name, ha.MTU), func() error { return m.host.LinkSetMTU(host, mtu) }),
		step(ha.Flags&net.FlagUp == 0, p.Name+": down", func() error {
			if err := m.hostIPv6Off(p.Name); err != nil {
				return err
			}
			// Promiscuous, as ovs-vswitchd makes a port it adds: done
			// here, in the same burst, it spares the switch a
			// notification and a reconfiguration of its own then.
			if ha.RawFlags&unix.IFF_PROMISC == 0 {
				if err := m.host.SetPromiscOn(host); err != nil {
					return err
				}
			}
			return m.host.LinkSetUp(host)
		}),
	}
	if err := errors.Join(steps...); err != nil {
		return diffs, err
	}
	if m.opts.TxOffloadOff {
		var err error
		if diffs, err = m.hostTxOff(p.Name, diffs, fix); err != nil {
			return diffs, err
		}
	}
	if err := step(loDown, "lo: down", func() error { return c.LinkSetUp(lo) }); err != nil {
		return diffs, err
	}
	d, err := ensureAddr(c, peer, s, fix)
	diffs = append(diffs, d...)
	if err != nil {
		return diffs, err
	}
	d, err = ensureDefaultRoute(c, peer, s, fix)
	diffs = append(diffs, d...)
	if err != nil || !m.opts.TxOffloadOff {
		return diffs, err
	}
	return m.ensureOffload(ns, ContainerIface, diffs, fix)
}

// hostTxOff turns off tx checksum offload of name in the host namespace.
func (m *Manager) hostTxOff(name string, diffs []string, fix bool) ([]string, error) {
	d, err := ensureTxOff(m.hostET, name, fix)
	if d != "" {
		diffs = append(diffs, d)
	}
	return diffs, err
}

// ensureOffload turns off tx checksum offload of name in ns.
func (m *Manager) ensureOffload(ns netns.NsHandle, name string, diffs []string, fix bool) ([]string, error) {
	et, err := ethtoolSocketIn(ns)
	if err != nil {
		return diffs, err
	}
	defer et.Close()
	d, err := ensureTxOff(et, name, fix)
	if d != "" {
		diffs = append(diffs, d)
	}
	return diffs, err
}

// ensureAddr makes the desired address the only global address of its
// family on l.
func ensureAddr(h *netlink.Handle, l netlink.Link, s spec, fix bool) ([]string, error) {
	addrs, err := h.AddrList(l, s.fam)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var diffs []string
	found := false
	for _, a := range addrs {
		if a.IPNet.String() == s.addr.String() {
			found = true
			continue
		}
		if a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue // link-local IPv6 and the like
		}
		diffs = append(diffs, "extra address "+a.IPNet.String())
		if fix {
			if err := h.AddrDel(l, &a); err != nil {
				return diffs, fmt.Errorf("delete address %s: %w", a.IPNet, err)
			}
		}
	}
	if !found {
		diffs = append(diffs, "address "+s.addr.String()+" missing")
		if fix {
			if err := h.AddrReplace(l, &netlink.Addr{IPNet: s.addr}); err != nil {
				return diffs, fmt.Errorf("add address %s: %w", s.addr, err)
			}
		}
	}
	return diffs, nil
}

// RouteProtocol marks the routes this package creates (rtm_protocol; not
// a number iproute2 or a routing daemon uses). A default route with
// another protocol is not the agent's, and is never replaced.
const RouteProtocol netlink.RouteProtocol = 83 // 'S'

// ensureDefaultRoute makes the default route of the namespace's main table
// go via the gateway on l. It changes only a default route it created; any
// other default route that is not already the right one fails the port.
func ensureDefaultRoute(h *netlink.Handle, l netlink.Link, s spec, fix bool) ([]string, error) {
	if s.gw == nil {
		return nil, nil
	}
	if err := foreignDefaultRoute(h, s, l.Attrs().Index); err != nil {
		if errors.Is(err, errRouteOK) {
			return nil, nil
		}
		return nil, err
	}
	diffs := []string{"default route via " + s.gw.String() + " missing"}
	if fix {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: s.gw, Family: s.fam, Protocol: RouteProtocol}
		if err := h.RouteReplace(r); err != nil {
			return diffs, fmt.Errorf("default route via %s: %w", s.gw, err)
		}
	}
	return diffs, nil
}

// errRouteOK says the wanted default route is already there.
var errRouteOK = errors.New("default route in place")

// foreignDefaultRoute returns errRouteOK when the main table already has
// the wanted default route (via the gateway on link index link), an error
// naming a default route of the family that the agent did not create, or
// nil when the agent may add or replace its own.
func foreignDefaultRoute(h *netlink.Handle, s spec, link int) error {
	if s.gw == nil {
		return nil
	}
	routes, err := h.RouteListFiltered(s.fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if isDefault(r.Dst) && r.LinkIndex == link && r.Gw.Equal(s.gw) {
			return errRouteOK
		}
	}
	for _, r := range routes {
		if isDefault(r.Dst) && r.Protocol != RouteProtocol {
			return fmt.Errorf("a default route %s exists that switchyard did not create; refusing to replace it", describeRoute(h, r))
		}
	}
	return nil
}

func describeRoute(h *netlink.Handle, r netlink.Route) string {
	d := "dev #" + fmt.Sprint(r.LinkIndex)
	if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
		d = "dev " + l.Attrs().Name
	}
	if r.Gw != nil {
		d = "via " + r.Gw.String() + " " + d
	}
	return fmt.Sprintf("(%s, protocol %s)", d, r.Protocol)
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

func isUp(a *netlink.LinkAttrs) bool {
	return a.OperState == netlink.OperUp || (a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_RUNNING != 0)
}

// States returns whether each link of the host namespace is up, by name,
// from one netlink dump (cheaper than Status per port on a busy host).
func (m *Manager) States() (map[string]bool, error) {
	links, err := m.host.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make(map[string]bool, len(links))
	for _, l := range links {
		out[l.Attrs().Name] = isUp(l.Attrs())
	}
	return out, nil
}

// State reports whether the host-side link name exists and is up.
func (m *Manager) State(name string) (up, found bool, err error) {
	l, err := m.host.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("link %s: %w", name, err)
	}
	return isUp(l.Attrs()), true, nil
}

// Prune deletes the veths this package labelled whose host end is not in
// keepPorts, and the managed sandboxes whose name (without prefix) is not in
// keepSandboxes. It returns what it deleted.
func (m *Manager) Prune(keepPorts, keepSandboxes map[string]bool) ([]string, error) {
	links, err := m.host.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var deleted []string
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || !strings.HasPrefix(a.Alias, AliasPrefix) || keepPorts[a.Name] {
			continue
		}
		if err := m.host.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", a.Name, err))
			continue
		}
		deleted = append(deleted, "veth "+a.Name)
	}
	names, err := listNamedNetns(m.opts.NetnsDir, m.opts.SandboxPrefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if keepSandboxes[strings.TrimPrefix(n, m.opts.SandboxPrefix)] {
			continue
		}
		if err := deleteNamedNetns(filepath.Join(m.opts.NetnsDir, n)); err != nil {
			errs = append(errs, fmt.Errorf("delete sandbox %s: %w", n, err))
			continue
		}
		if err := m.removeResolvConf(n); err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s: resolv.conf: %w", n, err))
		}
		deleted = append(deleted, "sandbox "+n)
	}
	return deleted, errors.Join(errs...)
}

// SandboxOf returns the managed sandbox name of p, or "" when p names a
// user namespace path.
func SandboxOf(p openapi.ContainerPort) string {
	if p.Netns != "" {
		return ""
	}
	return sandboxName(p)
}
