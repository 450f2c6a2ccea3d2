package ovs

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// Log userdata (POLICY-CONTRACT.md): the rule's cookie (8 bytes, big
// endian), the verdict (1 byte) and the direction (1 byte).
const logUserdataLen = 10

var (
	logVerdicts   = map[byte]string{1: openapi.VerdictAllow, 2: openapi.VerdictDeny}
	logDirections = map[byte]string{1: "ingress", 2: "egress"}
)

// decodePacketIn2 decodes the body of an OFPT_EXPERIMENTER message (after
// the OpenFlow header) that is an NXT_PACKET_IN2 carrying log userdata into
// a log record seen at now; ok is false for anything else.
func decodePacketIn2(body []byte, now time.Time) (rec openapi.PolicyLogRecord, ok bool) {
	pkt, ud, _, ok := splitPacketIn2(body)
	if !ok {
		return rec, false
	}
	if len(ud) != logUserdataLen {
		return rec, false
	}
	verdict, dir := logVerdicts[ud[8]], logDirections[ud[9]]
	if verdict == "" || dir == "" {
		return rec, false
	}
	rec, ok = decodePacket(pkt)
	if !ok {
		return rec, false
	}
	rec.Time = now.UTC()
	rec.Cookie = fmt.Sprintf("%#x", binary.BigEndian.Uint64(ud[0:]))
	rec.Verdict, rec.Direction = verdict, dir
	return rec, true
}

// IP protocols the log names.
var logProtocols = map[byte]string{1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}

// decodePacket reads the addresses, protocol and ports of an Ethernet frame
// carrying IPv4 (with at most two VLAN tags). Ports are read for TCP, UDP
// and SCTP, from the first fragment only.
func decodePacket(f []byte) (rec openapi.PolicyLogRecord, ok bool) {
	if len(f) < 14 {
		return rec, false
	}
	etype, off := binary.BigEndian.Uint16(f[12:]), 14
	for i := 0; i < 2 && (etype == 0x8100 || etype == 0x88a8); i++ {
		if len(f) < off+4 {
			return rec, false
		}
		etype, off = binary.BigEndian.Uint16(f[off+2:]), off+4
	}
	if etype != 0x0800 {
		return rec, false
	}
	ip := f[off:]
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return rec, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return rec, false
	}
	proto := ip[9]
	rec.SrcIP = netip.AddrFrom4([4]byte(ip[12:16])).String()
	rec.DstIP = netip.AddrFrom4([4]byte(ip[16:20])).String()
	rec.Protocol = logProtocols[proto]
	if rec.Protocol == "" {
		rec.Protocol = strconv.Itoa(int(proto))
	}
	firstFragment := binary.BigEndian.Uint16(ip[6:])&0x1fff == 0
	if l4 := ip[ihl:]; (proto == 6 || proto == 17 || proto == 132) && firstFragment && len(l4) >= 4 {
		rec.SrcPort, rec.DstPort = int(binary.BigEndian.Uint16(l4[0:])), int(binary.BigEndian.Uint16(l4[2:]))
	}
	return rec, true
}
