package ovs

import (
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// Reject (SERVICES-CONTRACT.md, 4 and 5): a new connection to a service
// with no usable backend reaches the agent as a packet-in whose userdata is
// openapi.RejectUserdata, through meter openapi.RejectMeter (whose rate the
// agent sets: Options.RejectRate). The log listener (policyobs.go) hands it
// here; the answer goes back out of the port the packet came in on as a
// packet-out: a TCP RST for TCP, an ICMP port unreachable for anything
// else, from the address the client tried (the service VIP) so that the
// client's connect() fails at once with ECONNREFUSED instead of timing out.
// Frames are encoded by hand (no packet library in the module), checksums
// included.

// DefaultRejectRate is the reject meter's rate, in packets per second.
const DefaultRejectRate = 1000

// rejectUserdata is openapi.RejectUserdata as bytes ("73.79.72.6a").
var rejectUserdata = func() string {
	b, err := hex.DecodeString(strings.ReplaceAll(openapi.RejectUserdata, ".", ""))
	if err != nil {
		panic("bad openapi.RejectUserdata")
	}
	return string(b)
}()

const (
	ofPacketOut     = 13
	ofppController  = 0xfffffffd
	nxpintMetadata  = 6
	oxmOFInPort     = 0x80000004 // OXM_OF_IN_PORT, 4 bytes
	nxmOFInPort     = 0x00000002 // NXM_OF_IN_PORT, 2 bytes
	ipProtoICMP     = 1
	ipProtoTCP      = 6
	tcpFIN, tcpSYN  = 0x01, 0x02
	tcpRST, tcpACK  = 0x04, 0x10
	icmpUnreachable = 3
	icmpPortUnreach = 3
)

// splitPacketIn2 splits the body of an NXT_PACKET_IN2 (after the OpenFlow
// header) into its packet, userdata and metadata properties.
func splitPacketIn2(body []byte) (pkt, ud, meta []byte, ok bool) {
	if len(body) < 8 || binary.BigEndian.Uint32(body[0:]) != nxVendor || binary.BigEndian.Uint32(body[4:]) != nxtPacketIn2 {
		return nil, nil, nil, false
	}
	for p := body[8:]; len(p) >= 4; {
		typ, n := binary.BigEndian.Uint16(p[0:]), int(binary.BigEndian.Uint16(p[2:]))
		if n < 4 || n > len(p) {
			return nil, nil, nil, false
		}
		switch typ {
		case nxpintPacket:
			pkt = p[4:n]
		case nxpintUserdata:
			ud = p[4:n]
		case nxpintMetadata:
			meta = p[4:n]
		}
		n = (n + 7) &^ 7 // properties are padded to 8 bytes
		if n > len(p) {
			break
		}
		p = p[n:]
	}
	return pkt, ud, meta, true
}

// inPort reads the packet-in's input port from its metadata (OXM or NXM
// fields, as the switch encodes them for the connection's version).
func inPort(meta []byte) (uint32, bool) {
	for len(meta) >= 4 {
		h := binary.BigEndian.Uint32(meta)
		n := int(h & 0xff)
		if len(meta) < 4+n {
			return 0, false
		}
		switch {
		case h == oxmOFInPort:
			return binary.BigEndian.Uint32(meta[4:]), true
		case h == nxmOFInPort:
			return uint32(binary.BigEndian.Uint16(meta[4:])), true
		}
		meta = meta[4+n:]
	}
	return 0, false
}

// packetOut is the body of an OpenFlow 1.3 packet-out sending frame out of
// port (from in_port CONTROLLER, so that it may be the port the packet
// came in on).
func packetOut(port uint32, frame []byte) []byte {
	b := make([]byte, 16+16+len(frame))
	binary.BigEndian.PutUint32(b[0:], ofNoBuffer)
	binary.BigEndian.PutUint32(b[4:], ofppController)
	binary.BigEndian.PutUint16(b[8:], 16) // actions_len
	// Output action: type 0, length 16, port, max_len 0.
	binary.BigEndian.PutUint16(b[16:], 0)
	binary.BigEndian.PutUint16(b[18:], 16)
	binary.BigEndian.PutUint32(b[20:], port)
	copy(b[32:], frame)
	return b
}

// rejectFrame builds the answer to a rejected frame: TCP RST for TCP, ICMP
// port unreachable for the rest. ok is false for what gets no answer:
// not IPv4, a TCP RST, a non-first fragment of TCP, an ICMP error, a
// truncated packet, a broadcast or multicast destination.
func rejectFrame(f []byte) (out []byte, ok bool) {
	if len(f) < 14 {
		return nil, false
	}
	etype, off := binary.BigEndian.Uint16(f[12:]), 14
	for i := 0; i < 2 && (etype == 0x8100 || etype == 0x88a8); i++ {
		if len(f) < off+4 {
			return nil, false
		}
		etype, off = binary.BigEndian.Uint16(f[off+2:]), off+4
	}
	if etype != 0x0800 || f[0]&1 != 0 {
		return nil, false
	}
	ip := f[off:]
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return nil, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || total < ihl || len(ip) < ihl {
		return nil, false
	}
	if total > len(ip) {
		total = len(ip)
	}
	if ip[16] >= 224 || [4]byte(ip[16:20]) == [4]byte{255, 255, 255, 255} {
		return nil, false
	}
	proto, first := ip[9], binary.BigEndian.Uint16(ip[6:])&0x1fff == 0
	l2 := make([]byte, off)
	copy(l2, f[:off])
	copy(l2[0:6], f[6:12]) // eth_dst = the packet's eth_src
	copy(l2[6:12], f[0:6])
	switch {
	case proto == ipProtoTCP:
		if !first {
			return nil, false
		}
		return tcpReset(l2, ip[:total], ihl)
	case proto == ipProtoICMP && first && total >= ihl+1 && icmpError(ip[ihl]):
		return nil, false
	}
	quote := ip[:min(total, ihl+8)]
	icmp := make([]byte, 8+len(quote))
	icmp[0], icmp[1] = icmpUnreachable, icmpPortUnreach
	copy(icmp[8:], quote)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, 0))
	return append(append(l2, ipv4Header(ip, ipProtoICMP, len(icmp))...), icmp...), true
}

// icmpError reports whether an ICMP type is an error message (never
// answered with another).
func icmpError(typ byte) bool {
	return typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
}

// tcpReset answers the TCP segment in ip (header length ihl) with a reset:
// to a segment carrying an ACK, seq = its ack; else seq 0 and ack = its
// seq + its length (SYN and FIN count one), RST|ACK.
func tcpReset(l2, ip []byte, ihl int) ([]byte, bool) {
	seg := ip[ihl:]
	if len(seg) < 20 {
		return nil, false
	}
	flags := seg[13]
	doff := int(seg[12]>>4) * 4
	if flags&tcpRST != 0 || doff < 20 || doff > len(seg) {
		return nil, false
	}
	rst := make([]byte, 20)
	copy(rst[0:2], seg[2:4]) // from the port the client tried
	copy(rst[2:4], seg[0:2])
	rst[12] = 5 << 4
	if flags&tcpACK != 0 {
		copy(rst[4:8], seg[8:12])
		rst[13] = tcpRST
	} else {
		n := uint32(len(seg) - doff)
		if flags&tcpSYN != 0 {
			n++
		}
		if flags&tcpFIN != 0 {
			n++
		}
		binary.BigEndian.PutUint32(rst[8:], binary.BigEndian.Uint32(seg[4:])+n)
		rst[13] = tcpRST | tcpACK
	}
	iph := ipv4Header(ip, ipProtoTCP, len(rst))
	binary.BigEndian.PutUint16(rst[16:], checksum(rst, pseudoSum(iph, len(rst))))
	return append(append(l2, iph...), rst...), true
}

// ipv4Header is the header of an answer to the packet whose IP header is
// orig: addresses swapped, TTL 64, don't-fragment, checksum set.
func ipv4Header(orig []byte, proto byte, payload int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+payload))
	binary.BigEndian.PutUint16(h[6:], 0x4000)
	h[8], h[9] = 64, proto
	copy(h[12:16], orig[16:20])
	copy(h[16:20], orig[12:16])
	binary.BigEndian.PutUint16(h[10:], checksum(h, 0))
	return h
}

// pseudoSum is the partial sum of the TCP/UDP pseudo-header of a segment
// of length n under IP header h.
func pseudoSum(h []byte, n int) uint32 {
	var s uint32
	for i := 12; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	return s + uint32(h[9]) + uint32(n)
}

// checksum is the Internet checksum of b, starting from the partial sum s.
func checksum(b []byte, s uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// reject answers one packet-in on o (the listener's connection); it
// reports whether the packet-in was a reject (answered or not).
func (p *PolicyObserver) reject(o *ofConn, pkt, ud, meta []byte) bool {
	if string(ud) != rejectUserdata {
		return false
	}
	port, ok := inPort(meta)
	if !ok {
		return true
	}
	if frame, ok := rejectFrame(pkt); ok {
		if err := o.send(ofPacketOut, packetOut(port, frame)); err == nil {
			p.rejected.Add(1)
		}
	}
	return true
}
