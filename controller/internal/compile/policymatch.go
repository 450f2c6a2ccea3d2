package compile

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// The OpenFlow matches of policy rules: ports and protocols, address blocks.

// protoMatch is the OpenFlow match of a policy protocol (case-insensitive,
// empty = TCP), or "" for an unknown one.
func protoMatch(proto string) string {
	switch strings.ToUpper(proto) {
	case "", "TCP":
		return "tcp"
	case "UDP":
		return "udp"
	case "SCTP":
		return "sctp"
	case "ICMP":
		return "icmp"
	}
	return ""
}

// portMatches are the matches of one PolicyPort: the protocol, with the
// destination port range as few value/mask matches as cover it exactly.
// An invalid port (unknown protocol, a port with ICMP, a range out of
// 1..65535 or reversed) matches nothing.
func portMatches(pp openapi.PolicyPort) []string {
	proto := protoMatch(pp.Protocol)
	switch {
	case proto == "":
		return nil
	case pp.Port == 0 && pp.EndPort == 0:
		return []string{proto}
	case proto == "icmp" || pp.Port < 1 || pp.Port > 65535:
		return nil
	}
	end := pp.EndPort
	if end == 0 {
		end = pp.Port
	}
	if end < pp.Port || end > 65535 {
		return nil
	}
	var out []string
	for _, m := range rangeMasks(pp.Port, end) {
		if m.mask == 0xffff {
			out = append(out, proto+",tp_dst="+strconv.Itoa(m.value))
		} else {
			out = append(out, proto+",tp_dst=0x"+strconv.FormatInt(int64(m.value), 16)+"/0x"+strconv.FormatInt(int64(m.mask), 16))
		}
	}
	return out
}

type valueMask struct{ value, mask int }

// rangeMasks splits lo..hi (16-bit, lo <= hi) into the fewest aligned
// power-of-two blocks, each a value/mask pair: at most 30 of them.
func rangeMasks(lo, hi int) []valueMask {
	var out []valueMask
	for lo <= hi {
		size := 1
		for size < 1<<16 && lo%(size*2) == 0 && lo+size*2-1 <= hi {
			size *= 2
		}
		out = append(out, valueMask{lo, 0xffff &^ (size - 1)})
		lo += size
	}
	return out
}

// cidrBlocks is cidr minus its except blocks, as a sorted list of disjoint
// IPv4 prefixes; nil when cidr is not IPv4 or nothing is left. Except
// blocks outside cidr (or not IPv4) are ignored.
func cidrBlocks(cidr string, except []string) []netip.Prefix {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return nil
	}
	set := []netip.Prefix{p.Masked()}
	for _, e := range except {
		x, err := netip.ParsePrefix(e)
		if err != nil || !x.Addr().Is4() {
			continue
		}
		x = x.Masked()
		var next []netip.Prefix
		for _, b := range set {
			switch {
			case x.Bits() <= b.Bits() && x.Contains(b.Addr()):
				// b is inside the except block: gone.
			case b.Bits() < x.Bits() && b.Contains(x.Addr()):
				next = append(next, subtract(b, x)...)
			default:
				next = append(next, b)
			}
		}
		set = next
	}
	slices.SortFunc(set, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return set
}

// subtract is b minus x, x strictly inside b: at every length from b's to
// x's, the half that does not hold x.
func subtract(b, x netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for bits := b.Bits() + 1; bits <= x.Bits(); bits++ {
		mine, _ := x.Addr().Prefix(bits)
		out = append(out, sibling(mine))
	}
	return out
}

// sibling is the other half of p's parent prefix.
func sibling(p netip.Prefix) netip.Prefix {
	a := p.Addr().As4()
	bit := p.Bits() - 1
	a[bit/8] ^= 0x80 >> (bit % 8)
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
}

// prefixMatch is the match of packets whose field (nw_src or nw_dst) is in
// p; "ip" for 0.0.0.0/0.
func prefixMatch(field string, p netip.Prefix) string {
	if p.Bits() == 0 {
		return "ip"
	}
	if p.Bits() == 32 {
		return "ip," + field + "=" + p.Addr().String()
	}
	return "ip," + field + "=" + p.String()
}
