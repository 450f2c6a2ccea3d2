package ovs

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
)

// The Nicira extension actions of the encoder (see ofenc.go) that the
// policy and service pipelines use: ct (conntrack, with a nested nat: bare,
// or src= / dst= one IPv4 address and an optional port), conjunction and
// controller with userdata and a meter, encoded as ovs-ofctl encodes them
// for OpenFlow 1.5 (NXAST_CT, NXAST_NAT, NXAST_CONJUNCTION,
// NXAST_CONTROLLER2). Only the forms the compiler writes are known; nat
// ranges and flags, exec, alg, force, max_len, pause, a controller action
// without userdata or meter and any other argument are refused as
// unsupported.

const (
	nxastConjunction = 34
	nxastCT          = 35
	nxastNAT         = 36
	nxastController2 = 37
	nxNATFSrc        = 1 << 0
	nxNATFDst        = 1 << 1
	nxNATRangeIPv4   = 1 << 0 // NX_NAT_RANGE_IPV4_MIN
	nxNATRangeProto  = 1 << 4 // NX_NAT_RANGE_PROTO_MIN
	nxCTFCommit      = 1 << 0
	nxCTRecircNone   = 0xff // NX_CT_RECIRC_NONE (OFPTT_ALL)

	nxac2ptReason   = 2 // NXAC2PT_REASON, u8
	nxac2ptUserdata = 3 // NXAC2PT_USERDATA, bytes
	nxac2ptMeterID  = 5 // NXAC2PT_METER_ID, be32
)

// packetInReasons are the controller reasons the encoder knows (OFPR_*).
// (OFPR_ACTION, policyobs.go, is the default and is not encoded.)
var packetInReasons = map[string]uint8{"no_match": 0, "action": ofprAction, "invalid_ttl": 2}

// parenArgs returns the comma-separated arguments of "NAME(ARGS)", or
// false if a is not such a call.
func parenArgs(a, name string) ([]string, bool) {
	inner, ok := strings.CutPrefix(a, name+"(")
	if !ok {
		return nil, false
	}
	inner, ok = strings.CutSuffix(inner, ")")
	if !ok || inner == "" {
		return nil, ok
	}
	return splitActions(inner), true
}

// decimal parses a plain decimal number (no sign, no leading zero, no
// hexadecimal): the form ovs-ofctl reads with base 10.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	v, err := parseUint(s)
	return v, err == nil
}

// nxActionFor encodes a ct, conjunction or controller action; ok is false
// when a is none of them.
func nxActionFor(a string) (b []byte, ok bool, err error) {
	if args, ok := parenArgs(a, "ct"); ok {
		b, err = ctAction(a, args)
		return b, true, err
	}
	if args, ok := parenArgs(a, "conjunction"); ok {
		b, err = conjunctionAction(a, args)
		return b, true, err
	}
	if args, ok := parenArgs(a, "controller"); ok {
		b, err = controllerAction(a, args)
		return b, true, err
	}
	return nil, false, nil
}

// ctAction is "ct([commit][,table=N][,zone=N|zone=SUBFIELD])": NXAST_CT
// without nested actions.
func ctAction(a string, args []string) ([]byte, error) {
	if len(args) == 0 {
		return nil, unsupported("action %q", a)
	}
	b := nxAction(nxastCT, 24)
	var flags uint16
	table := uint64(nxCTRecircNone)
	seen := map[string]bool{}
	var nat []byte
	for _, arg := range args {
		if arg == "nat" || strings.HasPrefix(arg, "nat(") {
			if nat != nil {
				return nil, unsupported("repeated nat in %q", a)
			}
			var err error
			if nat, err = natAction(a, arg); err != nil {
				return nil, err
			}
			continue
		}
		k, v, hasV := strings.Cut(arg, "=")
		if seen[k] {
			return nil, unsupported("repeated %q in %q", k, a)
		}
		seen[k] = true
		switch {
		case k == "commit" && !hasV:
			flags |= nxCTFCommit
		case k == "table" && hasV:
			n, ok := decimal(v)
			if !ok || n >= nxCTRecircNone {
				return nil, unsupported("ct table in %q", a)
			}
			table = n
		case k == "zone" && hasV:
			if n, err := parseUint(v); err == nil {
				if n > 0xffff {
					return nil, unsupported("ct zone in %q", a)
				}
				binary.BigEndian.PutUint16(b[16:], uint16(n)) // zone_imm, zone_src 0
				continue
			}
			sf, err := parseSubfield(v, false)
			if err != nil || sf.nbits != 16 {
				return nil, unsupported("ct zone in %q", a)
			}
			binary.BigEndian.PutUint32(b[12:], sf.f.header(false))
			binary.BigEndian.PutUint16(b[16:], uint16(sf.ofs<<6|(sf.nbits-1)))
		default:
			return nil, unsupported("action %q", a)
		}
	}
	binary.BigEndian.PutUint16(b[10:], flags)
	b[18] = byte(table)
	if nat != nil {
		b = append(b, nat...)
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	}
	return b, nil // alg 0
}

// natAction is the NXAST_NAT nested in a ct action: "nat" (translate by
// the connection's existing NAT) or "nat(src=IP[:PORT])" / "nat(dst=...)"
// with one IPv4 address (the range's minimum; ovs-ofctl leaves the maximum
// out for a single address) and an optional port.
func natAction(ct, arg string) ([]byte, error) {
	b := nxAction(nxastNAT, 16)
	if arg == "nat" {
		return b, nil // flags 0, no range
	}
	inner, ok := strings.CutSuffix(strings.TrimPrefix(arg, "nat("), ")")
	k, v, hasV := strings.Cut(inner, "=")
	var flags uint16
	switch {
	case ok && hasV && k == "src":
		flags = nxNATFSrc
	case ok && hasV && k == "dst":
		flags = nxNATFDst
	default:
		return nil, unsupported("nat in %q", ct)
	}
	ipText, portText, hasPort := strings.Cut(v, ":")
	ip, err := netip.ParseAddr(ipText)
	if err != nil || !ip.Is4() || ip.IsUnspecified() {
		return nil, unsupported("nat address in %q", ct)
	}
	ip4 := ip.As4()
	b = append(b, ip4[:]...)
	present := uint16(nxNATRangeIPv4)
	if hasPort {
		port, ok := decimal(portText)
		if !ok || port == 0 || port > 0xffff {
			return nil, unsupported("nat port in %q", ct)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(port))
		present |= nxNATRangeProto
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[12:], flags)
	binary.BigEndian.PutUint16(b[14:], present)
	return b, nil
}

// conjunctionAction is "conjunction(ID,K/N)": NXAST_CONJUNCTION with the
// clause 0-based.
func conjunctionAction(a string, args []string) ([]byte, error) {
	if len(args) != 2 {
		return nil, unsupported("action %q", a)
	}
	id, err := parseUint(args[0])
	ks, ns, ok := strings.Cut(args[1], "/")
	k, okK := decimal(ks)
	n, okN := decimal(ns)
	if err != nil || id > 0xffffffff || !ok || !okK || !okN || n < 2 || n > 64 || k < 1 || k > n {
		return nil, unsupported("action %q", a)
	}
	b := nxAction(nxastConjunction, 16)
	b[10], b[11] = byte(k-1), byte(n)
	binary.BigEndian.PutUint32(b[12:], uint32(id))
	return b, nil
}

// controllerAction is "controller(userdata=HEX[,meter_id=N][,reason=R])"
// (userdata or meter_id required): NXAST_CONTROLLER2 with its properties
// in ovs-ofctl's order (reason, userdata, meter_id), each padded to 8.
func controllerAction(a string, args []string) ([]byte, error) {
	reason := uint8(ofprAction)
	var userdata []byte
	var meter uint64
	seen := map[string]bool{}
	for _, arg := range args {
		k, v, hasV := strings.Cut(arg, "=")
		if seen[k] || !hasV {
			return nil, unsupported("action %q", a)
		}
		seen[k] = true
		switch k {
		case "reason":
			r, ok := packetInReasons[v]
			if !ok {
				return nil, unsupported("controller reason in %q", a)
			}
			reason = r
		case "userdata":
			var ok bool
			if userdata, ok = parseHexBytes(v); !ok {
				return nil, unsupported("controller userdata in %q", a)
			}
		case "meter_id":
			n, err := parseUint(v)
			if err != nil || n == 0 || n > 0xffffffff {
				return nil, unsupported("controller meter_id in %q", a)
			}
			meter = n
		default:
			return nil, unsupported("action %q", a)
		}
	}
	if userdata == nil && meter == 0 {
		return nil, unsupported("action %q", a) // ovs-ofctl's other encodings
	}
	b := nxAction(nxastController2, 16)
	if reason != ofprAction {
		b = appendProp(b, nxac2ptReason, []byte{reason})
	}
	if userdata != nil {
		b = appendProp(b, nxac2ptUserdata, userdata)
	}
	if meter != 0 {
		b = appendProp(b, nxac2ptMeterID, binary.BigEndian.AppendUint32(nil, uint32(meter)))
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b, nil
}

// appendProp appends an OpenFlow property (type, length without padding,
// value) padded to 8 bytes.
func appendProp(b []byte, typ uint16, val []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(val)))
	return pad8(append(b, val...))
}

// parseHexBytes parses pairs of hex digits, optionally separated by dots
// (the userdata form the compiler writes); at least one byte.
func parseHexBytes(s string) ([]byte, bool) {
	var out []byte
	for _, part := range strings.Split(s, ".") {
		b, err := hex.DecodeString(part)
		if err != nil || len(b) == 0 {
			return nil, false
		}
		out = append(out, b...)
	}
	return out, true
}
