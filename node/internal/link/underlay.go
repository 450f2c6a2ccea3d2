package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// WaitLink waits until a link named name exists in the host namespace (OVS
// creates internal ports asynchronously).
func (m *Manager) WaitLink(ctx context.Context, name string) error {
	for {
		if _, err := m.host.LinkByName(name); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for link %s: %w", name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// MoveAddress moves addr from link from to link to, moves the routes through
// from that need it along, and brings both links up. When addr is already on
// to and not on from, it changes nothing and returns false.
func (m *Manager) MoveAddress(from, to string, addr netip.Prefix) (bool, error) {
	src, err := m.host.LinkByName(from)
	if err != nil {
		return false, fmt.Errorf("link %s: %w", from, err)
	}
	dst, err := m.host.LinkByName(to)
	if err != nil {
		return false, fmt.Errorf("link %s: %w", to, err)
	}
	want := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}
	fam := unix.AF_INET
	if addr.Addr().Is6() {
		fam = unix.AF_INET6
	}
	onSrc, err := m.hasAddr(src, fam, want)
	if err != nil {
		return false, err
	}
	onDst, err := m.hasAddr(dst, fam, want)
	if err != nil {
		return false, err
	}
	changed := false
	for _, l := range []netlink.Link{src, dst} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := m.host.LinkSetUp(l); err != nil {
				return changed, fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
			}
			changed = true
		}
	}
	if onDst && !onSrc {
		return changed, nil
	}
	// Routes via from other than the connected one vanish with the address:
	// remember them to re-add them on to.
	routes, err := m.host.RouteList(src, fam)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return changed, fmt.Errorf("routes of %s: %w", from, err)
	}
	if onSrc {
		if err := m.host.AddrDel(src, &netlink.Addr{IPNet: want}); err != nil {
			return changed, fmt.Errorf("remove %s from %s: %w", addr, from, err)
		}
	}
	if !onDst {
		if err := m.host.AddrReplace(dst, &netlink.Addr{IPNet: want}); err != nil {
			return true, fmt.Errorf("add %s to %s: %w", addr, to, err)
		}
	}
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_KERNEL || r.Table != unix.RT_TABLE_MAIN {
			continue
		}
		r.LinkIndex = dst.Attrs().Index
		r.ILinkIndex = 0
		if err := m.host.RouteReplace(&r); err != nil {
			return true, fmt.Errorf("move route %s to %s: %w", r, to, err)
		}
	}
	return true, nil
}

func (m *Manager) hasAddr(l netlink.Link, fam int, want *net.IPNet) (bool, error) {
	addrs, err := m.host.AddrList(l, fam)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			return true, nil
		}
	}
	return false, nil
}

// TxOffloadOff turns tx checksum offload off on a link in the host
// namespace, and reports whether it changed anything.
func (m *Manager) TxOffloadOff(name string) (bool, error) {
	d, err := ensureTxOff(m.hostET, name, true)
	return d != "", err
}

// ARP is how the kernel answers and sends ARP on one IPv4 interface: the
// sysctls net.ipv4.conf.<iface>.arp_ignore and .arp_announce.
type ARP struct{ Ignore, Announce int }

// quiet reports whether a makes the interface answer no ARP request for an
// address it does not carry itself (arp_ignore 1, 2 or 8) and use only its
// own addresses as ARP sources (arp_announce 2).
func (a ARP) quiet() bool {
	return (a.Ignore == 1 || a.Ignore == 2 || a.Ignore == 8) && a.Announce == 2
}

// ARPOf reads the ARP settings of iface in the host namespace.
func (m *Manager) ARPOf(iface string) (ARP, error) {
	var a ARP
	err := m.sysctls(iface, func(path func(string) string) error {
		var err error
		if a.Ignore, err = readInt(path("arp_ignore")); err != nil {
			return err
		}
		a.Announce, err = readInt(path("arp_announce"))
		return err
	})
	return a, err
}

// SetARP writes the ARP settings of iface in the host namespace (what
// QuietARP changed, to restore it).
func (m *Manager) SetARP(iface string, a ARP) error {
	return m.sysctls(iface, func(path func(string) string) error {
		if err := writeInt(path("arp_ignore"), a.Ignore); err != nil {
			return err
		}
		return writeInt(path("arp_announce"), a.Announce)
	})
}

// QuietARP makes the underlay interface iface silent for addresses it does
// not carry itself, in particular the underlay address moved from it to the
// tunnel endpoint bridge. By default Linux answers ARP for any local address
// on any interface: the underlay interface would answer for the moved
// address with its own MAC next to the bridge, and a peer's OVS tunnel
// neighbour cache could learn that MAC, which OVS never receives on (the
// tunnel then stays down until the cache entry goes). It sets arp_ignore=1
// (answer only for the interface's own addresses; other addresses the
// operator keeps on it still work) unless the setting is already at least
// that strict, and arp_announce=2. It returns the settings found, for
// SetARP to restore, and whether it changed them.
func (m *Manager) QuietARP(iface string) (orig ARP, changed bool, err error) {
	orig, err = m.ARPOf(iface)
	if err != nil || orig.quiet() {
		return orig, false, err
	}
	want := ARP{Ignore: orig.Ignore, Announce: 2}
	if want.Ignore != 1 && want.Ignore != 2 && want.Ignore != 8 {
		want.Ignore = 1
	}
	return orig, true, m.SetARP(iface, want)
}

// sysctls runs fn in the host namespace (where /proc/sys/net shows the
// namespace of the thread that opens it) with the path of iface's IPv4
// settings.
func (m *Manager) sysctls(iface string, fn func(path func(string) string) error) error {
	if err := m.hostSysctls("ipv4", iface, fn); err != nil {
		return fmt.Errorf("ARP settings of %s: %w", iface, err)
	}
	return nil
}

// hostSysctls runs fn in the host namespace with the path of iface's
// settings of family ("ipv4", "ipv6") under /proc/sys/net.
func (m *Manager) hostSysctls(family, iface string, fn func(path func(string) string) error) error {
	if iface == "" || iface == "." || iface == ".." || len(iface) >= unix.IFNAMSIZ || strings.ContainsRune(iface, '/') {
		return fmt.Errorf("invalid interface name %q", iface)
	}
	dir := filepath.Join("/proc/sys/net", family, "conf", iface)
	do := func() error { return fn(func(name string) string { return filepath.Join(dir, name) }) }
	if m.hostIsOwn {
		// Unlocked goroutines run on threads in the process's namespace
		// (inNetns puts back, or destroys, every thread it moves).
		return do()
	}
	return inNetns(m.hostNs, do)
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func writeInt(path string, v int) error {
	return os.WriteFile(path, []byte(strconv.Itoa(v)+"\n"), 0o644)
}
