package ovs

import (
	"bytes"
	"encoding/binary"
	"testing"
)

var (
	cliMAC = []byte{2, 0, 0, 0, 0, 1}
	gwMAC  = []byte{0x0a, 0x58, 0, 0, 0, 1}
	cliIP  = []byte{10, 60, 0, 1}
	vipIP  = []byte{10, 96, 0, 10}
)

// rejFrame builds an Ethernet/IPv4 frame from the client to the VIP.
func rejFrame(proto byte, l4 []byte) []byte {
	f := append(append(append([]byte{}, gwMAC...), cliMAC...), 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	copy(ip[12:], cliIP)
	copy(ip[16:], vipIP)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
	return append(append(f, ip...), l4...)
}

func tcpSeg(flags byte, seq, ack uint32, payload int) []byte {
	s := make([]byte, 20+payload)
	binary.BigEndian.PutUint16(s[0:], 40000)
	binary.BigEndian.PutUint16(s[2:], 80)
	binary.BigEndian.PutUint32(s[4:], seq)
	binary.BigEndian.PutUint32(s[8:], ack)
	s[12], s[13] = 5<<4, flags
	return s
}

// checkIP verifies the answer's Ethernet and IPv4 headers and returns its
// payload.
func checkIP(t *testing.T, out []byte, proto byte) []byte {
	t.Helper()
	if !bytes.Equal(out[0:6], cliMAC) || !bytes.Equal(out[6:12], gwMAC) || binary.BigEndian.Uint16(out[12:]) != 0x0800 {
		t.Fatalf("ethernet header % x", out[:14])
	}
	ip := out[14:]
	if ip[0] != 0x45 || ip[9] != proto || ip[8] != 64 || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
		t.Fatalf("ip header % x (len %d)", ip[:20], len(ip))
	}
	if !bytes.Equal(ip[12:16], vipIP) || !bytes.Equal(ip[16:20], cliIP) {
		t.Fatalf("addresses %v -> %v, want the VIP to the client", ip[12:16], ip[16:20])
	}
	if checksum(ip[:20], 0) != 0 {
		t.Fatal("bad IP checksum")
	}
	return ip[20:]
}

func TestRejectTCP(t *testing.T) {
	for _, c := range []struct {
		name            string
		in              []byte
		seq, ack        uint32
		flags           byte
		answered        bool
		wantAckFromPeer bool
	}{
		{"syn", tcpSeg(tcpSYN, 1000, 0, 0), 0, 1001, tcpRST | tcpACK, true, false},
		{"syn with data", tcpSeg(tcpSYN, 1000, 0, 5), 0, 1006, tcpRST | tcpACK, true, false},
		{"ack", tcpSeg(tcpACK, 1000, 777, 3), 777, 0, tcpRST, true, true},
		{"rst", tcpSeg(tcpRST, 1000, 0, 0), 0, 0, 0, false, false},
	} {
		out, ok := rejectFrame(rejFrame(ipProtoTCP, c.in))
		if ok != c.answered {
			t.Fatalf("%s: answered %v", c.name, ok)
		}
		if !ok {
			continue
		}
		seg := checkIP(t, out, ipProtoTCP)
		if len(seg) != 20 {
			t.Fatalf("%s: segment of %d bytes", c.name, len(seg))
		}
		if sp, dp := binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:]); sp != 80 || dp != 40000 {
			t.Fatalf("%s: ports %d -> %d", c.name, sp, dp)
		}
		if s, a := binary.BigEndian.Uint32(seg[4:]), binary.BigEndian.Uint32(seg[8:]); s != c.seq || a != c.ack {
			t.Fatalf("%s: seq %d ack %d, want %d %d", c.name, s, a, c.seq, c.ack)
		}
		if seg[13] != c.flags || seg[12] != 5<<4 {
			t.Fatalf("%s: flags %#x offset %#x", c.name, seg[13], seg[12])
		}
		ip := out[14:34]
		if checksum(seg, pseudoSum(ip, len(seg))) != 0 {
			t.Fatalf("%s: bad TCP checksum", c.name)
		}
	}
}

func TestRejectUDPAndOthers(t *testing.T) {
	udp := make([]byte, 8+30)
	binary.BigEndian.PutUint16(udp[0:], 5353)
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	in := rejFrame(17, udp)
	out, ok := rejectFrame(in)
	if !ok {
		t.Fatal("UDP not answered")
	}
	icmp := checkIP(t, out, ipProtoICMP)
	if icmp[0] != 3 || icmp[1] != 3 || binary.BigEndian.Uint32(icmp[4:]) != 0 {
		t.Fatalf("icmp header % x", icmp[:8])
	}
	if checksum(icmp, 0) != 0 {
		t.Fatal("bad ICMP checksum")
	}
	// The quote: the original IP header and the first 8 bytes after it.
	if want := in[14 : 14+28]; !bytes.Equal(icmp[8:], want) {
		t.Fatalf("quote % x, want % x", icmp[8:], want)
	}
	// SCTP too; an odd-length quote still checksums.
	out, ok = rejectFrame(rejFrame(132, make([]byte, 5)))
	if !ok {
		t.Fatal("SCTP not answered")
	}
	if icmp := checkIP(t, out, ipProtoICMP); checksum(icmp, 0) != 0 || len(icmp) != 8+25 {
		t.Fatalf("sctp answer: len %d", len(icmp))
	}
	// No answer to ICMP errors, multicast, or what is not IPv4.
	if _, ok := rejectFrame(rejFrame(ipProtoICMP, []byte{3, 3, 0, 0, 0, 0, 0, 0})); ok {
		t.Fatal("answered an ICMP error")
	}
	if _, ok := rejectFrame(rejFrame(ipProtoICMP, []byte{8, 0, 0, 0, 0, 0, 0, 0})); !ok {
		t.Fatal("an echo request to the VIP gets port unreachable too")
	}
	mc := rejFrame(17, udp)
	mc[14+16] = 239
	if _, ok := rejectFrame(mc); ok {
		t.Fatal("answered multicast")
	}
	if _, ok := rejectFrame(append(make([]byte, 12), 0x86, 0xdd)); ok {
		t.Fatal("answered IPv6")
	}
}

func TestRejectPacketIn(t *testing.T) {
	// Userdata "syrj", in_port 7 in the metadata (OXM).
	if rejectUserdata != "syrj" {
		t.Fatalf("userdata %q", rejectUserdata)
	}
	meta := []byte{0x80, 0x00, 0x00, 0x04, 0, 0, 0, 7}
	meta = append([]byte{0x80, 0x00, 0x0a, 0x02, 0x08, 0x00}, meta...) // eth_type first
	if p, ok := inPort(meta); !ok || p != 7 {
		t.Fatalf("in_port %d %v", p, ok)
	}
	body := packetIn2(rejFrame(ipProtoTCP, tcpSeg(tcpSYN, 1, 0, 0)), []byte("syrj"))
	pkt, ud, _, ok := splitPacketIn2(body)
	if !ok || string(ud) != "syrj" || len(pkt) != 54 {
		t.Fatalf("split: %v %q %d", ok, ud, len(pkt))
	}
	po := packetOut(7, []byte{1, 2, 3})
	if binary.BigEndian.Uint32(po[0:]) != ofNoBuffer || binary.BigEndian.Uint32(po[4:]) != ofppController ||
		binary.BigEndian.Uint16(po[8:]) != 16 || binary.BigEndian.Uint32(po[20:]) != 7 || !bytes.Equal(po[32:], []byte{1, 2, 3}) {
		t.Fatalf("packet-out % x", po)
	}
}

// FuzzRejectFrame: any frame is either refused or answered with a frame
// whose IP header (and ICMP message, or TCP segment) checksums.
func FuzzRejectFrame(f *testing.F) {
	f.Add(rejFrame(ipProtoTCP, tcpSeg(tcpSYN, 1, 0, 0)))
	f.Add(rejFrame(17, make([]byte, 12)))
	f.Add(rejFrame(ipProtoICMP, []byte{8, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := rejectFrame(in)
		if !ok {
			return
		}
		l2 := 14
		for binary.BigEndian.Uint16(out[l2-2:]) != 0x0800 {
			l2 += 4
		}
		ip := out[l2:]
		if checksum(ip[:20], 0) != 0 || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			t.Fatalf("bad IP header % x", ip[:20])
		}
		switch ip[9] {
		case ipProtoICMP:
			if checksum(ip[20:], 0) != 0 {
				t.Fatal("bad ICMP checksum")
			}
		case ipProtoTCP:
			if checksum(ip[20:], pseudoSum(ip[:20], len(ip)-20)) != 0 {
				t.Fatal("bad TCP checksum")
			}
		default:
			t.Fatalf("answer of protocol %d", ip[9])
		}
	})
}
