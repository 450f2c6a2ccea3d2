package trace

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// Verdicts of a host's simulation (and of its switch's trace).
const (
	VerdictOutput     = "output"
	VerdictDrop       = "drop"
	VerdictController = "controller"
	VerdictLoop       = "loop"
)

// maxSteps bounds one simulation (flows matched, resubmits included).
const maxSteps = 256

// Sim runs packets through one host's compiled flows. It is built once per
// program and never changed, so it may be shared.
type Sim struct {
	tables map[int][]simFlow // each sorted by priority, highest first
	groups map[uint32][]bucket
	ports  portMap
}

type simFlow struct {
	f    openapi.Flow
	m    match
	conj []conjAct
	acts []string
	err  error
}

type conjAct struct {
	id   uint32
	k, n int
}

type bucket struct {
	weight int
	acts   []string
}

// NewSim indexes p's flows and groups. Port names get symbolic numbers (the
// simulator's ofports): the program's container and tunnel ports and the
// agent's own ports (sygw0, sydns0), in name order.
func NewSim(p *openapi.Program) *Sim {
	s := &Sim{tables: map[int][]simFlow{}, groups: map[uint32][]bucket{},
		ports: portMap{byName: map[string]uint32{}, byNum: map[uint32]string{}}}
	names := []string{openapi.GatewayPortName, openapi.DNSPortName}
	for _, c := range p.Containers {
		names = append(names, c.Name)
	}
	for _, t := range p.Tunnels {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	for i, n := range slices.Compact(names) {
		s.ports.byName[n] = uint32(i + 1)
		s.ports.byNum[uint32(i+1)] = n
	}
	for _, f := range p.Flows {
		sf := simFlow{f: f}
		sf.m, sf.err = parseMatch(f.Match)
		for _, a := range splitTop(f.Actions) {
			a = strings.TrimSpace(a)
			if strings.HasPrefix(a, "conjunction(") {
				c, err := parseConj(a)
				if err != nil && sf.err == nil {
					sf.err = err
				}
				sf.conj = append(sf.conj, c)
				continue
			}
			sf.acts = append(sf.acts, a)
		}
		s.tables[f.Table] = append(s.tables[f.Table], sf)
	}
	for t := range s.tables {
		slices.SortStableFunc(s.tables[t], func(a, b simFlow) int { return b.f.Priority - a.f.Priority })
	}
	for _, g := range p.Groups {
		s.groups[g.ID] = parseBuckets(g.Spec)
	}
	return s
}

// parseConj reads "conjunction(ID,K/N)".
func parseConj(a string) (conjAct, error) {
	var c conjAct
	body := strings.TrimSuffix(strings.TrimPrefix(a, "conjunction("), ")")
	id, kn, ok1 := strings.Cut(body, ",")
	k, n, ok2 := strings.Cut(kn, "/")
	v, err1 := strconv.ParseUint(id, 10, 32)
	kk, err2 := strconv.Atoi(k)
	nn, err3 := strconv.Atoi(n)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
		return c, fmt.Errorf("action %q: not conjunction(ID,K/N)", a)
	}
	return conjAct{id: uint32(v), k: kk, n: nn}, nil
}

// parseBuckets reads the buckets of a group spec
// ("type=select,...,bucket=bucket_id:0,weight:W,actions=A,bucket=...").
func parseBuckets(spec string) []bucket {
	var out []bucket
	parts := strings.Split(spec, ",bucket=")
	for _, b := range parts[1:] {
		var bk bucket
		head, acts, _ := strings.Cut(b, "actions=")
		for _, kv := range strings.Split(head, ",") {
			if w, ok := strings.CutPrefix(kv, "weight:"); ok {
				bk.weight, _ = strconv.Atoi(w)
			}
		}
		bk.acts = splitTop(acts)
		out = append(out, bk)
	}
	return out
}

// Result is one simulation.
type Result struct {
	Flows []openapi.Flow
	// Alternatives are, by index in Flows, the other flows the switch may
	// match there instead: same table, same priority, same actions.
	Alternatives map[int][]openapi.Flow
	Verdict      string
	// Output is the port the packet leaves by (VerdictOutput).
	Output string
	// Packet is the packet as it leaves (or as it was dropped).
	Packet Packet
	// CtNext are the ct_state flags assumed at each recirculation after a
	// ct action, in order (ofproto/trace --ct-next).
	CtNext []string
	// Backend is the address:port a select group's bucket DNATed to.
	Backend string
	// Notes say what the simulator could not follow (unknown fields).
	Notes []string
}

// Run simulates pkt entering the pipeline at table 0. Connection state: every
// ct action finds a new connection (+trk+new, plus +dnat/+snat when the
// action itself translates); prefer is the backend ("ip:port") a select
// group's bucket should be taken for, when one DNATs to it (else the first
// bucket with weight).
func (s *Sim) Run(pkt Packet, prefer string) Result {
	st := &runState{s: s, pkt: pkt, prefer: prefer, orig: map[uint32][3]any{}}
	st.table(0)
	r := st.res
	r.Packet = st.pkt
	switch {
	case st.looped:
		r.Verdict = VerdictLoop
	case st.output != "":
		r.Verdict, r.Output = VerdictOutput, st.output
	case st.controller:
		r.Verdict = VerdictController
	default:
		r.Verdict = VerdictDrop
	}
	return r
}

type runState struct {
	s          *Sim
	pkt        Packet
	prefer     string
	res        Result
	steps      int
	output     string
	controller bool
	looped     bool
	// orig is each zone's original tuple (dst, proto, port), set when the
	// zone first sees the packet.
	orig map[uint32][3]any
}

// table runs the pipeline from table t until it stops.
func (st *runState) table(t int) {
	for t >= 0 {
		if st.steps++; st.steps > maxSteps {
			st.looped = true
			return
		}
		f, alts := st.s.lookup(t, &st.pkt)
		if f == nil {
			return // a table miss drops (OpenFlow 1.3+)
		}
		if len(alts) > 0 {
			if st.res.Alternatives == nil {
				st.res.Alternatives = map[int][]openapi.Flow{}
			}
			st.res.Alternatives[len(st.res.Flows)] = alts
		}
		st.res.Flows = append(st.res.Flows, f.f)
		t = st.actions(f.acts)
	}
}

// lookup finds the flow of table t that the packet matches: the highest
// priority; within one priority a plain flow before a conjunction's
// (conj_id=) flow, which matches when every dimension of its conjunction
// has a matching clause flow at that priority. alts are the other flows of
// that priority that match too and do the same (two policies admitting
// the same packet): OpenFlow leaves the choice among them to the switch,
// and any of them takes the packet the same way.
func (s *Sim) lookup(t int, p *Packet) (f *simFlow, alts []openapi.Flow) {
	flows := s.tables[t]
	for i := 0; i < len(flows); {
		j := i
		for j < len(flows) && flows[j].f.Priority == flows[i].f.Priority {
			j++
		}
		if found := s.band(flows[i:j], p); len(found) > 0 {
			for _, g := range found[1:] {
				if g.f.Actions == found[0].f.Actions {
					alts = append(alts, g.f)
				}
			}
			return found[0], alts
		}
		i = j
	}
	return nil, nil
}

// band returns the flows of one priority that match p, plain flows first.
func (s *Sim) band(band []simFlow, p *Packet) []*simFlow {
	var found []*simFlow
	for k := range band {
		f := &band[k]
		if f.err == nil && len(f.conj) == 0 && !f.m.hasConj && f.m.matches(p, s.ports) {
			found = append(found, f)
		}
	}
	dims, want := map[uint32]map[int]bool{}, map[uint32]int{}
	for k := range band {
		f := &band[k]
		if f.err != nil || len(f.conj) == 0 || !f.m.matches(p, s.ports) {
			continue
		}
		for _, c := range f.conj {
			if dims[c.id] == nil {
				dims[c.id] = map[int]bool{}
			}
			dims[c.id][c.k] = true
			want[c.id] = c.n
		}
	}
	for k := range band {
		f := &band[k]
		if f.err != nil || !f.m.hasConj || len(dims[f.m.conjID]) != want[f.m.conjID] || want[f.m.conjID] == 0 {
			continue
		}
		p.conjID, p.hasConj = f.m.conjID, true
		ok := f.m.matches(p, s.ports)
		p.conjID, p.hasConj = 0, false
		if ok {
			found = append(found, f)
		}
	}
	return found
}

// actions executes one action list and returns the table the pipeline
// continues at (-1: it stops).
func (st *runState) actions(acts []string) int {
	next := -1
	for _, a := range acts {
		a = strings.TrimSpace(a)
		name, arg, _ := strings.Cut(a, ":")
		switch {
		case a == "drop" || a == "":
		case name == "goto_table":
			n, _ := strconv.Atoi(arg)
			next = n
		case strings.HasPrefix(a, "resubmit("):
			var t int
			if _, err := fmt.Sscanf(a, "resubmit(,%d)", &t); err == nil {
				st.table(t)
			} else {
				st.note("unsupported action %q", a)
			}
		case name == "set_field":
			st.setField(arg)
		case name == "move":
			st.move(arg)
		case a == "dec_ttl" || strings.HasPrefix(a, "learn(") || name == "meter" || name == "note":
		case strings.HasPrefix(a, "ct("):
			if t, recirc := st.ct(a[3 : len(a)-1]); recirc {
				return t
			}
		case name == "group":
			n, _ := strconv.ParseUint(arg, 10, 32)
			return st.group(uint32(n))
		case name == "output":
			port := portName(arg)
			if r, ok := regIndex(arg); ok {
				port = st.s.ports.byNum[st.pkt.Regs[r]]
			}
			st.output = port
		case a == "IN_PORT" || a == "in_port":
			st.output = st.pkt.InPort
		case strings.HasPrefix(a, "controller("):
			st.controller = true
		default:
			st.note("unsupported action %q", a)
		}
	}
	return next
}

func (st *runState) note(format string, args ...any) {
	st.res.Notes = append(st.res.Notes, fmt.Sprintf(format, args...))
}

// setField does set_field:V[/M]->F.
func (st *runState) setField(arg string) {
	v, f, ok := strings.Cut(arg, "->")
	if !ok {
		st.note("set_field %q", arg)
		return
	}
	p := &st.pkt
	if r, ok := regIndex(f); ok {
		if name := portName(v); name != v {
			p.Regs[r] = st.s.ports.num(name)
			return
		}
		val, mask, err := valueMask(v)
		if err != nil {
			st.note("set_field %q: %v", arg, err)
			return
		}
		p.Regs[r] = uint32(uint64(p.Regs[r])&^mask | val&mask)
		return
	}
	switch f {
	case "eth_dst":
		p.EthDst = setMAC(p.EthDst, v)
	case "eth_src":
		p.EthSrc = setMAC(p.EthSrc, v)
	case "tun_id":
		n, _ := parseUint(v)
		p.TunID = n
	case "ip_src", "nw_src":
		p.Src, _ = netip.ParseAddr(v)
	case "ip_dst", "nw_dst":
		p.Dst, _ = netip.ParseAddr(v)
	case "icmp_type":
		n, _ := strconv.Atoi(v)
		p.ICMPType = n
	case "arp_op", "arp_sha", "arp_spa":
	default:
		st.note("set_field of %s", f)
	}
}

// move does the moves the compiler emits.
func (st *runState) move(arg string) {
	p := &st.pkt
	switch arg {
	case "NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]":
		p.EthDst = p.EthSrc
	case "NXM_OF_IP_SRC[]->NXM_OF_IP_DST[]":
		p.Dst = p.Src
	case "NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23]":
		p.TunID = uint64(p.Regs[0] & 0xffffff)
	case "NXM_OF_IP_DST[]->NXM_OF_ETH_DST[0..31]": // a derived MAC (then the set_field of 0a:58)
		p.EthDst = withLow32(p.EthDst, p.Dst)
	case "NXM_OF_ARP_TPA[]->NXM_OF_ETH_SRC[0..31]": // the derived ARP answer (arp_tpa is Dst)
		p.EthSrc = withLow32(p.EthSrc, p.Dst)
	case "NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]", "NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
		"NXM_OF_ETH_SRC[]->NXM_NX_ARP_SHA[]", "NXM_OF_ETH_SRC[0..31]->NXM_OF_ARP_SPA[]":
	default:
		st.note("move %q", arg)
	}
}

// setMAC is set_field of "MAC" or "MAC/MASK" over mac.
func setMAC(mac, v string) string {
	v = strings.ToLower(v)
	val, mask, masked := strings.Cut(v, "/")
	if !masked {
		return v
	}
	hw, err1 := net.ParseMAC(mac)
	nv, err2 := net.ParseMAC(val)
	m, err3 := net.ParseMAC(mask)
	if err1 != nil || err2 != nil || err3 != nil || len(hw) != 6 || len(nv) != 6 || len(m) != 6 {
		return v
	}
	for i := range hw {
		hw[i] = hw[i]&^m[i] | nv[i]&m[i]
	}
	return hw.String()
}

// withLow32 is mac with its low 32 bits set to IPv4 address a.
func withLow32(mac string, a netip.Addr) string {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || !a.Is4() {
		hw = make(net.HardwareAddr, 6)
	}
	b := a.As4()
	copy(hw[2:], b[:])
	return hw.String()
}

// ct does ct(args): a commit with nat(...) translates the packet; with
// table= the packet continues there with the assumed connection state
// (recirc true).
func (st *runState) ct(args string) (int, bool) {
	p := &st.pkt
	table, zone, commit := -1, uint32(0), false
	var nat string
	for _, a := range splitTop(args) {
		k, v, _ := strings.Cut(a, "=")
		switch {
		case a == "commit":
			commit = true
		case k == "table":
			table, _ = strconv.Atoi(v)
		case k == "zone":
			if strings.HasPrefix(v, "NXM_NX_REG0[0..15]") {
				zone = p.Regs[0] & 0xffff
			} else {
				n, _ := parseUint(v)
				zone = uint32(n)
			}
		case strings.HasPrefix(a, "nat("):
			nat = a[4 : len(a)-1]
		}
	}
	if _, seen := st.orig[zone]; !seen {
		st.orig[zone] = [3]any{p.Dst, p.Proto, p.DstPort}
	}
	flags := ctTrk | ctNew
	if commit && nat != "" {
		kind, to, _ := strings.Cut(nat, "=")
		ipStr, portStr, hasPort := strings.Cut(to, ":")
		ip, err := netip.ParseAddr(ipStr)
		if err != nil {
			st.note("nat %q", nat)
		} else if kind == "dst" {
			p.Dst, flags = ip, flags|ctDNAT
			if hasPort {
				p.DstPort, _ = strconv.Atoi(portStr)
			}
		} else {
			p.Src, flags = ip, flags|ctSNAT
			if hasPort {
				p.SrcPort, _ = strconv.Atoi(portStr)
			}
		}
	}
	if table < 0 {
		return 0, false
	}
	o := st.orig[zone]
	p.CtState, p.CtZone = flags, zone
	p.CtOrigDst, p.CtOrigProto, p.CtOrigPort = o[0].(netip.Addr), o[1].(int), o[2].(int)
	st.res.CtNext = append(st.res.CtNext, ctString(flags))
	return table, true
}

// group runs a select group: the bucket that DNATs to the preferred
// backend, else the first with weight.
func (st *runState) group(id uint32) int {
	bs, ok := st.s.groups[id]
	if !ok || len(bs) == 0 {
		st.note("group %d: none or no buckets", id)
		return -1
	}
	pick := -1
	for i, b := range bs {
		if b.weight == 0 {
			continue
		}
		if pick < 0 {
			pick = i
		}
		if st.prefer != "" && slices.ContainsFunc(b.acts, func(a string) bool { return strings.Contains(a, "nat(dst="+st.prefer+")") }) {
			pick = i
			break
		}
	}
	if pick < 0 {
		pick = 0
	}
	for _, a := range bs[pick].acts {
		if i := strings.Index(a, "nat(dst="); i >= 0 {
			st.res.Backend = strings.TrimSuffix(a[i+len("nat(dst="):], "))")
		}
	}
	return st.actions(bs[pick].acts)
}
