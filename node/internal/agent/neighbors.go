package agent

import (
	"net"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// warmNeighbors makes the kernel resolve every tunnel peer's underlay
// address. On the userspace datapath, OVS learns a tunnel's next hop by
// snooping ARP replies on the tunnel endpoint bridge; until it has, the
// first packets towards a new peer are dropped ("native tunnel routing
// failed"). One datagram to the peer's discard port, sent through the
// kernel, resolves it ahead of any container traffic and keeps it fresh.
func warmNeighbors(prog *openapi.Program) {
	for _, t := range prog.Tunnels {
		ip := net.ParseIP(t.RemoteIP)
		if ip == nil {
			continue
		}
		c, err := net.DialTimeout("udp", net.JoinHostPort(ip.String(), "9"), time.Second)
		if err != nil {
			continue
		}
		_, _ = c.Write([]byte{0})
		c.Close()
	}
}
