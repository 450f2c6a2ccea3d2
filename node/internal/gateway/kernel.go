package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/openapi"
)

// announce sends a gratuitous ARP request for ip out of l, so that
// neighbours (the outside's router, other hosts) learn that ip moved here.
func announce(l netlink.Link, ip netip.Addr) error {
	mac := l.Attrs().HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("%s has no Ethernet address", l.Attrs().Name)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	frame := make([]byte, 0, 42)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // broadcast
	frame = append(frame, mac...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = binary.BigEndian.AppendUint16(frame, 1)      // Ethernet
	frame = binary.BigEndian.AppendUint16(frame, 0x0800) // IPv4
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request
	a := ip.As4()
	frame = append(frame, mac...)
	frame = append(frame, a[:]...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, a[:]...)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: l.Attrs().Index, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return unix.Sendto(fd, frame, 0, sa)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// dnatKey identifies a published or node port for the conntrack flush.
type dnatKey struct {
	proto uint8
	ip    string
	port  int
}

// removedDNAT are the DNAT rules of from that to no longer has (the same
// port DNATed elsewhere counts as removed: its old connections must go).
func removedDNAT(from, to *openapi.Gateway) []dnatKey {
	if from == nil {
		return nil
	}
	keep := map[string]bool{}
	if to != nil {
		for _, r := range to.NAT {
			keep[r.Key()+"|"+r.ToIP+"|"+fmt.Sprint(r.ToPort)] = true
		}
	}
	var out []dnatKey
	for _, r := range from.NAT {
		if r.Kind == openapi.NATEgress || r.ToIP == "" || keep[r.Key()+"|"+r.ToIP+"|"+fmt.Sprint(r.ToPort)] {
			continue
		}
		proto := uint8(unix.IPPROTO_TCP)
		if strings.EqualFold(r.Protocol, "UDP") {
			proto = unix.IPPROTO_UDP
		}
		ip := r.HostIP
		if ip == "" {
			ip = from.Address
		}
		out = append(out, dnatKey{proto, ip, r.HostPort})
	}
	return out
}

// flushConntrack deletes the kernel's connections to the removed ports:
// a deleted publication stops carrying packets at once, like its rule.
func flushConntrack(keys []dnatKey) error {
	var filters []netlink.CustomConntrackFilter
	for _, k := range keys {
		f := &netlink.ConntrackFilter{}
		if err := errors.Join(f.AddProtocol(k.proto), f.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(k.ip)),
			f.AddPort(netlink.ConntrackOrigDstPort, uint16(k.port))); err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("conntrack flush: %w", err)
	}
	return nil
}
