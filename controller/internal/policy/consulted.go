package policy

// Consulted is one policy judging a direction at a container, as Consulted
// lists them.
type Consulted struct {
	Policy, PolicyID string
	Priority         int
	Action           string
	// Rule is the index of the policy's first rule (of that direction)
	// matching the other end, or -1.
	Rule int
}

// Consulted lists the policies that judge direction dir (Ingress or Egress)
// at c, the other end being other, on protocol and port: those selecting c
// with the direction present, in evaluation order (the order decide walks
// them), each with its first matching rule. Used to explain a verdict
// (traces); the verdict itself is Verdict's.
func (e *Evaluator) Consulted(dir string, c, other Endpoint, protocol string, port int) []Consulted {
	if c.Name == "" {
		return nil
	}
	oi := e.known(other)
	var out []Consulted
	for _, i := range e.candidates(c) {
		p := &e.policies[i]
		rules := p.rules(dir)
		if rules == nil {
			continue
		}
		k := Consulted{Policy: p.name, PolicyID: p.id, Priority: p.priority, Action: p.action(), Rule: -1}
		for j, r := range rules {
			if r.matches(other, oi, protocol, port) {
				k.Rule = j
				break
			}
		}
		out = append(out, k)
	}
	return out
}
