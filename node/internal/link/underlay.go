package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
	d, err := ensureTxOff(m.hostET, m.hostNs, name, true)
	return d != "", err
}
