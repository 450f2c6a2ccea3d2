// Package policy evaluates network policy on intent: given the containers of
// one network (name, IP, labels) and its policies, it says whether a
// connection from one end to the other may open on a protocol and port, and
// which policy rule (or the baseline, or isolation) decided, in each
// direction. It is the executable form of the semantics in docs/policy.md
// and openapi.yaml (Policy): the reachability endpoint answers with it, and
// tests of the datapath compare what they observe with it.
//
// The semantics, for a connection from S to D on (protocol, port):
//   - Egress is judged at S when S is a container of the network, ingress
//     at D when D is one; the connection opens only if both pass.
//   - At container C, the candidate rules of a direction are that
//     direction's rules of every policy whose selector selects C. A rule
//     matches if one of its peers matches the other end (no peers: any) and
//     one of its ports matches (no ports: any protocol and port).
//   - The matching rule of the lowest priority number decides; at equal
//     priority a deny beats an allow.
//   - No rule matches: C is isolated in that direction, and the connection
//     dropped, if an allow policy selecting C has the direction present
//     (non-nil, even empty); else it passes (the Kubernetes baseline). Deny
//     policies never isolate.
//
// It is pure: no I/O, no clock, no globals; the same input gives the same
// answer. It must not know about the database, HTTP or the datapath.
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/openapi"
)

// Container is one container of the network, as policy sees it.
type Container struct {
	Name   string
	IP     netip.Addr
	Labels map[string]string
}

// Directions of a rule.
const (
	Ingress = "ingress"
	Egress  = "egress"
)

// Reasons for a Decision.
const (
	// ReasonRule: a rule matched; Policy and Rule name it, Action is its
	// policy's action.
	ReasonRule = "rule"
	// ReasonIsolated: no rule matched and an allow policy (Policy, the
	// first by name) isolates the container in this direction.
	ReasonIsolated = "isolated"
	// ReasonBaseline: no rule matched and no allow policy isolates the
	// container in this direction: it passes.
	ReasonBaseline = "baseline"
	// ReasonExternal: this end is not a container of the network, so no
	// policy is judged here: it passes.
	ReasonExternal = "external"
	// ReasonSelf: a container connecting to its own address; the traffic
	// never leaves it (the kernel loops it back), so no policy applies.
	ReasonSelf = "self"
)

// Decision is the verdict of one direction at one end.
type Decision struct {
	Allowed bool
	Reason  string
	// Policy is the name of the deciding (ReasonRule) or isolating
	// (ReasonIsolated) policy, PolicyID its id.
	Policy, PolicyID string
	// Direction and Rule (the rule's index in that direction of the
	// policy) identify the matching rule; Rule is -1 without one.
	Direction string
	Rule      int
	// Action is the deciding policy's action (ReasonRule only).
	Action string
}

// RuleField names the deciding rule as the API names fields: "egress[2]";
// "" when no rule decided.
func (d Decision) RuleField() string {
	if d.Rule < 0 {
		return ""
	}
	return fmt.Sprintf("%s[%d]", d.Direction, d.Rule)
}

// Verdict is the answer for one connection: it opens only if the egress
// decision at its source and the ingress decision at its destination both
// allow it.
type Verdict struct {
	Allowed bool
	Egress  Decision
	Ingress Decision
}

// Endpoint is one end of a connection: a container of the network (Name
// set) or an address outside it.
type Endpoint struct {
	Name   string
	IP     netip.Addr
	Labels map[string]string
}

// Evaluator answers verdicts for one network. Build it with New; it is not
// changed afterwards, so it may be shared between goroutines.
type Evaluator struct {
	containers []Container // sorted by name
	byName     map[string]int
	byIP       map[netip.Addr]int
	policies   []compiled // sorted by (priority, deny first, name)
	// selecting[i] lists the indexes into policies of those whose
	// selector selects containers[i], in evaluation order.
	selecting [][]int
}

type compiled struct {
	id, name string
	priority int
	deny     bool
	selector selector.Selector
	// rules are nil when the direction is absent.
	ingress, egress []rule
}

type rule struct {
	peers []peer // empty: any
	ports []openapi.PolicyPort
}

type peer struct {
	selector *selector.Selector // a selector peer, else a cidr peer
	// members[i] says whether the selector selects containers[i].
	members []bool
	cidr    netip.Prefix
	except  []netip.Prefix
}

// New builds an evaluator for the containers and policies of one network.
// Policies are expected valid (as the store keeps them); a selector or
// cidr that does not parse is an error naming the policy and field.
func New(containers []Container, policies []openapi.Policy) (*Evaluator, error) {
	e := &Evaluator{
		containers: slices.Clone(containers),
		byName:     map[string]int{},
		byIP:       map[netip.Addr]int{},
	}
	slices.SortFunc(e.containers, func(a, b Container) int { return strings.Compare(a.Name, b.Name) })
	for i, c := range e.containers {
		e.byName[c.Name] = i
		if c.IP.IsValid() {
			e.byIP[c.IP] = i
		}
	}
	for _, p := range policies {
		cp, err := compile(p)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
		e.policies = append(e.policies, cp)
	}
	slices.SortStableFunc(e.policies, func(a, b compiled) int {
		if a.priority != b.priority {
			return a.priority - b.priority
		}
		if a.deny != b.deny {
			if a.deny {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	e.index()
	return e, nil
}

// index evaluates every selector once per container, so a verdict looks
// selections up instead of matching labels.
func (e *Evaluator) index() {
	e.selecting = make([][]int, len(e.containers))
	for pi := range e.policies {
		p := &e.policies[pi]
		for ci, c := range e.containers {
			if p.selector.Matches(c.Labels) {
				e.selecting[ci] = append(e.selecting[ci], pi)
			}
		}
		for _, rules := range [][]rule{p.ingress, p.egress} {
			for _, r := range rules {
				for k := range r.peers {
					pr := &r.peers[k]
					if pr.selector == nil {
						continue
					}
					pr.members = make([]bool, len(e.containers))
					for ci, c := range e.containers {
						pr.members[ci] = pr.selector.Matches(c.Labels)
					}
				}
			}
		}
	}
}

// known returns the index of ep's container when ep is one of the
// evaluator's own (as Container and Address return them), else -1.
func (e *Evaluator) known(ep Endpoint) int {
	if i, ok := e.byName[ep.Name]; ok && ep.Name != "" && e.containers[i].IP == ep.IP {
		return i
	}
	return -1
}

func compile(p openapi.Policy) (compiled, error) {
	sel, err := selector.Parse(p.Selector)
	if err != nil {
		return compiled{}, fmt.Errorf("selector: %w", err)
	}
	cp := compiled{id: p.ID, name: p.Name, priority: p.Priority, deny: p.Action == openapi.ActionDeny, selector: sel}
	if cp.ingress, err = compileRules(Ingress, p.Ingress); err != nil {
		return cp, err
	}
	cp.egress, err = compileRules(Egress, p.Egress)
	return cp, err
}

// compileRules keeps nil (absent) apart from empty (present).
func compileRules(dir string, rules []openapi.PolicyRule) ([]rule, error) {
	if rules == nil {
		return nil, nil
	}
	out := make([]rule, 0, len(rules))
	for i, r := range rules {
		cr := rule{ports: r.Ports}
		for j, pr := range r.Peers {
			f := fmt.Sprintf("%s[%d].peers[%d]", dir, i, j)
			var p peer
			switch {
			case pr.Selector != nil:
				s, err := selector.Parse(*pr.Selector)
				if err != nil {
					return nil, fmt.Errorf("%s.selector: %w", f, err)
				}
				p.selector = &s
			default:
				pf, err := netip.ParsePrefix(pr.CIDR)
				if err != nil {
					return nil, fmt.Errorf("%s.cidr: %w", f, err)
				}
				p.cidr = pf.Masked()
				for k, ex := range pr.Except {
					xf, err := netip.ParsePrefix(ex)
					if err != nil {
						return nil, fmt.Errorf("%s.except[%d]: %w", f, k, err)
					}
					p.except = append(p.except, xf.Masked())
				}
			}
			cr.peers = append(cr.peers, p)
		}
		out = append(out, cr)
	}
	return out, nil
}

// Containers returns the network's containers, sorted by name.
func (e *Evaluator) Containers() []Container { return slices.Clone(e.containers) }

// Container returns the endpoint of the container named name.
func (e *Evaluator) Container(name string) (Endpoint, bool) {
	i, ok := e.byName[name]
	if !ok {
		return Endpoint{}, false
	}
	c := e.containers[i]
	return Endpoint{Name: c.Name, IP: c.IP, Labels: c.Labels}, true
}

// Address returns the endpoint of an address: the container that has it,
// or an external endpoint.
func (e *Evaluator) Address(ip netip.Addr) Endpoint {
	if i, ok := e.byIP[ip]; ok {
		c := e.containers[i]
		return Endpoint{Name: c.Name, IP: c.IP, Labels: c.Labels}
	}
	return Endpoint{IP: ip}
}

// Verdict says whether src may open a connection to dst on protocol (TCP,
// UDP, SCTP or ICMP; upper case) and port (0 for ICMP), and why.
func (e *Evaluator) Verdict(src, dst Endpoint, protocol string, port int) Verdict {
	if src.Name != "" && src.Name == dst.Name {
		self := Decision{Allowed: true, Reason: ReasonSelf, Rule: -1}
		return Verdict{Allowed: true, Egress: self, Ingress: self}
	}
	v := Verdict{
		Egress:  e.decide(Egress, src, dst, protocol, port),
		Ingress: e.decide(Ingress, dst, src, protocol, port),
	}
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	return v
}

// decide judges direction dir at end c, the other end being other.
func (e *Evaluator) decide(dir string, c, other Endpoint, protocol string, port int) Decision {
	if c.Name == "" {
		return Decision{Allowed: true, Reason: ReasonExternal, Rule: -1}
	}
	var isolator *compiled
	oi := e.known(other)
	// e.policies is in evaluation order (priority, deny first), so the
	// first matching rule decides.
	for _, i := range e.candidates(c) {
		p := &e.policies[i]
		rules := p.rules(dir)
		if rules == nil {
			continue
		}
		for j, r := range rules {
			if r.matches(other, oi, protocol, port) {
				return Decision{Allowed: !p.deny, Reason: ReasonRule, Policy: p.name, PolicyID: p.id,
					Direction: dir, Rule: j, Action: p.action()}
			}
		}
		if !p.deny && (isolator == nil || p.name < isolator.name) {
			isolator = p
		}
	}
	if isolator != nil {
		return Decision{Allowed: false, Reason: ReasonIsolated, Policy: isolator.name, PolicyID: isolator.id,
			Direction: dir, Rule: -1}
	}
	return Decision{Allowed: true, Reason: ReasonBaseline, Rule: -1}
}

// action is p's action (openapi.ActionAllow or ActionDeny).
func (p *compiled) action() string {
	if p.deny {
		return openapi.ActionDeny
	}
	return openapi.ActionAllow
}

// rules are p's rules of direction dir (nil: the direction is absent).
func (p *compiled) rules(dir string) []rule {
	if dir == Egress {
		return p.egress
	}
	return p.ingress
}

// candidates are the indexes into e.policies of the policies selecting c,
// in evaluation order.
func (e *Evaluator) candidates(c Endpoint) []int {
	if ci := e.known(c); ci >= 0 {
		return e.selecting[ci]
	}
	var out []int // an endpoint built by hand: match its labels
	for i := range e.policies {
		if e.policies[i].selector.Matches(c.Labels) {
			out = append(out, i)
		}
	}
	return out
}

// matches says whether the rule matches the other end (oi: its container
// index, or -1) on protocol and port.
func (r rule) matches(other Endpoint, oi int, protocol string, port int) bool {
	peerOK := len(r.peers) == 0
	for _, p := range r.peers {
		if p.matches(other, oi) {
			peerOK = true
			break
		}
	}
	if !peerOK {
		return false
	}
	if len(r.ports) == 0 {
		return true
	}
	for _, pp := range r.ports {
		if portMatches(pp, protocol, port) {
			return true
		}
	}
	return false
}

func (p peer) matches(other Endpoint, oi int) bool {
	switch {
	case p.selector != nil && oi >= 0:
		return p.members[oi]
	case p.selector != nil:
		return other.Name != "" && p.selector.Matches(other.Labels)
	}
	if !other.IP.IsValid() || !p.cidr.Contains(other.IP) {
		return false
	}
	for _, ex := range p.except {
		if ex.Contains(other.IP) {
			return false
		}
	}
	return true
}

func portMatches(pp openapi.PolicyPort, protocol string, port int) bool {
	proto := pp.Protocol
	if proto == "" {
		proto = "TCP"
	}
	if !strings.EqualFold(proto, protocol) {
		return false
	}
	if pp.Port == 0 || strings.EqualFold(protocol, "ICMP") {
		return true
	}
	end := pp.EndPort
	if end == 0 {
		end = pp.Port
	}
	return port >= pp.Port && port <= end
}

// Matrix is the verdict for every ordered pair of the network's containers
// on one protocol and port: Cells[i][j] is from Names[i] to Names[j].
type Matrix struct {
	Names []string
	Cells [][]Verdict
}

// Matrix computes the verdict between every ordered pair of containers, in
// name order.
func (e *Evaluator) Matrix(protocol string, port int) Matrix {
	return e.MatrixOf(nil, protocol, port)
}

// MatrixOf is Matrix restricted to the containers keep accepts (nil: all);
// policies still see every container of the network.
func (e *Evaluator) MatrixOf(keep func(Container) bool, protocol string, port int) Matrix {
	var ends []Endpoint
	var m Matrix
	for _, c := range e.containers {
		if keep == nil || keep(c) {
			ends = append(ends, Endpoint{Name: c.Name, IP: c.IP, Labels: c.Labels})
			m.Names = append(m.Names, c.Name)
		}
	}
	m.Cells = make([][]Verdict, len(ends))
	for i, src := range ends {
		m.Cells[i] = make([]Verdict, len(ends))
		for j, dst := range ends {
			m.Cells[i][j] = e.Verdict(src, dst, protocol, port)
		}
	}
	return m
}

// String renders the matrix as a truth table (X allowed, . denied), rows
// are sources, columns destinations, as the Kubernetes network policy e2e
// tests print theirs.
func (m Matrix) String() string {
	var b strings.Builder
	b.WriteString("-")
	for _, n := range m.Names {
		b.WriteString("\t" + n)
	}
	b.WriteString("\n")
	for i, row := range m.Cells {
		b.WriteString(m.Names[i])
		for _, v := range row {
			if v.Allowed {
				b.WriteString("\tX")
			} else {
				b.WriteString("\t.")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
