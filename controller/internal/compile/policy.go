package compile

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/openapi"
)

// Owner kinds of policy flows (see the package doc, Policy).
const (
	KindPolicyRule   = "policy-rule"
	KindIsolation    = "policy-isolation"
	KindPolicyClause = "policy-clause"
)

// Policy directions, as in RuleCookie and IsolationCookie.
const (
	DirIngress = "ingress"
	DirEgress  = "egress"
)

// Policy priorities (openapi.Policy.Priority): lower is evaluated first.
const (
	MinPolicyPriority     = 1
	MaxPolicyPriority     = 10000
	DefaultPolicyPriority = 1000

	// prioPolicyBase is the OpenFlow priority of an allow rule of priority
	// MaxPolicyPriority; see policyPrio.
	prioPolicyBase = 10000
)

// RuleCookie is the cookie (owner part) of the verdict flow of rule index
// (0-based position in the list) of direction dir (DirIngress or
// DirEgress) of the policy with that ID that judges packets of known
// connections (ct_state=-new): Owner(KindPolicyRule, id/dir/index) with
// CookieCounted set. It is the same on every host and across compiles.
// The rule's packets and bytes are the sum of the counters of RuleCookie
// and ConnCookie.
func RuleCookie(policyID, dir string, index int) uint64 {
	return Owner(KindPolicyRule, policyID+"/"+dir+"/"+strconv.Itoa(index)) | CookieCounted
}

// ConnCookie is the cookie of the rule's verdict flow for new connections
// (ct_state=+new): RuleCookie with CookieConn set. Its packet counter is the
// number of connections the rule decided (for a deny, attempts: a
// retransmitted SYN is new again).
func ConnCookie(policyID, dir string, index int) uint64 {
	return RuleCookie(policyID, dir, index) | CookieConn
}

// IsolationCookie is the cookie of the flow that drops what no rule allows
// for an isolated container in direction dir: its counters are the
// container's default-deny drops.
func IsolationCookie(containerID, dir string) uint64 {
	return Owner(KindIsolation, dir+"/"+containerID)
}

// Policy logging. A logged rule's +new verdict flow does, before its
// verdict, controller(userdata=U,meter_id=LogMeterID), where U is 10
// bytes: the rule's RuleCookie (8, big-endian), the verdict (LogAllow or
// LogDeny) and the direction (LogIngress or LogEgress). Meter LogMeterID
// on br-int is the agent's (it rate-limits the packet-ins); the agent
// decodes the packet and the userdata into a log record.
const (
	LogMeterID = 1
	LogAllow   = 1
	LogDeny    = 2
	LogIngress = 1
	LogEgress  = 2
)

// logAction is the controller action of a logged verdict flow of rule
// cookie (RuleCookie) in table t.
func logAction(b []byte, cookie uint64, pass bool, t Table) []byte {
	verdict, dir := byte(LogDeny), byte(LogEgress)
	if pass {
		verdict = LogAllow
	}
	if t == TableIngressPolicy {
		dir = LogIngress
	}
	b = append(b, "controller(userdata="...)
	for i, x := range append(binary.BigEndian.AppendUint64(nil, cookie&^CookieConn), verdict, dir) {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&15])
	}
	b = append(b, ",meter_id="...)
	b = strconv.AppendUint(b, LogMeterID, 10)
	return append(b, ')')
}

const hexDigits = "0123456789abcdef"

// clauseCookie is the cookie of conjunction clause flows: they are shared by
// rules and carry no verdict.
var clauseCookie = Owner(KindPolicyClause, "")

// policyPrio is the OpenFlow priority of the rules of a policy: a static
// band per policy priority (lower priority number, higher OpenFlow
// priority), deny one above allow so that deny wins ties. Out-of-range
// priorities are clamped; 0 is the default.
func policyPrio(prio int, deny bool) int {
	switch {
	case prio == 0:
		prio = DefaultPolicyPriority
	case prio < MinPolicyPriority:
		prio = MinPolicyPriority
	case prio > MaxPolicyPriority:
		prio = MaxPolicyPriority
	}
	p := prioPolicyBase + 2*(MaxPolicyPriority-prio)
	if deny {
		p++
	}
	return p
}

// conjID is the conjunction id of a rule: the low 32 bits of its cookie.
func conjID(cookie uint64) uint32 {
	if id := uint32(cookie); id != 0 {
		return id
	}
	return 1
}

// direction is what differs between the two policy tables.
type direction struct {
	name  string
	table Table
}

var directions = [2]direction{{DirIngress, TableIngressPolicy}, {DirEgress, TableEgressPolicy}}

// Per direction (index in directions): the match of a selected container's
// packets (to it for ingress, from its port for egress), and the field that
// holds the other end's address.
func selectedMatch(d int, port string) string {
	if d == 0 {
		return RegOutPort + "=" + portRef(port)
	}
	return "in_port=" + portRef(port)
}

var peerField = [2]string{"nw_src", "nw_dst"}

// polState is one policy, parsed, and the flow contributions it placed.
type polState struct {
	obj   openapi.Policy
	ok    bool // the selector parses: otherwise the policy compiles nothing
	sel   selector.Selector
	deny  bool
	prio  int                 // OpenFlow priority of its rules
	rules [2][]*ruleSpec      // per direction; nil = direction absent
	peers []selector.Selector // every peer selector, to filter container changes

	placed map[*hostState]*placement
	dirty  bool
}

// ruleSpec is one rule, parsed.
type ruleSpec struct {
	cookie uint64
	id     uint32 // conjunction id
	// peers: nil = any; else selector peers and address blocks (a rule
	// whose peers resolve to no address matches nothing).
	any   bool
	sels  []selector.Selector
	cidrs []netip.Prefix
	// ports: nil = any; else the port matches (empty: matches nothing).
	ports []string
}

func parsePolicy(p openapi.Policy) *polState {
	s := &polState{obj: p, deny: p.Action == openapi.ActionDeny}
	s.prio = policyPrio(p.Priority, s.deny)
	sel, err := selector.Parse(p.Selector)
	if err != nil {
		return s
	}
	s.ok, s.sel = true, sel
	for d, rules := range [2][]openapi.PolicyRule{p.Ingress, p.Egress} {
		if rules == nil {
			continue
		}
		s.rules[d] = make([]*ruleSpec, len(rules))
		for i, r := range rules {
			s.rules[d][i] = s.parseRule(directions[d].name, i, r)
		}
	}
	return s
}

func (s *polState) parseRule(dir string, i int, r openapi.PolicyRule) *ruleSpec {
	rs := &ruleSpec{cookie: RuleCookie(s.obj.ID, dir, i), any: len(r.Peers) == 0}
	rs.id = conjID(rs.cookie)
	for _, peer := range r.Peers {
		switch {
		case peer.Selector != nil && peer.CIDR == "":
			if sel, err := selector.Parse(*peer.Selector); err == nil {
				rs.sels = append(rs.sels, sel)
				s.peers = append(s.peers, sel)
			}
		case peer.Selector == nil && peer.CIDR != "":
			for _, b := range cidrBlocks(peer.CIDR, peer.Except) {
				rs.cidrs = append(rs.cidrs, b)
			}
		}
	}
	if len(r.Ports) > 0 {
		rs.ports = []string{}
		for _, pp := range r.Ports {
			rs.ports = append(rs.ports, portMatches(pp)...)
		}
	}
	return rs
}

// concerns tells whether a container with these labels in the policy's
// network is selected by it or by one of its peer selectors.
func (s *polState) concerns(labels map[string]string) bool {
	if !s.ok {
		return false
	}
	if s.sel.Matches(labels) {
		return true
	}
	for _, p := range s.peers {
		if p.Matches(labels) {
			return true
		}
	}
	return false
}

// placement is what one policy contributes on one host: its own
// contributions (selected containers) and rule clauses shared by every host
// the rule applies on.
type placement struct {
	own    []contrib
	shared [][]contrib
}

// contribs computes the policy's flow contributions on every host where it
// selects a container, from the current containers of its network.
func (c *Compiler) contribs(s *polState) map[*hostState]*placement {
	if !s.ok {
		return nil
	}
	n := c.nets[s.obj.Network]
	if n == nil || n.p == nil {
		return nil
	}
	var sel []*ctrState
	for _, ct := range n.active {
		if s.sel.Matches(ct.obj.Labels) {
			sel = append(sel, ct)
		}
	}
	if len(sel) == 0 {
		return nil
	}
	out := map[*hostState]*placement{}
	at := func(h *hostState) *placement {
		p := out[h]
		if p == nil {
			p = &placement{}
			out[h] = p
		}
		return p
	}
	for d := range directions {
		dir := &directions[d]
		if s.rules[d] == nil {
			continue
		}
		if !s.deny {
			for _, ct := range sel {
				p := at(ct.host)
				p.own = append(p.own, contrib{
					key: c.intern(polKey{dir.table, prioIsolate, ct.f.polSel[d]}),
					val: contribVal{cookie: IsolationCookie(ct.obj.ID, dir.name)},
				})
			}
		}
		for _, r := range s.rules[d] {
			shared, dims := c.ruleClauses(s, d, r, n)
			if shared == nil {
				continue
			}
			for _, ct := range sel {
				p := at(ct.host)
				if len(p.shared) == 0 || &p.shared[len(p.shared)-1][0] != &shared[0] {
					p.shared = append(p.shared, shared)
				}
				p.own = append(p.own, contrib{
					key: c.intern(polKey{dir.table, s.prio, ct.f.polSel[d]}),
					val: contribVal{conj: conjVal(r.id, 1, dims)},
				})
			}
		}
	}
	return out
}

// ruleClauses are the contributions of rule r that every host where it
// applies gets: its verdict flow and its peer and port clauses (dimension
// 1, the selected containers, is per host). dims is the number of
// dimensions; shared is nil when the rule matches nothing.
func (c *Compiler) ruleClauses(s *polState, d int, r *ruleSpec, net *netState) (shared []contrib, dims int) {
	dir := &directions[d]
	var peers []string
	if !r.any {
		for _, sel := range r.sels {
			for _, ct := range net.active {
				if sel.Matches(ct.obj.Labels) {
					peers = append(peers, ct.f.polPeer[d])
				}
			}
		}
		for _, b := range r.cidrs {
			peers = append(peers, prefixMatch(peerField[d], b))
		}
		if len(peers) == 0 {
			return nil, 0
		}
	}
	if r.ports != nil && len(r.ports) == 0 {
		return nil, 0
	}
	var groups [][]string
	if peers != nil {
		groups = append(groups, peers)
	}
	if r.ports != nil {
		groups = append(groups, r.ports)
	}
	if len(groups) == 0 {
		groups = append(groups, []string{"ip"}) // conjunctions need 2 dimensions
	}
	dims = 1 + len(groups)
	// The verdict, split by ct_state so that the +new flow's packets count
	// the rule's connections (ConnCookie); the -new one has RuleCookie. A
	// logged policy's +new flow also sends the packet to the agent.
	id := "conj_id=" + strconv.FormatUint(uint64(r.id), 10)
	shared = append(shared,
		contrib{
			key: c.intern(polKey{dir.table, s.prio, id + ",ct_state=+new+trk,ip"}),
			val: contribVal{cookie: r.cookie | CookieConn, pass: !s.deny, log: s.obj.Log},
		},
		contrib{
			key: c.intern(polKey{dir.table, s.prio, id + ",ct_state=-new+trk,ip"}),
			val: contribVal{cookie: r.cookie, pass: !s.deny},
		})
	for k, ms := range groups {
		v := contribVal{conj: conjVal(r.id, k+2, dims)}
		for _, m := range ms {
			shared = append(shared, contrib{key: c.intern(polKey{dir.table, s.prio, m}), val: v})
		}
	}
	return shared, dims
}
