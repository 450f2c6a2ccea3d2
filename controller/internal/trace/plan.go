package trace

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/openapi"
)

// Plan is one trace: Compute fills the intent and compiled layers and says
// what to ask the agents (Hops' jobs, ProbeJob); the caller adds what they
// answer (SetSwitch, SetApplied, SetLive) and Finish concludes.
type Plan struct {
	Trace  openapi.Trace
	Hops   []Hop
	owners Owners
	in     *intent
}

// Compute resolves req against env and computes the intent and compiled
// layers. Bad requests are *problem.Error naming the field.
func Compute(env Env, req openapi.TraceRequest) (*Plan, error) {
	in, err := buildIntent(env, req)
	if err != nil {
		return nil, err
	}
	owners := NewOwners(env.Snap)
	hops, err := in.simulate()
	if err != nil {
		return nil, err
	}
	p := &Plan{Hops: hops, owners: owners, in: in}
	p.Trace = openapi.Trace{Revision: env.Snap.Revision, Intent: in.out, Compiled: compiledLayer(hops, owners),
		Realized: make([]openapi.TraceRealizedHost, len(hops)), Disagreements: []openapi.TraceDisagreement{},
		Assumptions: []string{"the first packet of a new connection: every ct action finds ct_state=+trk+new (plus +dnat/+snat where it translates)"}}
	if len(hops) > 0 {
		pk := hops[0].Packet
		p.Trace.Packet = openapi.TracePacket{Protocol: in.req.Protocol, SrcIP: pk.Src.String(), DstIP: pk.Dst.String(),
			SrcPort: pk.SrcPort, DstPort: pk.DstPort, SrcMAC: pk.EthSrc, DstMAC: pk.EthDst}
	} else {
		p.Trace.Packet = openapi.TracePacket{Protocol: in.req.Protocol, SrcIP: in.src.ip.String(), DstIP: in.dst.ip.String(), DstPort: in.req.Port}
	}
	for i, h := range hops {
		p.Trace.Realized[i] = openapi.TraceRealizedHost{Host: h.Host}
	}
	if s := in.out.Service; s != nil && s.Chosen != "" {
		p.Trace.Assumptions = append(p.Trace.Assumptions, fmt.Sprintf(
			"service %s: the compiled layer follows backend %s (%s), the first usable in bucket order; a switch's trace hashes to a bucket of its own",
			s.Name, s.Chosen, in.prefer))
	}
	if in.via != nil {
		p.Trace.Assumptions = append(p.Trace.Assumptions,
			"the host kernels' NAT (published and node ports, egress masquerade) is taken from the hosts' programs, not traced")
	}
	return p, nil
}

// ProbeJob is the live probe the source host's agent runs, or "" and nil
// when the source is no container or the protocol cannot be probed.
func (p *Plan) ProbeJob() (string, *openapi.NodeProbeJob) {
	s := p.in.src.ctr
	if s == nil || p.in.req.Protocol == "SCTP" {
		return "", nil
	}
	return s.Host, &openapi.NodeProbeJob{Container: s.ID, Protocol: p.in.req.Protocol, Address: p.in.dst.ip.String(), Port: p.in.req.Port}
}

// SetApplied records hop i's host's program revision and what its agent
// applied (known false: nothing heard from it).
func (p *Plan) SetApplied(i int, programRev, applied int64, known bool) {
	r := &p.Trace.Realized[i]
	r.ProgramRevision, r.AppliedRevision = programRev, applied
	r.Current = known && applied >= programRev
}

// SetSwitch records hop i's switch trace: the ofproto/trace text, or a
// status (unavailable, timeout, error) with why.
func (p *Plan) SetSwitch(i int, status, output, why string) {
	sw := &openapi.TraceSwitch{Status: status, Error: why, Flows: []openapi.TraceSwitchFlow{}}
	if status == "ok" {
		st := ParseOfprotoTrace(output, p.owners)
		sw.Flows, sw.DatapathActions, sw.Verdict = st.Flows, st.DatapathActions, st.Verdict
		if len(output) > openapi.MaxTraceOutput {
			output = output[:openapi.MaxTraceOutput]
		}
		sw.Output = output
	}
	p.Trace.Realized[i].Switch = sw
}

// SetLive records the live probe.
func (p *Plan) SetLive(l *openapi.TraceLive) { p.Trace.Live = l }

// delivered says whether the compiled layer delivers the packet where
// intent wants it: the target container's port, or the gateway port for
// an outside destination.
func (p *Plan) delivered() bool {
	if len(p.Hops) == 0 {
		return false
	}
	last := p.Hops[len(p.Hops)-1].Result
	if last.Verdict != VerdictOutput {
		return false
	}
	if t := p.in.target; t != nil {
		return last.Output == compile.ContainerPortName(t.ID)
	}
	return p.in.dst.kind == openapi.TraceEndOutside && last.Output == openapi.GatewayPortName
}

// Finish compares the layers and writes the conclusion.
func (p *Plan) Finish() *openapi.Trace {
	t := &p.Trace
	in := &t.Intent
	delivered := p.delivered()
	if in.Allowed != delivered && len(p.Hops) > 0 {
		h := p.Hops[len(p.Hops)-1]
		d := openapi.TraceDisagreement{Layers: []string{"intent", "compiled"}, Host: h.Host}
		if n := len(h.Result.Flows); n > 0 {
			d.Flow = p.describe(h.Result.Flows[n-1])
		}
		if in.Allowed {
			d.Detail = fmt.Sprintf("intent allows it but host %s's compiled flows end in %s", h.Host, verdictWords(h.Result))
		} else {
			d.Detail = fmt.Sprintf("intent denies it (%s) but the compiled flows deliver it", in.Verdict)
		}
		t.Disagreements = append(t.Disagreements, d)
	}
	if in.Allowed && delivered {
		var hosts []string
		for _, h := range p.Hops {
			if len(hosts) == 0 || hosts[len(hosts)-1] != h.Host {
				hosts = append(hosts, h.Host)
			}
		}
		if !slices.Equal(hosts, in.Hosts) {
			t.Disagreements = append(t.Disagreements, openapi.TraceDisagreement{Layers: []string{"intent", "compiled"},
				Detail: fmt.Sprintf("intent expects the hosts %v, the compiled flows cross %v", in.Hosts, hosts)})
		}
	}
	for i, h := range p.Hops {
		r := t.Realized[i]
		if r.ProgramRevision > 0 && !r.Current {
			t.Disagreements = append(t.Disagreements, openapi.TraceDisagreement{Layers: []string{"compiled", "realized"}, Host: h.Host,
				Detail: fmt.Sprintf("host %s's agent applied revision %d, older than its program's %d: its switch may still run older flows",
					h.Host, r.AppliedRevision, r.ProgramRevision)})
		}
		if r.Switch == nil || r.Switch.Status != "ok" {
			continue
		}
		if d, ok := p.compareSwitch(h, r.Switch); !ok {
			t.Disagreements = append(t.Disagreements, d)
		}
	}
	if l := t.Live; l != nil {
		switch {
		case l.Status == "answered" && !in.Allowed:
			t.Disagreements = append(t.Disagreements, openapi.TraceDisagreement{Layers: []string{"intent", "live"}, Host: l.Host,
				Detail: "intent denies it but the live probe was answered"})
		case l.Status == "timeout" && in.Allowed && delivered:
			t.Disagreements = append(t.Disagreements, openapi.TraceDisagreement{Layers: []string{"intent", "live"}, Host: l.Host,
				Detail: "intent and the compiled flows allow it but the live probe got no answer (" + l.Detail + ")"})
		}
	}
	t.Disagreement = len(t.Disagreements) > 0
	t.Conclusion = p.conclusion(delivered)
	return t
}

// compareSwitch compares a hop's simulation with its switch's trace: the
// flows one by one (up to a service's bucket choice), then the verdict.
func (p *Plan) compareSwitch(h Hop, sw *openapi.TraceSwitch) (openapi.TraceDisagreement, bool) {
	d := openapi.TraceDisagreement{Layers: []string{"compiled", "realized"}, Host: h.Host}
	for i := 0; i < h.compare; i++ {
		want := h.Result.Flows[i]
		if i >= len(sw.Flows) {
			d.Flow = p.describe(want)
			d.Detail = fmt.Sprintf("host %s's switch stops before the compiled flow %s (switch: %s)", h.Host, d.Flow, sw.DatapathActions)
			return d, false
		}
		got := sw.Flows[i]
		if !sameFlow(got, want) && !slices.ContainsFunc(h.Result.Alternatives[i], func(alt openapi.Flow) bool { return sameFlow(got, alt) }) {
			d.Flow = p.describe(want)
			d.Detail = fmt.Sprintf("in table %d (%s) host %s's switch matched priority %d cookie %s (%s) where the compiled program matches %s: the flow is missing or changed on the switch",
				want.Table, compile.Table(want.Table), h.Host, got.Priority, got.Cookie, got.Owner, d.Flow)
			return d, false
		}
	}
	if sw.Verdict != h.Result.Verdict {
		if n := len(h.Result.Flows); n > 0 {
			d.Flow = p.describe(h.Result.Flows[n-1])
		}
		d.Detail = fmt.Sprintf("host %s's compiled flows end in %s but its switch's in %s (datapath actions: %s)",
			h.Host, verdictWords(h.Result), sw.Verdict, sw.DatapathActions)
		return d, false
	}
	return d, true
}

// sameFlow reports whether the switch's trace step is the compiled flow f.
func sameFlow(got openapi.TraceSwitchFlow, f openapi.Flow) bool {
	return got.Table == f.Table && got.Priority == f.Priority && got.Cookie == CookieString(f.Cookie&compile.CookieMask)
}

// describe names a compiled flow: table, priority, cookie and owner.
func (p *Plan) describe(f openapi.Flow) string {
	return fmt.Sprintf("table %d (%s) priority %d cookie %s [%s] %s", f.Table, compile.Table(f.Table), f.Priority,
		CookieString(f.Cookie&compile.CookieMask), p.owners.Name(f.Cookie), f.Match)
}

func verdictWords(r Result) string {
	if r.Verdict == VerdictOutput {
		return "output to " + r.Output
	}
	return r.Verdict
}

// conclusion is the one line.
func (p *Plan) conclusion(delivered bool) string {
	t := &p.Trace
	in := &t.Intent
	what := fmt.Sprintf("%s -> %s %s", endName(in.Source), endName(in.Destination), protoPort(p.in.req))
	if t.Disagreement {
		d := t.Disagreements[0]
		where := ""
		if d.Host != "" {
			where = " on host " + d.Host
		}
		return fmt.Sprintf("DISAGREEMENT (%s)%s for %s: %s", strings.Join(d.Layers, " vs "), where, what, d.Detail)
	}
	var b strings.Builder
	if in.Allowed {
		fmt.Fprintf(&b, "%s is allowed (%s path", what, in.Path)
		if len(in.Hosts) > 0 {
			b.WriteString(" " + strings.Join(in.Hosts, " -> "))
		}
		b.WriteString(")")
	} else {
		fmt.Fprintf(&b, "%s is not possible: %s", what, in.Verdict)
	}
	checked := 0
	for _, r := range t.Realized {
		if r.Switch != nil && r.Switch.Status == "ok" {
			checked++
		}
	}
	b.WriteString("; the compiled flows agree")
	if checked > 0 {
		fmt.Fprintf(&b, ", and so do the switches (%d of the path's %d traced)", checked, len(t.Realized))
	}
	if l := t.Live; l != nil {
		fmt.Fprintf(&b, "; live probe %s in %.1f ms", l.Status, float64(l.Micros)/1000)
	}
	return b.String()
}

func endName(e openapi.TraceEnd) string {
	switch {
	case e.Kind == openapi.TraceEndPublished:
		return fmt.Sprintf("%s (%s)", e.Name, e.IP)
	case e.Name != "":
		return e.Name
	}
	return e.IP
}

func protoPort(r openapi.TraceRequest) string {
	if r.Protocol == "ICMP" {
		return "ICMP"
	}
	return fmt.Sprintf("%s/%d", r.Protocol, r.Port)
}
