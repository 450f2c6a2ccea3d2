package dns

import (
	"errors"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// The UDP socket is bound to 0.0.0.0:53 and receives the queries of every
// network: the network is the datagram's destination address, which only
// IP_PKTINFO tells (miekg's server does not hand it to the handler), and
// the answer must leave from that address. So UDP has its own loop.

// maxInFlight bounds the UDP queries handled at once (a forwarded one may
// wait for its upstreams); the loop stops reading when that many are.
const maxInFlight = 512

// maxQuery is the largest UDP query read (queries are a few hundred bytes).
const maxQuery = 4096

func enablePktInfo(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}); err != nil {
		return err
	}
	return serr
}

// serveUDP reads queries until c is closed.
func (s *Server) serveUDP(c *net.UDPConn) error {
	sem := make(chan struct{}, maxInFlight)
	oobSize := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	for {
		buf := make([]byte, maxQuery)
		oob := make([]byte, oobSize)
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		dst := pktDst(oob[:oobn])
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			s.serveDatagram(c, buf[:n], dst, from)
		}()
	}
}

func (s *Server) serveDatagram(c *net.UDPConn, b []byte, dst netip.Addr, from netip.AddrPort) {
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		s.metrics.queries.WithLabelValues(ResultRefused).Inc()
		return // not DNS: no answer
	}
	out, err := s.Answer(r, dst, false).Pack()
	if err != nil {
		return
	}
	var oob []byte
	if dst.Is4() {
		oob = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst.As4()})
	}
	_, _, _ = c.WriteMsgUDPAddrPort(out, oob, from) // the client went away: nothing to do
}

// pktDst is the destination address of a datagram, from its IP_PKTINFO.
func pktDst(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			var a [4]byte
			copy(a[:], m.Data[8:12]) // struct in_pktinfo: ifindex, spec_dst, addr
			return netip.AddrFrom4(a)
		}
	}
	return netip.Addr{}
}
