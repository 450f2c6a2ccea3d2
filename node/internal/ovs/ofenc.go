package ovs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// An encoder from the flow text the adapter renders for ovs-ofctl (match
// and actions after ${port:...} resolution) to OpenFlow 1.5 flow_mods, so
// that the delta path can send a change over its own connection instead of
// starting ovs-ofctl (ofbundle.go). It knows the compiler's vocabulary and
// nothing more: matches on in_port, registers (masked), tun_id, Ethernet,
// ARP, IPv4, ICMP, TCP, UDP and SCTP fields (ports masked too), ct_state
// (+flag-flag form) and conj_id; actions drop, output (to a port, a
// register or IN_PORT), set_field (masked too), load, move, dec_ttl,
// resubmit(,N), goto_table, and ct, conjunction and controller in the forms
// the policy and service pipelines write (ofnx.go: ct with nat), and group
// (select groups themselves: ofgroup.go). Anything else (learn, a field it
// does not know, a value it would have to guess about) is
// refused with an *unsupportedError, and the change goes through
// ovs-ofctl: the encoder must never produce a flow that differs from the one
// ovs-ofctl would install, only decline. It does not check what the switch
// checks (prerequisites of actions, goto_table going forward): the switch
// rejects such a flow, as it rejects ovs-ofctl's, and the change fails.

// unsupportedError is the encoder declining a flow it does not know.
type unsupportedError struct{ what string }

func (e *unsupportedError) Error() string { return "native flow_mod: unsupported " + e.what }

func unsupported(format string, args ...any) error {
	return &unsupportedError{what: fmt.Sprintf(format, args...)}
}

// isUnsupported reports whether err is the encoder declining a flow.
func isUnsupported(err error) bool {
	var u *unsupportedError
	return errors.As(err, &u)
}

const (
	ofVersion15   = 0x06
	ofFlowMod     = 14
	ofpfcAdd      = 0
	ofpfcDelStrct = 4
	ofNoBuffer    = 0xffffffff
	ofPortInPort  = 0xfffffff8 // OFPP_IN_PORT, 32-bit
	ofPortMax     = 0xff00     // OFPP_MAX: ports below are physical
	oxmBasic      = 0x8000
	oxmNXM1       = 0x0001
	ethTypeIPv4   = 0x0800
	ethTypeARP    = 0x0806
)

// value kinds of fields
const (
	kindInt     = iota // decimal or 0x hexadecimal
	kindMAC            // xx:xx:xx:xx:xx:xx
	kindIPv4           // a.b.c.d
	kindCTState        // +flag-flag... (ct_state)
)

// ofField is a match or set_field field as OXM.
type ofField struct {
	class    uint16
	code     uint8
	size     int // bytes
	kind     int
	ethType  uint16 // prerequisite, 0: none
	ipProto  uint8  // prerequisite (with ethType IPv4), 0: none
	maskable bool
	writable bool
	max      uint64 // largest valid value of an int field, 0: size's
}

// level orders a match's fields so that each comes after its
// prerequisites (the switch checks them in order).
func (f *ofField) level() int {
	switch {
	case f.ipProto != 0:
		return 2
	case f.ethType != 0:
		return 1
	}
	return 0
}

func (f *ofField) header(masked bool) uint32 {
	n := f.size
	h := uint32(f.class)<<16 | uint32(f.code)<<9
	if masked {
		h |= 1 << 8
		n *= 2
	}
	return h | uint32(n)
}

var (
	fldInPort  = &ofField{class: oxmBasic, code: 0, size: 4, max: ofPortMax - 1}
	fldEthDst  = &ofField{class: oxmBasic, code: 3, size: 6, kind: kindMAC, maskable: true, writable: true}
	fldEthSrc  = &ofField{class: oxmBasic, code: 4, size: 6, kind: kindMAC, maskable: true, writable: true}
	fldEthType = &ofField{class: oxmBasic, code: 5, size: 2}
	fldIPProto = &ofField{class: oxmBasic, code: 10, size: 1, ethType: ethTypeIPv4}
	fldIPSrc   = &ofField{class: oxmBasic, code: 11, size: 4, kind: kindIPv4, ethType: ethTypeIPv4, maskable: true, writable: true}
	fldIPDst   = &ofField{class: oxmBasic, code: 12, size: 4, kind: kindIPv4, ethType: ethTypeIPv4, maskable: true, writable: true}
	fldTCPSrc  = &ofField{class: oxmBasic, code: 13, size: 2, ethType: ethTypeIPv4, ipProto: 6, maskable: true}
	fldTCPDst  = &ofField{class: oxmBasic, code: 14, size: 2, ethType: ethTypeIPv4, ipProto: 6, maskable: true}
	fldUDPSrc  = &ofField{class: oxmBasic, code: 15, size: 2, ethType: ethTypeIPv4, ipProto: 17, maskable: true}
	fldUDPDst  = &ofField{class: oxmBasic, code: 16, size: 2, ethType: ethTypeIPv4, ipProto: 17, maskable: true}
	fldSCTPSrc = &ofField{class: oxmBasic, code: 17, size: 2, ethType: ethTypeIPv4, ipProto: 132, maskable: true}
	fldSCTPDst = &ofField{class: oxmBasic, code: 18, size: 2, ethType: ethTypeIPv4, ipProto: 132, maskable: true}
	fldICMPTyp = &ofField{class: oxmBasic, code: 19, size: 1, ethType: ethTypeIPv4, ipProto: 1, writable: true}
	fldICMPCod = &ofField{class: oxmBasic, code: 20, size: 1, ethType: ethTypeIPv4, ipProto: 1, writable: true}
	fldARPOp   = &ofField{class: oxmBasic, code: 21, size: 2, ethType: ethTypeARP, writable: true, max: 0xff}
	fldARPSPA  = &ofField{class: oxmBasic, code: 22, size: 4, kind: kindIPv4, ethType: ethTypeARP, maskable: true, writable: true}
	fldARPTPA  = &ofField{class: oxmBasic, code: 23, size: 4, kind: kindIPv4, ethType: ethTypeARP, maskable: true, writable: true}
	fldARPSHA  = &ofField{class: oxmBasic, code: 24, size: 6, kind: kindMAC, ethType: ethTypeARP, maskable: true, writable: true}
	fldARPTHA  = &ofField{class: oxmBasic, code: 25, size: 6, kind: kindMAC, ethType: ethTypeARP, maskable: true, writable: true}
	fldTunID   = &ofField{class: oxmBasic, code: 38, size: 8, maskable: true, writable: true}
	fldConjID  = &ofField{class: oxmNXM1, code: 37, size: 4}                                     // NXM_NX_CONJ_ID
	fldCTState = &ofField{class: oxmNXM1, code: 105, size: 4, kind: kindCTState, maskable: true} // NXM_NX_CT_STATE
	fldCTZone  = &ofField{class: oxmNXM1, code: 106, size: 2}                                    // NXM_NX_CT_ZONE
)

// fields are the match and set_field names the encoder knows (ovs-ofctl's
// names and their aliases); tp_src and tp_dst depend on the match's
// protocol (tpField).
var fields = func() map[string]*ofField {
	m := map[string]*ofField{
		"in_port": fldInPort,
		"dl_dst":  fldEthDst, "eth_dst": fldEthDst,
		"dl_src": fldEthSrc, "eth_src": fldEthSrc,
		"dl_type": fldEthType, "eth_type": fldEthType,
		"nw_proto": fldIPProto, "ip_proto": fldIPProto,
		"nw_src": fldIPSrc, "ip_src": fldIPSrc,
		"nw_dst": fldIPDst, "ip_dst": fldIPDst,
		"tcp_src": fldTCPSrc, "tcp_dst": fldTCPDst,
		"udp_src": fldUDPSrc, "udp_dst": fldUDPDst,
		"sctp_src": fldSCTPSrc, "sctp_dst": fldSCTPDst,
		"conj_id": fldConjID, "ct_state": fldCTState, "ct_zone": fldCTZone,
		"icmp_type": fldICMPTyp, "icmpv4_type": fldICMPTyp,
		"icmp_code": fldICMPCod, "icmpv4_code": fldICMPCod,
		"arp_op": fldARPOp, "arp_spa": fldARPSPA, "arp_tpa": fldARPTPA,
		"arp_sha": fldARPSHA, "arp_tha": fldARPTHA,
		"tun_id": fldTunID, "tunnel_id": fldTunID,
	}
	for i := 0; i < 8; i++ {
		m[fmt.Sprintf("reg%d", i)] = &ofField{class: oxmNXM1, code: uint8(i), size: 4, maskable: true, writable: true}
	}
	return m
}()

// nxmNames are the NXM names move, load and output take, for the fields
// above (by their ovs-ofctl name).
var nxmNames = map[string]string{
	"NXM_OF_ETH_DST": "eth_dst", "NXM_OF_ETH_SRC": "eth_src",
	"NXM_OF_IP_SRC": "ip_src", "NXM_OF_IP_DST": "ip_dst",
	"NXM_OF_ARP_OP": "arp_op", "NXM_OF_ARP_SPA": "arp_spa", "NXM_OF_ARP_TPA": "arp_tpa",
	"NXM_NX_ARP_SHA": "arp_sha", "NXM_NX_ARP_THA": "arp_tha",
	"NXM_NX_TUN_ID": "tun_id",
	"NXM_NX_REG0":   "reg0", "NXM_NX_REG1": "reg1", "NXM_NX_REG2": "reg2", "NXM_NX_REG3": "reg3",
	"NXM_NX_REG4": "reg4", "NXM_NX_REG5": "reg5", "NXM_NX_REG6": "reg6", "NXM_NX_REG7": "reg7",
}

// matchProtocols are the match keywords that stand for eth_type (and ip_proto).
var matchProtocols = map[string][2]uint16{
	"ip": {ethTypeIPv4, 0}, "arp": {ethTypeARP, 0},
	"icmp": {ethTypeIPv4, 1}, "tcp": {ethTypeIPv4, 6}, "udp": {ethTypeIPv4, 17},
	"sctp": {ethTypeIPv4, 132},
}

// ctStates are the ct_state flags (CS_* in OVS).
var ctStates = map[string]uint32{
	"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08,
	"inv": 0x10, "trk": 0x20, "snat": 0x40, "dnat": 0x80,
}

// parseCTState parses ct_state's "+flag-flag..." form (each flag once) into
// value and mask; the other forms (numbers, "flag|flag") are refused.
func parseCTState(s string) (val, mask []byte, err error) {
	var v, m uint32
	rest := s
	for rest != "" {
		set := rest[0] == '+'
		if !set && rest[0] != '-' {
			return nil, nil, unsupported("ct_state %q", s)
		}
		rest = rest[1:]
		n := strings.IndexAny(rest, "+-")
		if n < 0 {
			n = len(rest)
		}
		bit := ctStates[rest[:n]]
		if bit == 0 || m&bit != 0 {
			return nil, nil, unsupported("ct_state %q", s)
		}
		m |= bit
		if set {
			v |= bit
		}
		rest = rest[n:]
	}
	if m == 0 {
		return nil, nil, unsupported("ct_state %q", s)
	}
	return binary.BigEndian.AppendUint32(nil, v), binary.BigEndian.AppendUint32(nil, m), nil
}

// parseValue parses s (no mask) as a value of f, big-endian in f.size bytes.
func parseValue(f *ofField, s string) ([]byte, error) {
	b := make([]byte, f.size)
	switch f.kind {
	case kindMAC:
		if len(s) != 17 {
			return nil, unsupported("MAC %q", s)
		}
		for i := 0; i < 6; i++ {
			if i > 0 && s[3*i-1] != ':' {
				return nil, unsupported("MAC %q", s)
			}
			v, err := strconv.ParseUint(s[3*i:3*i+2], 16, 8)
			if err != nil {
				return nil, unsupported("MAC %q", s)
			}
			b[i] = byte(v)
		}
	case kindIPv4:
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, unsupported("IPv4 address %q", s)
		}
		a4 := a.As4()
		copy(b, a4[:])
	default:
		v, err := parseUint(s)
		if err != nil {
			return nil, err
		}
		max := f.max
		if max == 0 && f.size < 8 {
			max = 1<<(8*f.size) - 1
		}
		if max != 0 && v > max {
			return nil, unsupported("value %q out of range", s)
		}
		putUint(b, v)
	}
	return b, nil
}

// parseUint parses a decimal or 0x-hexadecimal number, as ovs-ofctl does
// (no octal: a leading 0 is refused).
func parseUint(s string) (uint64, error) {
	var v uint64
	var err error
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		v, err = strconv.ParseUint(s[2:], 16, 64)
	case len(s) > 1 && s[0] == '0':
		err = errors.New("leading zero")
	default:
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, unsupported("number %q", s)
	}
	return v, nil
}

func putUint(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// parseMasked parses "value[/mask]" for f. mask is nil when absent or all
// ones; the value is returned with the bits outside the mask cleared (as
// ovs-ofctl stores it).
func parseMasked(f *ofField, s string) (val, mask []byte, err error) {
	if f.kind == kindCTState {
		return parseCTState(s)
	}
	vs, ms, masked := strings.Cut(s, "/")
	if val, err = parseValue(f, vs); err != nil {
		return nil, nil, err
	}
	if !masked {
		return val, nil, nil
	}
	if !f.maskable {
		return nil, nil, unsupported("mask in %q", s)
	}
	if f.kind == kindIPv4 && !strings.Contains(ms, ".") {
		n, err := strconv.Atoi(ms)
		if err != nil || n < 0 || n > 32 || (len(ms) > 1 && ms[0] == '0') {
			return nil, nil, unsupported("prefix length in %q", s)
		}
		mask = make([]byte, 4)
		putUint(mask, uint64(0xffffffff)<<(32-n)&0xffffffff)
	} else if mask, err = parseValue(f, ms); err != nil {
		return nil, nil, err
	}
	allOnes, allZeros := true, true
	for i := range mask {
		val[i] &= mask[i]
		allOnes = allOnes && mask[i] == 0xff
		allZeros = allZeros && mask[i] == 0
	}
	switch {
	case allZeros:
		return nil, nil, unsupported("all-zero mask in %q", s) // a wildcard: let ovs-ofctl decide
	case allOnes:
		return val, nil, nil
	}
	return val, mask, nil
}

// oxm appends one OXM TLV.
func oxm(b []byte, f *ofField, val, mask []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, f.header(mask != nil))
	b = append(b, val...)
	return append(b, mask...)
}

type matchEntry struct {
	f         *ofField
	val, mask []byte
}

// encodeMatch returns the ofp_match (OXM, padded) of a match string.
func encodeMatch(match string) ([]byte, error) {
	var ethType, ipProto uint16
	setProto := func(et, ip uint16) error {
		if (ethType != 0 && ethType != et) || (ip != 0 && ipProto != 0 && ipProto != ip) {
			return unsupported("conflicting protocols in %q", match)
		}
		ethType = et
		if ip != 0 {
			ipProto = ip
		}
		return nil
	}
	var entries []matchEntry
	var tp []string // tp_src/tp_dst items, resolved once the protocol is known
	seen := map[*ofField]bool{}
	if strings.TrimSpace(match) != "" {
		for _, item := range strings.Split(match, ",") {
			item = strings.TrimSpace(item)
			k, v, hasV := strings.Cut(item, "=")
			if !hasV {
				p, ok := matchProtocols[k]
				if !ok {
					return nil, unsupported("match %q", item)
				}
				if err := setProto(p[0], p[1]); err != nil {
					return nil, err
				}
				continue
			}
			if k == "tp_src" || k == "tp_dst" {
				tp = append(tp, item)
				continue
			}
			f := fields[k]
			if f == nil {
				return nil, unsupported("match field %q", k)
			}
			val, mask, err := parseMasked(f, v)
			if err != nil {
				return nil, err
			}
			if f == fldInPort && binary.BigEndian.Uint32(val) == 0 {
				return nil, unsupported("in_port 0")
			}
			switch f {
			case fldEthType:
				err = setProto(binary.BigEndian.Uint16(val), 0)
			case fldIPProto:
				err = setProto(ethTypeIPv4, uint16(val[0]))
			default:
				if seen[f] {
					return nil, unsupported("repeated match field %q", k)
				}
				seen[f] = true
				entries = append(entries, matchEntry{f: f, val: val, mask: mask})
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for _, item := range tp {
		k, v, _ := strings.Cut(item, "=")
		var f *ofField
		switch {
		case ethType != ethTypeIPv4:
		case ipProto == 6:
			f = map[string]*ofField{"tp_src": fldTCPSrc, "tp_dst": fldTCPDst}[k]
		case ipProto == 17:
			f = map[string]*ofField{"tp_src": fldUDPSrc, "tp_dst": fldUDPDst}[k]
		case ipProto == 132:
			f = map[string]*ofField{"tp_src": fldSCTPSrc, "tp_dst": fldSCTPDst}[k]
		}
		if f == nil || seen[f] {
			return nil, unsupported("match %q", item)
		}
		seen[f] = true
		val, mask, err := parseMasked(f, v)
		if err != nil {
			return nil, err
		}
		entries = append(entries, matchEntry{f: f, val: val, mask: mask})
	}
	for _, e := range entries {
		if e.f.ethType != 0 && e.f.ethType != ethType || e.f.ipProto != 0 && uint16(e.f.ipProto) != ipProto {
			return nil, unsupported("match field without its protocol in %q", match)
		}
	}
	var b []byte
	for lvl := 0; lvl <= 2; lvl++ {
		if lvl == 1 && ethType != 0 {
			b = oxm(b, fldEthType, binary.BigEndian.AppendUint16(nil, ethType), nil)
		}
		if lvl == 2 && ipProto != 0 {
			b = oxm(b, fldIPProto, []byte{byte(ipProto)}, nil)
		}
		for _, e := range entries {
			if e.f.level() == lvl {
				b = oxm(b, e.f, e.val, e.mask)
			}
		}
	}
	m := make([]byte, 4, 4+len(b)+7)
	binary.BigEndian.PutUint16(m[0:], 1) // OFPMT_OXM
	binary.BigEndian.PutUint16(m[2:], uint16(4+len(b)))
	m = append(m, b...)
	return pad8(m), nil
}

func pad8(b []byte) []byte {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// flowModHead is the fixed part of an OF1.5 flow_mod after the header.
func flowModHead(command uint8, table, priority int, cookie uint64) []byte {
	b := make([]byte, 40)
	binary.BigEndian.PutUint64(b[0:], cookie)
	// cookie_mask 0
	b[16], b[17] = byte(table), command
	binary.BigEndian.PutUint16(b[22:], uint16(priority))
	binary.BigEndian.PutUint32(b[24:], ofNoBuffer)
	binary.BigEndian.PutUint32(b[28:], ofPortAny)
	binary.BigEndian.PutUint32(b[32:], ofGroupAny)
	return b // flags and importance 0
}

func checkTablePrio(table, priority int) error {
	if table < 0 || table > 254 || priority < 0 || priority > 65535 {
		return unsupported("table %d priority %d", table, priority)
	}
	return nil
}

// encodeAdd is the body of the OF1.5 flow_mod (after the header) that
// `ovs-ofctl bundle` sends for "flow add table=T, priority=P, cookie=C,
// MATCH actions=ACTIONS".
func encodeAdd(table, priority int, cookie uint64, match, actions string) ([]byte, error) {
	if err := checkTablePrio(table, priority); err != nil {
		return nil, err
	}
	m, err := encodeMatch(match)
	if err != nil {
		return nil, err
	}
	ins, err := encodeInstructions(actions)
	if err != nil {
		return nil, err
	}
	b := flowModHead(ofpfcAdd, table, priority, cookie)
	b = append(b, m...)
	return append(b, ins...), nil
}

// encodeDeleteStrict is the body of the flow_mod for "flow delete_strict
// table=T, priority=P, MATCH" (any cookie, out_port, out_group).
func encodeDeleteStrict(table, priority int, match string) ([]byte, error) {
	if err := checkTablePrio(table, priority); err != nil {
		return nil, err
	}
	m, err := encodeMatch(match)
	if err != nil {
		return nil, err
	}
	return append(flowModHead(ofpfcDelStrct, table, priority, 0), m...), nil
}
