package agent

import (
	"encoding/binary"
	"net"
	"net/netip"

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
func warmNeighbors(iface string, self netip.Addr, prog *openapi.Program) {
	if iface == "" || !self.Is4() || len(prog.Tunnels) == 0 {
		return
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil || len(ifi.HardwareAddr) != 6 {
		return
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for _, t := range prog.Tunnels {
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
