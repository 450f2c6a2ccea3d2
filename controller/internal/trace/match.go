package trace

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ct_state flags, as OVS numbers them.
const (
	ctNew uint32 = 1 << iota
	ctEst
	ctRel
	ctRpl
	ctInv
	ctTrk
	ctSNAT
	ctDNAT
)

var ctNames = []struct {
	name string
	bit  uint32
}{{"new", ctNew}, {"est", ctEst}, {"rel", ctRel}, {"rpl", ctRpl}, {"inv", ctInv}, {"trk", ctTrk}, {"snat", ctSNAT}, {"dnat", ctDNAT}}

// ctString renders flags as ofproto/trace's --ct-next takes them ("trk,new").
func ctString(s uint32) string {
	var out []string
	for _, n := range []string{"trk", "new", "est", "rel", "rpl", "inv", "snat", "dnat"} {
		for _, c := range ctNames {
			if c.name == n && s&c.bit != 0 {
				out = append(out, n)
			}
		}
	}
	return strings.Join(out, ",")
}

// Packet is the state of the simulated packet: its headers and the
// pipeline's metadata.
type Packet struct {
	InPort         string
	EthSrc, EthDst string
	ARP            bool // else IPv4
	Proto          int  // IP protocol: 1, 6, 17, 132
	Src, Dst       netip.Addr
	SrcPort        int // TCP/UDP/SCTP ports
	DstPort        int
	ICMPType       int
	ICMPCode       int
	TunID          uint64
	Regs           [8]uint32
	CtState        uint32
	CtZone         uint32
	// The original tuple of the connection (ct_nw_dst, ...), once tracked.
	CtOrigDst   netip.Addr
	CtOrigProto int
	CtOrigPort  int
	conjID      uint32
	hasConj     bool
}

// cond is one field test of a match.
type cond func(p *Packet, ports portMap) bool

// match is a parsed ovs-ofctl match.
type match struct {
	conds []cond
	// conjID is set for conj_id=N matches.
	conjID  uint32
	hasConj bool
}

// portMap gives symbolic port numbers to port names (the simulator's
// stand-in for ofports) and back.
type portMap struct {
	byName map[string]uint32
	byNum  map[uint32]string
}

func (m portMap) num(name string) uint32 {
	if n, ok := m.byName[name]; ok {
		return n
	}
	return 0xfffffff0 // no such port: matches nothing real
}

// portName strips ${port:NAME} to NAME.
func portName(s string) string {
	if strings.HasPrefix(s, "${port:") && strings.HasSuffix(s, "}") {
		return s[len("${port:") : len(s)-1]
	}
	return s
}

var protoShorthand = map[string]int{"ip": 0, "tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}

// parseMatch parses ovs-ofctl match text (the fields the compiler emits).
// An unknown field is an error: the caller treats the flow as one that
// never matches and says so.
func parseMatch(s string) (match, error) {
	var m match
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		k, v, hasV := strings.Cut(tok, "=")
		if !hasV {
			switch {
			case k == "arp":
				m.conds = append(m.conds, func(p *Packet, _ portMap) bool { return p.ARP })
			case k == "ip":
				m.conds = append(m.conds, func(p *Packet, _ portMap) bool { return !p.ARP })
			default:
				proto, ok := protoShorthand[k]
				if !ok {
					return m, fmt.Errorf("unknown match %q", k)
				}
				m.conds = append(m.conds, func(p *Packet, _ portMap) bool { return !p.ARP && p.Proto == proto })
			}
			continue
		}
		c, err := fieldCond(&m, k, v)
		if err != nil {
			return m, err
		}
		if c != nil {
			m.conds = append(m.conds, c)
		}
	}
	return m, nil
}

func fieldCond(m *match, k, v string) (cond, error) {
	switch k {
	case "in_port":
		name := portName(v)
		return func(p *Packet, _ portMap) bool { return p.InPort == name }, nil
	case "dl_src", "eth_src":
		return macCond(v, func(p *Packet) string { return p.EthSrc })
	case "dl_dst", "eth_dst":
		return macCond(v, func(p *Packet) string { return p.EthDst })
	case "eth_type", "dl_type":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return (n == 0x806) == p.ARP && (n == 0x800 || n == 0x806) }, nil
	case "nw_proto", "ip_proto":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return !p.ARP && uint64(p.Proto) == n }, nil
	case "nw_src", "ip_src", "arp_spa":
		pf, err := parsePrefix(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return p.Src.IsValid() && pf.Contains(p.Src) }, nil
	case "nw_dst", "ip_dst", "arp_tpa":
		pf, err := parsePrefix(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return p.Dst.IsValid() && pf.Contains(p.Dst) }, nil
	case "ct_nw_dst":
		pf, err := parsePrefix(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return p.CtOrigDst.IsValid() && pf.Contains(p.CtOrigDst) }, nil
	case "arp_sha":
		v = strings.ToLower(v)
		return func(p *Packet, _ portMap) bool { return p.ARP && p.EthSrc == v }, nil
	case "arp_op":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return p.ARP && n == 1 }, nil
	case "tp_src", "tcp_src", "udp_src", "sctp_src":
		val, mask, err := valueMask(v)
		if err != nil {
			return nil, err
		}
		proto := l4Proto(k)
		return func(p *Packet, _ portMap) bool {
			return !p.ARP && (proto == 0 || p.Proto == proto) && uint64(p.SrcPort)&mask == val&mask
		}, nil
	case "tp_dst", "tcp_dst", "udp_dst", "sctp_dst":
		val, mask, err := valueMask(v)
		if err != nil {
			return nil, err
		}
		proto := l4Proto(k)
		return func(p *Packet, _ portMap) bool {
			return !p.ARP && (proto == 0 || p.Proto == proto) && p.Proto != 1 && uint64(p.DstPort)&mask == val&mask
		}, nil
	case "ct_tp_dst":
		val, mask, err := valueMask(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return uint64(p.CtOrigPort)&mask == val&mask }, nil
	case "ct_nw_proto":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return uint64(p.CtOrigProto) == n }, nil
	case "icmp_type":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return !p.ARP && p.Proto == 1 && uint64(p.ICMPType) == n }, nil
	case "icmp_code":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return !p.ARP && p.Proto == 1 && uint64(p.ICMPCode) == n }, nil
	case "tun_id":
		val, mask, err := valueMask(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return p.TunID&mask == val&mask }, nil
	case "ct_state":
		set, clear, err := parseCtState(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return p.CtState&set == set && p.CtState&clear == 0 }, nil
	case "ct_zone":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return uint64(p.CtZone) == n }, nil
	case "conj_id":
		n, err := parseUint(v)
		if err != nil {
			return nil, err
		}
		m.conjID, m.hasConj = uint32(n), true
		return func(p *Packet, _ portMap) bool { return p.hasConj && p.conjID == uint32(n) }, nil
	}
	if r, ok := regIndex(k); ok {
		if name := portName(v); name != v {
			return func(p *Packet, ports portMap) bool { return p.Regs[r] == ports.num(name) }, nil
		}
		val, mask, err := valueMask(v)
		if err != nil {
			return nil, err
		}
		return func(p *Packet, _ portMap) bool { return uint64(p.Regs[r])&mask == val&mask }, nil
	}
	return nil, fmt.Errorf("unknown match field %q", k)
}

func l4Proto(k string) int {
	switch {
	case strings.HasPrefix(k, "tcp"):
		return 6
	case strings.HasPrefix(k, "udp"):
		return 17
	case strings.HasPrefix(k, "sctp"):
		return 132
	}
	return 0
}

// regIndex reads "regN".
func regIndex(k string) (int, bool) {
	if !strings.HasPrefix(k, "reg") {
		return 0, false
	}
	n, err := strconv.Atoi(k[3:])
	if err != nil || n < 0 || n > 7 {
		return 0, false
	}
	return n, true
}

func parseUint(s string) (uint64, error) {
	return strconv.ParseUint(s, 0, 64)
}

// valueMask reads "V" or "V/M" (decimal or 0x hex).
func valueMask(s string) (uint64, uint64, error) {
	v, m, hasMask := strings.Cut(s, "/")
	val, err := parseUint(v)
	if err != nil {
		return 0, 0, err
	}
	mask := ^uint64(0)
	if hasMask {
		if mask, err = parseUint(m); err != nil {
			return 0, 0, err
		}
	}
	return val, mask, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseCtState reads "+new+trk-rpl".
func parseCtState(s string) (set, clear uint32, err error) {
	for s != "" {
		sign := s[0]
		if sign != '+' && sign != '-' {
			return 0, 0, fmt.Errorf("ct_state %q", s)
		}
		s = s[1:]
		end := strings.IndexAny(s, "+-")
		if end < 0 {
			end = len(s)
		}
		name := s[:end]
		s = s[end:]
		found := false
		for _, c := range ctNames {
			if c.name == name {
				found = true
				if sign == '+' {
					set |= c.bit
				} else {
					clear |= c.bit
				}
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("ct_state flag %q", name)
		}
	}
	return set, clear, nil
}

func (m *match) matches(p *Packet, ports portMap) bool {
	for _, c := range m.conds {
		if !c(p, ports) {
			return false
		}
	}
	return true
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// macCond matches a MAC field against "MAC" or "MAC/MASK" (an IPAM block's
// MACs).
func macCond(v string, field func(*Packet) string) (cond, error) {
	v = strings.ToLower(v)
	mac, mask, masked := strings.Cut(v, "/")
	if !masked {
		return func(p *Packet, _ portMap) bool { return field(p) == v }, nil
	}
	want, err1 := net.ParseMAC(mac)
	m, err2 := net.ParseMAC(mask)
	if err1 != nil || err2 != nil || len(want) != 6 || len(m) != 6 {
		return nil, fmt.Errorf("bad MAC match %q", v)
	}
	return func(p *Packet, _ portMap) bool {
		got, err := net.ParseMAC(field(p))
		if err != nil || len(got) != 6 {
			return false
		}
		for i := range m {
			if got[i]&m[i] != want[i]&m[i] {
				return false
			}
		}
		return true
	}, nil
}
