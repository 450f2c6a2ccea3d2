package ovs

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// The actions half of the encoder (see ofenc.go): an ovs-ofctl action list
// to OF1.5 instructions (apply_actions, then goto_table), encoded as
// ovs-ofctl encodes them for OpenFlow 1.5.

const (
	ofitGotoTable    = 1
	ofitApplyActions = 4
	ofatOutput       = 0
	ofatDecNWTTL     = 24
	ofatSetField     = 25
	ofatCopyField    = 28
	ofatExperimenter = 0xffff
	nxastResubmitTbl = 14
	nxastOutputReg   = 15
	nxPortInPort     = 0xfff8 // OFPP_IN_PORT, 16-bit
)

// splitActions splits an action list at its top-level commas (not inside
// parentheses or brackets).
func splitActions(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// encodeInstructions returns the instructions of an action list.
func encodeInstructions(actions string) ([]byte, error) {
	items := splitActions(actions)
	if len(items) == 1 && items[0] == "drop" {
		return nil, nil
	}
	var acts, ins []byte
	for i, a := range items {
		if t, ok := strings.CutPrefix(a, "goto_table:"); ok {
			if i != len(items)-1 {
				return nil, unsupported("goto_table before other actions")
			}
			n, err := parseUint(t)
			if err != nil || n > 254 {
				return nil, unsupported("action %q", a)
			}
			ins = append(ins, 0, ofitGotoTable, 0, 8, byte(n), 0, 0, 0)
			continue
		}
		b, err := encodeAction(a)
		if err != nil {
			return nil, err
		}
		acts = append(acts, b...)
	}
	if len(acts) > 0 {
		h := make([]byte, 8, 8+len(acts))
		binary.BigEndian.PutUint16(h[0:], ofitApplyActions)
		binary.BigEndian.PutUint16(h[2:], uint16(8+len(acts)))
		ins = append(append(h, acts...), ins...)
	}
	return ins, nil
}

// encodeAction encodes one action (not goto_table).
func encodeAction(a string) ([]byte, error) {
	if b, ok, err := nxActionFor(a); ok {
		return b, err
	}
	name, arg, _ := strings.Cut(a, ":")
	switch {
	case a == "in_port" || a == "IN_PORT" || a == "output:IN_PORT" || a == "output:in_port":
		return outputAction(ofPortInPort), nil
	case a == "dec_ttl":
		return []byte{0, ofatDecNWTTL, 0, 8, 0, 0, 0, 0}, nil
	case name == "group":
		return groupAction(arg)
	case name == "output":
		if n, err := parseUint(arg); err == nil {
			if n == 0 || n >= ofPortMax {
				return nil, unsupported("output port %q", arg)
			}
			return outputAction(uint32(n)), nil
		}
		sf, err := parseSubfield(arg, true)
		if err != nil {
			return nil, err
		}
		b := nxAction(nxastOutputReg, 24)
		binary.BigEndian.PutUint16(b[10:], uint16(sf.ofs<<6|(sf.nbits-1)))
		binary.BigEndian.PutUint32(b[12:], sf.f.header(false))
		binary.BigEndian.PutUint16(b[16:], 0xffff) // max_len, as ovs-ofctl sets it
		return b, nil
	case name == "set_field":
		v, dst, ok := strings.Cut(arg, "->")
		f := fields[dst]
		if !ok || f == nil || !f.writable {
			return nil, unsupported("action %q", a)
		}
		val, mask, err := parseSetFieldValue(f, v)
		if err != nil {
			return nil, err
		}
		return setFieldAction(f, val, mask), nil
	case name == "load":
		v, dst, ok := strings.Cut(arg, "->")
		if !ok {
			return nil, unsupported("action %q", a)
		}
		sf, err := parseSubfield(dst, false)
		if err != nil {
			return nil, err
		}
		return loadAction(sf, v)
	case name == "move":
		s, d, ok := strings.Cut(arg, "->")
		if !ok {
			return nil, unsupported("action %q", a)
		}
		src, err := parseSubfield(s, false)
		if err != nil {
			return nil, err
		}
		dst, err := parseSubfield(d, false)
		if err != nil {
			return nil, err
		}
		if src.nbits != dst.nbits || !dst.f.writable {
			return nil, unsupported("action %q", a)
		}
		// OF1.5 copy_field (NXAST_REG_MOVE is OF1.0 to 1.4 only).
		b := make([]byte, 24)
		binary.BigEndian.PutUint16(b[0:], ofatCopyField)
		binary.BigEndian.PutUint16(b[2:], 24)
		binary.BigEndian.PutUint16(b[4:], uint16(src.nbits))
		binary.BigEndian.PutUint16(b[6:], uint16(src.ofs))
		binary.BigEndian.PutUint16(b[8:], uint16(dst.ofs))
		binary.BigEndian.PutUint32(b[12:], src.f.header(false))
		binary.BigEndian.PutUint32(b[16:], dst.f.header(false))
		return b, nil
	case strings.HasPrefix(a, "resubmit(,") && strings.HasSuffix(a, ")"):
		n, err := parseUint(a[len("resubmit(,") : len(a)-1])
		if err != nil || n > 254 {
			return nil, unsupported("action %q", a)
		}
		b := nxAction(nxastResubmitTbl, 16)
		binary.BigEndian.PutUint16(b[10:], nxPortInPort)
		b[12] = byte(n)
		return b, nil
	}
	return nil, unsupported("action %q", a)
}

func outputAction(port uint32) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b[2:], 16)
	binary.BigEndian.PutUint32(b[4:], port)
	return b // max_len 0, as ovs-ofctl sets it for a port
}

// nxAction returns a zeroed Nicira extension action of n bytes.
func nxAction(subtype uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b[0:], ofatExperimenter)
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	binary.BigEndian.PutUint32(b[4:], nxVendor)
	binary.BigEndian.PutUint16(b[8:], subtype)
	return b
}

func setFieldAction(f *ofField, val, mask []byte) []byte {
	b := []byte{0, ofatSetField, 0, 0}
	b = pad8(oxm(b, f, val, mask))
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// parseSetFieldValue parses set_field's value: as a match value, but a
// value with bits outside its mask is refused rather than cut.
func parseSetFieldValue(f *ofField, s string) (val, mask []byte, err error) {
	if _, _, masked := strings.Cut(s, "/"); !masked {
		val, err = parseValue(f, s)
		return val, nil, err
	}
	whole, err := parseValue(f, s[:strings.IndexByte(s, '/')])
	if err != nil {
		return nil, nil, err
	}
	if val, mask, err = parseMasked(f, s); err != nil {
		return nil, nil, err
	}
	if string(val) != string(whole) {
		return nil, nil, unsupported("set_field value outside its mask %q", s)
	}
	return val, mask, nil
}

// subfield is FIELD[ofs..ofs+nbits-1].
type subfield struct {
	f          *ofField
	ofs, nbits int
}

// parseSubfield parses "NXM_..[]", "NXM_..[a..b]", "NXM_..[a]" or
// "reg0[...]"; bare is set where a plain field name ("reg2") may stand for
// the whole field (output).
func parseSubfield(s string, bare bool) (subfield, error) {
	name, rng, hasRng := strings.Cut(s, "[")
	if !hasRng && !bare {
		return subfield{}, unsupported("field %q", s)
	}
	if n, ok := nxmNames[name]; ok {
		name = n
	}
	f := fields[name]
	if f == nil || f == fldInPort || f == fldEthType || f == fldIPProto || f == fldConjID || f == fldCTState {
		return subfield{}, unsupported("field %q", s)
	}
	width := 8 * f.size
	sf := subfield{f: f, nbits: width}
	if !hasRng || rng == "]" {
		return sf, nil
	}
	rng, ok := strings.CutSuffix(rng, "]")
	if !ok {
		return subfield{}, unsupported("field %q", s)
	}
	lo, hi, isRange := strings.Cut(rng, "..")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a < 0 || a > b || b >= width {
		return subfield{}, unsupported("field %q", s)
	}
	sf.ofs, sf.nbits = a, b-a+1
	return sf, nil
}

// loadAction is "load:V->DST": a set_field of the subfield's bits.
func loadAction(sf subfield, v string) ([]byte, error) {
	n, err := parseUint(v)
	if err != nil {
		return nil, err
	}
	width := 8 * sf.f.size
	if sf.nbits < 64 && n>>sf.nbits != 0 {
		return nil, unsupported("load value %q wider than its field", v)
	}
	val := make([]byte, sf.f.size)
	if sf.nbits == width {
		if sf.f.max != 0 && n > sf.f.max {
			return nil, unsupported("load value %q out of range", v)
		}
		putUint(val, n)
		return setFieldAction(sf.f, val, nil), nil
	}
	if sf.f.max != 0 || width > 64 {
		return nil, unsupported("partial load of %v", sf.f.code)
	}
	m := (uint64(1)<<sf.nbits - 1) << sf.ofs
	mask := make([]byte, sf.f.size)
	putUint(val, n<<sf.ofs)
	putUint(mask, m)
	return setFieldAction(sf.f, val, mask), nil
}
