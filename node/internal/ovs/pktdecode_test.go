package ovs

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// frame builds an Ethernet frame (optionally VLAN-tagged) with an IPv4
// header of protocol proto and l4 after it.
func frame(vlan bool, proto byte, frag uint16, l4 []byte) []byte {
	f := make([]byte, 12, 64)
	if vlan {
		f = append(f, 0x81, 0x00, 0x00, 0x05)
	}
	f = append(f, 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[6:], frag)
	ip[9] = proto
	copy(ip[12:], []byte{10, 0, 0, 1})
	copy(ip[16:], []byte{10, 0, 0, 2})
	return append(append(f, ip...), l4...)
}

func l4ports(src, dst uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], src)
	binary.BigEndian.PutUint16(b[2:], dst)
	return b
}

func TestDecodePacket(t *testing.T) {
	for _, c := range []struct {
		name string
		f    []byte
		want string // "" = not decoded
	}{
		{"tcp", frame(false, 6, 0, l4ports(40000, 80)), "TCP 10.0.0.1:40000 > 10.0.0.2:80"},
		{"udp vlan", frame(true, 17, 0, l4ports(5353, 53)), "UDP 10.0.0.1:5353 > 10.0.0.2:53"},
		{"sctp", frame(false, 132, 0, l4ports(1, 2)), "SCTP 10.0.0.1:1 > 10.0.0.2:2"},
		{"icmp", frame(false, 1, 0, []byte{8, 0, 0, 0}), "ICMP 10.0.0.1:0 > 10.0.0.2:0"},
		{"gre", frame(false, 47, 0, nil), "47 10.0.0.1:0 > 10.0.0.2:0"},
		{"later fragment", frame(false, 6, 100, l4ports(1, 2)), "TCP 10.0.0.1:0 > 10.0.0.2:0"},
		{"truncated l4", frame(false, 6, 0, []byte{1}), "TCP 10.0.0.1:0 > 10.0.0.2:0"},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1), ""},
		{"short ip", frame(false, 6, 0, nil)[:30], ""},
		{"short", []byte{1, 2, 3}, ""},
	} {
		rec, ok := decodePacket(c.f)
		got := ""
		if ok {
			got = fmt.Sprintf("%s %s:%d > %s:%d", rec.Protocol, rec.SrcIP, rec.SrcPort, rec.DstIP, rec.DstPort)
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// packetIn2 builds an NXT_PACKET_IN2 body (after the OpenFlow header).
func packetIn2(pkt, userdata []byte) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:], nxVendor)
	binary.BigEndian.PutUint32(b[4:], nxtPacketIn2)
	prop := func(typ uint16, v []byte) {
		p := make([]byte, 4, 4+len(v)+7)
		binary.BigEndian.PutUint16(p[0:], typ)
		binary.BigEndian.PutUint16(p[2:], uint16(4+len(v)))
		p = append(p, v...)
		for len(p)%8 != 0 {
			p = append(p, 0)
		}
		b = append(b, p...)
	}
	prop(nxpintPacket, pkt)
	prop(4, make([]byte, 12)) // a cookie property: skipped
	if userdata != nil {
		prop(nxpintUserdata, userdata)
	}
	return b
}

func userdata(cookie uint64, verdict, dir byte) []byte {
	u := binary.BigEndian.AppendUint64(nil, cookie)
	return append(u, verdict, dir)
}

func TestDecodePacketIn2(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pkt := frame(false, 6, 0, l4ports(40000, 80))
	rec, ok := decodePacketIn2(packetIn2(pkt, userdata(CookieCounted|0xabc, 2, 1)), now)
	want := openapi.PolicyLogRecord{Time: now, Cookie: "0x800000000abc", Verdict: "deny", Direction: "ingress", Protocol: "TCP",
		SrcIP: "10.0.0.1", DstIP: "10.0.0.2", SrcPort: 40000, DstPort: 80}
	if !ok || rec != want {
		t.Fatalf("decoded %+v %v, want %+v", rec, ok, want)
	}
	if rec, ok := decodePacketIn2(packetIn2(pkt, userdata(7, 1, 2)), now); !ok || rec.Verdict != "allow" || rec.Direction != "egress" {
		t.Fatalf("allow egress: %+v %v", rec, ok)
	}
	for name, body := range map[string][]byte{
		"no userdata":        packetIn2(pkt, nil),
		"short userdata":     packetIn2(pkt, []byte{1, 2, 3}),
		"bad verdict":        packetIn2(pkt, userdata(1, 3, 1)),
		"bad direction":      packetIn2(pkt, userdata(1, 1, 0)),
		"not ipv4":           packetIn2(append(make([]byte, 12), 0x86, 0xdd), userdata(1, 1, 1)),
		"other experimenter": append([]byte{0, 0, 0x23, 0x20, 0, 0, 0, 31}, packetIn2(pkt, userdata(1, 1, 1))[8:]...),
		"truncated property": packetIn2(pkt, userdata(1, 1, 1))[:20],
		"empty":              nil,
	} {
		if rec, ok := decodePacketIn2(body, now); ok {
			t.Errorf("%s: decoded %+v", name, rec)
		}
	}
}

func TestSumFlowStats(t *testing.T) {
	entry := func(cookie, packets, bytes uint64) []byte {
		e := make([]byte, 56) // 48 fixed bytes and an empty match
		binary.BigEndian.PutUint16(e[0:], 56)
		binary.BigEndian.PutUint64(e[24:], cookie)
		binary.BigEndian.PutUint64(e[32:], packets)
		binary.BigEndian.PutUint64(e[40:], bytes)
		return e
	}
	a, b := CookieCounted|1, CookieCounted|CookieConn|1
	// Flows are installed with the agent's generation in the top 16 bits:
	// the report names the compiled cookie, whatever the generation.
	parts := [][]byte{append(entry(Cookie(a, 3), 1, 100), entry(Cookie(b, 3), 2, 200)...), entry(Cookie(a, 4), 3, 300)}
	got, err := sumFlowStats(parts)
	if err != nil || fmt.Sprint(got) != "[{0x800000000001 4 400} {0xc00000000001 2 200}]" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := sumFlowStats([][]byte{entry(a, 1, 1)[:40]}); err == nil {
		t.Fatal("a short entry was accepted")
	}
}
