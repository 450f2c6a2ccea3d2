package trace

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// lab is a small intent: two hosts, networks blue and green, a service with
// a node port, a published port and one policy isolating db.
func lab() *compile.Snapshot {
	ctr := func(id, name, network, host, ip, mac string, labels map[string]string) openapi.Container {
		return openapi.Container{Meta: openapi.Meta{ID: id}, Name: name, Network: network, Host: host, IP: ip, MAC: mac, Labels: labels}
	}
	sel := func(s string) *string { return &s }
	db := ctr("22222222-0000-4000-8000-000000000002", "db", "blue", "h2", "10.1.0.3", "0a:58:0a:01:00:03", map[string]string{"app": "db"})
	db.Publish = []openapi.PublishedPort{{HostPort: 15432, Port: 5432}}
	return &compile.Snapshot{
		Revision: 42,
		Hosts: []openapi.Host{
			{Name: "h1", Address: "192.168.1.1", TunnelType: openapi.TunnelGeneve, Status: "Ready"},
			{Name: "h2", Address: "192.168.1.2", TunnelType: openapi.TunnelGeneve, Status: "Ready"},
		},
		Networks: []openapi.Network{
			{Name: "blue", CIDR: "10.1.0.0/16", Gateway: "10.1.0.1", VNI: 101, MTU: 1400},
			{Name: "green", CIDR: "10.2.0.0/16", Gateway: "10.2.0.1", VNI: 102, MTU: 1400},
		},
		Containers: []openapi.Container{
			ctr("11111111-0000-4000-8000-000000000001", "web", "blue", "h1", "10.1.0.2", "0a:58:0a:01:00:02", map[string]string{"app": "web"}),
			db,
			ctr("33333333-0000-4000-8000-000000000003", "client", "blue", "h1", "10.1.0.4", "0a:58:0a:01:00:04", map[string]string{"app": "client"}),
			ctr("44444444-0000-4000-8000-000000000004", "g", "green", "h2", "10.2.0.2", "0a:58:0a:02:00:02", map[string]string{"app": "g"}),
		},
		Services: []openapi.Service{{Meta: openapi.Meta{ID: "55555555-0000-4000-8000-000000000005"}, Name: "websvc", Network: "blue",
			VIP: "10.96.0.10", Selector: "app=web", GroupID: 5, Ports: []openapi.ServicePort{{Port: 80, TargetPort: 8080, Protocol: "TCP", NodePort: 30080}}}},
		Policies: []openapi.Policy{{Meta: openapi.Meta{ID: "66666666-0000-4000-8000-000000000006"}, Name: "db-ingress", Network: "blue",
			Selector: "app=db", Priority: 100, Action: openapi.ActionAllow, Ingress: []openapi.PolicyRule{
				{Peers: []openapi.PolicyPeer{{Selector: sel("app=web")}}, Ports: []openapi.PolicyPort{{Protocol: "TCP", Port: 5432}}},
				{Peers: []openapi.PolicyPeer{{CIDR: "192.168.100.0/24"}}, Ports: []openapi.PolicyPort{{Protocol: "TCP", Port: 5432}}},
			}}},
	}
}

func envOf(s *compile.Snapshot) Env {
	progs := compile.Compile(s)
	return Env{Snap: s, Program: func(h string) (*openapi.Program, error) {
		if p := progs[h]; p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("no program for %s", h)
	}}
}

func ctrEnd(n string) openapi.TraceRequestEnd  { return openapi.TraceRequestEnd{Container: n} }
func addrEnd(a string) openapi.TraceRequestEnd { return openapi.TraceRequestEnd{Address: a} }

func TestPlanScenarios(t *testing.T) {
	env := envOf(lab())
	cases := []struct {
		name     string
		req      openapi.TraceRequest
		allowed  bool
		path     string
		hosts    string
		deciding string // the ingress decision's policy rule, if a rule decided
		chosen   string
		output   string // the last hop's output port owner
	}{
		{name: "allowed over a tunnel", req: openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db"), Port: 5432},
			allowed: true, path: "tunnel", hosts: "h1 h2", deciding: "db-ingress ingress[0]", output: "container db"},
		{name: "isolated", req: openapi.TraceRequest{Source: ctrEnd("client"), Destination: ctrEnd("db"), Port: 5432},
			allowed: false, path: "tunnel", hosts: "h1 h2"},
		{name: "wrong port", req: openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db"), Port: 80},
			allowed: false, path: "tunnel", hosts: "h1 h2"},
		{name: "same host", req: openapi.TraceRequest{Source: ctrEnd("client"), Destination: ctrEnd("web"), Protocol: "ICMP"},
			allowed: true, path: "same-host", hosts: "h1", output: "container web"},
		{name: "service", req: openapi.TraceRequest{Source: ctrEnd("client"), Destination: openapi.TraceRequestEnd{Service: "websvc"}, Port: 80},
			allowed: true, path: "same-host", hosts: "h1", chosen: "web", output: "container web"},
		{name: "service by VIP from another host", req: openapi.TraceRequest{Source: ctrEnd("db"), Destination: addrEnd("10.96.0.10"), Port: 80},
			allowed: true, path: "tunnel", hosts: "h2 h1", chosen: "web", output: "container web"},
		{name: "published from outside", req: openapi.TraceRequest{Source: addrEnd("192.168.100.7"), Destination: openapi.TraceRequestEnd{Host: "h2"}, Port: 15432},
			allowed: true, path: "inbound", hosts: "h2", deciding: "db-ingress ingress[1]", output: "container db"},
		{name: "published from outside, not allowed", req: openapi.TraceRequest{Source: addrEnd("192.168.200.7"), Destination: openapi.TraceRequestEnd{Host: "h2"}, Port: 15432},
			allowed: false, path: "inbound", hosts: "h2"},
		{name: "node port to a remote backend", req: openapi.TraceRequest{Source: addrEnd("192.168.100.7"), Destination: addrEnd("192.168.1.2"), Port: 30080},
			allowed: true, path: "inbound", hosts: "h2 h1", chosen: "web", output: "container web"},
		{name: "outside", req: openapi.TraceRequest{Source: ctrEnd("web"), Destination: addrEnd("8.8.8.8"), Protocol: "UDP", Port: 53},
			allowed: true, path: "gateway", hosts: "h1", output: openapi.GatewayPortName},
		{name: "published from a container on another host", req: openapi.TraceRequest{Source: ctrEnd("web"), Destination: openapi.TraceRequestEnd{Host: "h2"}, Port: 15432},
			allowed: false, path: "gateway", hosts: "h1 h2"},
		{name: "other network", req: openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("g"), Port: 80},
			allowed: false, path: "none", hosts: "h1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compute(env, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			tr := p.Finish()
			in := tr.Intent
			dump := render(tr)
			if in.Allowed != tc.allowed || in.Path != tc.path || strings.Join(in.Hosts, " ") != tc.hosts {
				t.Fatalf("allowed %v path %s hosts %v, want %v %s %s\n%s", in.Allowed, in.Path, in.Hosts, tc.allowed, tc.path, tc.hosts, dump)
			}
			if tr.Disagreement {
				t.Fatalf("intent and compiled disagree: %+v\n%s", tr.Disagreements, dump)
			}
			if tc.deciding != "" && in.Ingress.Decision.Policy+" "+in.Ingress.Decision.Rule != tc.deciding {
				t.Fatalf("ingress decided by %+v, want %s\n%s", in.Ingress.Decision, tc.deciding, dump)
			}
			if tc.chosen != "" && (in.Service == nil || in.Service.Chosen != tc.chosen) {
				t.Fatalf("service %+v, want backend %s", in.Service, tc.chosen)
			}
			if tc.output != "" {
				last := tr.Compiled[len(tr.Compiled)-1]
				prog, _ := env.Program(last.Host)
				if portOwner(prog, last.Output) != tc.output {
					t.Fatalf("last hop outputs to %s, want %s\n%s", last.Output, tc.output, dump)
				}
			}
			checkGolden(t, "plan-"+strings.ReplaceAll(tc.name, " ", "-"), dump)
		})
	}
}

// render prints a trace for the golden files.
func render(tr *openapi.Trace) string {
	var b strings.Builder
	in := tr.Intent
	fmt.Fprintf(&b, "intent: %s path=%s hosts=%v allowed=%v\n  %s\n", in.Source.Name+in.Source.IP, in.Path, in.Hosts, in.Allowed, in.Verdict)
	if s := in.Service; s != nil {
		fmt.Fprintf(&b, "  service %s %s:%d -> target %d chosen %s backends %+v\n", s.Name, s.VIP, s.Port, s.TargetPort, s.Chosen, s.Backends)
	}
	for _, n := range in.NAT {
		fmt.Fprintf(&b, "  %s on %s %s -> %s (%s)\n", n.Kind, n.Host, n.From, n.To, n.Why)
	}
	for _, side := range []openapi.TracePolicySide{in.Egress, in.Ingress} {
		fmt.Fprintf(&b, "  at %q: %+v consulted %+v\n", side.Container, side.Decision, side.Policies)
	}
	for _, c := range tr.Compiled {
		fmt.Fprintf(&b, "compiled %s %s -> %s %s\n", c.Host, c.Flow, c.Verdict, c.Output)
		for _, f := range c.Flows {
			fmt.Fprintf(&b, "  %d %s prio=%d %s [%s]\n", f.Table, f.TableName, f.Priority, f.Cookie, f.Owner)
		}
	}
	fmt.Fprintf(&b, "conclusion: %s\n", tr.Conclusion)
	return b.String()
}

func TestPlanBadRequests(t *testing.T) {
	env := envOf(lab())
	cases := []struct {
		name   string
		req    openapi.TraceRequest
		status int
		field  string
	}{
		{"unknown source", openapi.TraceRequest{Source: ctrEnd("nope"), Destination: ctrEnd("db"), Port: 80}, http.StatusUnprocessableEntity, "source.container"},
		{"unknown service", openapi.TraceRequest{Source: ctrEnd("web"), Destination: openapi.TraceRequestEnd{Service: "nope"}, Port: 80}, http.StatusUnprocessableEntity, "destination.service"},
		{"unknown host", openapi.TraceRequest{Source: ctrEnd("web"), Destination: openapi.TraceRequestEnd{Host: "h9"}, Port: 80}, http.StatusUnprocessableEntity, "destination.host"},
		{"no source", openapi.TraceRequest{Destination: ctrEnd("db"), Port: 80}, http.StatusBadRequest, "source"},
		{"two sources", openapi.TraceRequest{Source: openapi.TraceRequestEnd{Container: "web", Address: "1.2.3.4"}, Destination: ctrEnd("db"), Port: 80}, http.StatusBadRequest, "source"},
		{"two destinations", openapi.TraceRequest{Source: ctrEnd("web"), Destination: openapi.TraceRequestEnd{Container: "db", Service: "websvc"}, Port: 80}, http.StatusBadRequest, "destination"},
		{"no port", openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db")}, http.StatusBadRequest, "port"},
		{"icmp port", openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db"), Protocol: "ICMP", Port: 7}, http.StatusBadRequest, "port"},
		{"nothing published", openapi.TraceRequest{Source: addrEnd("192.168.100.7"), Destination: openapi.TraceRequestEnd{Host: "h1"}, Port: 9999}, http.StatusUnprocessableEntity, "port"},
		{"probe from outside", openapi.TraceRequest{Source: addrEnd("192.168.100.7"), Destination: openapi.TraceRequestEnd{Host: "h2"}, Port: 15432, Probe: true}, http.StatusUnprocessableEntity, "probe"},
		{"outside to outside", openapi.TraceRequest{Source: addrEnd("1.1.1.1"), Destination: addrEnd("8.8.8.8"), Port: 53}, http.StatusUnprocessableEntity, "destination"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(env, tc.req)
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status != tc.status || pe.Field != tc.field {
				t.Fatalf("got %v, want %d naming %s", err, tc.status, tc.field)
			}
		})
	}
}

// TestIntentAgreesWithCompiled is the oracle: for every ordered pair of
// blue's containers, several ports and both directions, the compiled flows
// deliver exactly what the intent allows.
func TestIntentAgreesWithCompiled(t *testing.T) {
	env := envOf(lab())
	names := []string{"web", "db", "client"}
	for _, a := range names {
		for _, b := range names {
			for _, port := range []int{80, 5432, 8080} {
				for _, proto := range []string{"TCP", "UDP"} {
					p, err := Compute(env, openapi.TraceRequest{Source: ctrEnd(a), Destination: ctrEnd(b), Protocol: proto, Port: port})
					if err != nil {
						t.Fatal(err)
					}
					if tr := p.Finish(); tr.Disagreement {
						t.Errorf("%s -> %s %s/%d: %+v\n%s", a, b, proto, port, tr.Disagreements, render(tr))
					}
				}
			}
		}
	}
}

// fakeSwitch renders a hop's simulation as ofproto/trace would print it,
// with drop replacing the flow of table drop (-1: none).
func fakeSwitch(h Hop, drop int) string {
	var b strings.Builder
	b.WriteString("Flow: " + h.Job.Flow + "\n\nbridge(\"br-int\")\n----------------\n")
	for _, f := range h.Result.Flows {
		if f.Table == drop {
			fmt.Fprintf(&b, "%2d. priority 0\n    drop\n\nFinal flow: unchanged\nDatapath actions: drop\n", f.Table)
			return b.String()
		}
		m := f.Match
		if m != "" {
			m += ", "
		}
		fmt.Fprintf(&b, "%2d. %spriority %d", f.Table, m, f.Priority)
		if f.Cookie != 0 {
			fmt.Fprintf(&b, ", cookie %#x", f.Cookie|0xabcd<<48) // the agent's generation bits
		}
		b.WriteString("\n    " + f.Actions + "\n")
	}
	actions := "drop"
	switch h.Result.Verdict {
	case VerdictOutput:
		actions = "ct(commit,zone=101),3"
	case VerdictController:
		actions = "userspace(pid=0,controller(reason=1))"
	}
	b.WriteString("\nFinal flow: unchanged\nDatapath actions: " + actions + "\n")
	return b.String()
}

// TestDriftedHostIsADisagreement: a switch that lacks the compiled L2
// delivery flow on the destination host is reported, naming the host and
// the flow; switches that match agree.
func TestDriftedHostIsADisagreement(t *testing.T) {
	env := envOf(lab())
	p, err := Compute(env, openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db"), Port: 5432})
	if err != nil {
		t.Fatal(err)
	}
	p.SetApplied(0, 42, 42, true)
	p.SetApplied(1, 42, 42, true)
	p.SetSwitch(0, "ok", fakeSwitch(p.Hops[0], -1), "")
	p.SetSwitch(1, "ok", fakeSwitch(p.Hops[1], int(compile.TableL2Forwarding)), "")
	tr := p.Finish()
	if !tr.Disagreement || len(tr.Disagreements) != 1 {
		t.Fatalf("want one disagreement, got %+v", tr.Disagreements)
	}
	d := tr.Disagreements[0]
	if d.Host != "h2" || !strings.Contains(d.Flow, "L2Forwarding") || !strings.Contains(d.Flow, "container db") {
		t.Fatalf("disagreement %+v", d)
	}
	if !strings.HasPrefix(tr.Conclusion, "DISAGREEMENT") || !strings.Contains(tr.Conclusion, "h2") {
		t.Fatalf("conclusion %q", tr.Conclusion)
	}

	q, _ := Compute(env, openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db"), Port: 5432})
	q.SetApplied(0, 42, 40, true) // behind
	q.SetApplied(1, 42, 42, true)
	q.SetSwitch(0, "ok", fakeSwitch(q.Hops[0], -1), "")
	q.SetSwitch(1, "ok", fakeSwitch(q.Hops[1], -1), "")
	tr = q.Finish()
	if len(tr.Disagreements) != 1 || tr.Disagreements[0].Host != "h1" || !strings.Contains(tr.Disagreements[0].Detail, "revision 40") {
		t.Fatalf("a host behind: %+v", tr.Disagreements)
	}
	if sw := tr.Realized[1].Switch; sw.Verdict != VerdictOutput || len(sw.Flows) != len(q.Hops[1].Result.Flows) {
		t.Fatalf("switch of h2: %+v", sw)
	}
}

func TestLiveDisagreement(t *testing.T) {
	env := envOf(lab())
	p, _ := Compute(env, openapi.TraceRequest{Source: ctrEnd("client"), Destination: ctrEnd("db"), Port: 5432, Probe: true})
	host, job := p.ProbeJob()
	if host != "h1" || job == nil || job.Address != "10.1.0.3" || job.Port != 5432 || job.Protocol != "TCP" {
		t.Fatalf("probe job %s %+v", host, job)
	}
	p.SetLive(&openapi.TraceLive{Status: "answered", Host: "h1", Micros: 900})
	tr := p.Finish()
	if !tr.Disagreement || tr.Disagreements[0].Layers[1] != "live" {
		t.Fatalf("intent denies, probe answered: %+v", tr.Disagreements)
	}
}

func TestParseOfprotoTrace(t *testing.T) {
	out := `Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=0a:58:0a:01:00:02,dl_dst=0a:58:0a:01:00:01,nw_src=10.1.0.2,nw_dst=10.96.0.10,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=40000,tp_dst=80,tcp_flags=0

bridge("br-int")
----------------
 0. in_port=3, priority 100, cookie 0x5e1a119ceb92f53d
    set_field:0x65->reg0
    goto_table:1
 3. ip, priority 100
    ct(table=5,zone=NXM_NX_REG0[0..15],nat)
     -> A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table 5.

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: ct(zone=101,nat),recirc(0x1)

===============================================================================
recirc(0x1) - resume conntrack with ct_state=trk|new
Replacing src/dst IP/ports to simulate NAT:
 Initial flow: nw_src=10.1.0.2,tp_src=40000,nw_dst=10.96.0.10,tp_dst=80
 Modified flow: nw_src=10.1.0.2,tp_src=40000,nw_dst=10.1.0.3,tp_dst=8080
===============================================================================

bridge("br-int")
----------------
    thaw
        Resuming from table 5
15. priority 0
    output:NXM_NX_REG2[]
     -> output port is 4

Final flow: unchanged
Datapath actions: 4
`
	st := ParseOfprotoTrace(out, Owners{0x119ceb92f53d: "container web"})
	if len(st.Flows) != 3 || st.Flows[0].Cookie != "0x119ceb92f53d" || st.Flows[0].Owner != "container web" || st.Flows[2].Table != 15 {
		t.Fatalf("flows %+v", st.Flows)
	}
	if st.DatapathActions != "4" || st.Verdict != VerdictOutput || st.Backend != "10.1.0.3:8080" {
		t.Fatalf("parsed %+v", st)
	}
	for a, want := range map[string]string{"drop": VerdictDrop, "": VerdictDrop, "set(tunnel(tun_id=0x65)),tnl_push(tnl_port(6081)),2": VerdictOutput,
		"meter(1),userspace(pid=0,controller(reason=1))": VerdictController, "ct(commit,zone=101),recirc(0x3)": VerdictDrop} {
		if got := datapathVerdict(a); got != want {
			t.Errorf("datapathVerdict(%q) = %s, want %s", a, got, want)
		}
	}
}

// TestEgressIPHolder: a network with an egress IP leaves by its holder:
// intent names the holder (read from the hosts' programs) and the SNAT to
// the egress IP there, and the compiled flows cross the same hosts.
func TestEgressIPHolder(t *testing.T) {
	s := lab()
	s.Networks[1].EgressIP = "192.168.1.50" // green; g is on h2
	env := envOf(s)
	p, err := Compute(env, openapi.TraceRequest{Source: ctrEnd("g"), Destination: addrEnd("8.8.8.8"), Protocol: "UDP", Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Finish()
	holder := ""
	for _, h := range []string{"h1", "h2"} {
		if prog, _ := env.Program(h); prog.Gateway != nil && slices.Contains(prog.Gateway.EgressIPs, "192.168.1.50") {
			holder = h
		}
	}
	want := []string{"h2"}
	if holder != "h2" {
		want = append(want, holder)
	}
	if holder == "" || !slices.Equal(tr.Intent.Hosts, want) || tr.Disagreement || !tr.Intent.Allowed {
		t.Fatalf("holder %s: intent hosts %v allowed %v, disagreements %+v\n%s", holder, tr.Intent.Hosts, tr.Intent.Allowed, tr.Disagreements, render(tr))
	}
	n := tr.Intent.NAT[len(tr.Intent.NAT)-1]
	if n.Kind != "snat" || n.Host != holder || n.To != "192.168.1.50" {
		t.Fatalf("nat %+v", tr.Intent.NAT)
	}
}

// TestEqualPriorityAlternatives: two policies at one priority both admit
// web -> db. OpenFlow leaves the choice between their flows to the switch;
// a switch that matched the other one agrees with the compiled program,
// since both do the same.
func TestEqualPriorityAlternatives(t *testing.T) {
	s := lab()
	second := s.Policies[0]
	second.ID, second.Name = "77777777-0000-4000-8000-000000000007", "db-ingress-again"
	second.Ingress = second.Ingress[:1]
	s.Policies = append(s.Policies, second)
	env := envOf(s)
	p, err := Compute(env, openapi.TraceRequest{Source: ctrEnd("web"), Destination: ctrEnd("db"), Port: 5432})
	if err != nil {
		t.Fatal(err)
	}
	hop, step := -1, -1
	for i, h := range p.Hops {
		for k := range h.Result.Alternatives {
			hop, step = i, k
		}
	}
	if hop < 0 {
		t.Fatalf("no step with alternatives: %+v", p.Hops)
	}
	alt := p.Hops[hop].Result.Alternatives[step][0]
	if alt.Cookie == p.Hops[hop].Result.Flows[step].Cookie {
		t.Fatalf("the alternative is the flow itself: %+v", alt)
	}
	for i := range p.Hops {
		p.SetApplied(i, 42, 42, true)
		h := p.Hops[i]
		if i == hop {
			h.Result.Flows = slices.Clone(h.Result.Flows)
			h.Result.Flows[step] = alt
		}
		p.SetSwitch(i, "ok", fakeSwitch(h, -1), "")
	}
	if tr := p.Finish(); tr.Disagreement {
		t.Fatalf("the switch took the other policy's flow: %+v", tr.Disagreements)
	}
}
