package agent

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/openapi"
)

// warmNeighbors sends an ARP request for every tunnel peer's underlay
// address out of the tunnel endpoint interface. On the userspace datapath,
// OVS learns a tunnel's next hop only by snooping ARP replies on the tunnel
// endpoint bridge; until it has, packets towards that peer are dropped
// ("native tunnel routing failed"). Asking the kernel to reach the peer is
// not enough: when the kernel already knows the peer's MAC it sends no ARP,
// and OVS never learns it. So the request goes out raw, every time; the
// peer's reply crosses the bridge and OVS learns from it. Best effort: on
// the kernel datapath, or without the interface, it does nothing.
//
// The agent warms every peer on a full apply and at each resync (OVS ages
// its neighbour entries out), and only the new peers on a delta apply.
func warmNeighbors(iface string, self netip.Addr, peers []openapi.TunnelPort) {
	if iface == "" || !self.Is4() || len(peers) == 0 {
		return
	}
	// One RTM_GETLINK for this link: net.InterfaceByName dumps every link
	// of the host (a few hundred veths) to find one.
	l, err := netlink.LinkByName(iface)
	if err != nil || len(l.Attrs().HardwareAddr) != 6 {
		return
	}
	ifi := l.Attrs()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for _, t := range peers {
		peer, err := netip.ParseAddr(t.RemoteIP)
		if err != nil || !peer.Is4() {
			continue
		}
		_ = unix.Sendto(fd, arpRequest(ifi.HardwareAddr, self, peer), 0, addr)
	}
}

// arpRequest builds an Ethernet broadcast ARP request: who has target, tell
// self at mac.
func arpRequest(mac net.HardwareAddr, self, target netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
	binary.BigEndian.PutUint16(f[14:16], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:18], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:22], 1) // request
	copy(f[22:28], mac)
	s, d := self.As4(), target.As4()
	copy(f[28:32], s[:])
	copy(f[38:42], d[:])
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
