package program

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// sample is a small program shaped like a compiled one: flows sorted, ports
// sorted by name, digest set.
func sample() *openapi.Program {
	p := &openapi.Program{
		Host:    "h1",
		Bridge:  openapi.BridgeSpec{Name: "br-int", FailMode: "secure"},
		Tunnels: []openapi.TunnelPort{{Name: "syt000000000001", Type: "geneve", PeerHost: "h2", RemoteIP: "192.168.1.2"}},
		Containers: []openapi.ContainerPort{{Name: "syc0123456789ab", Container: "web", ID: "01234567-89ab-4cde-8f01-23456789abcd",
			Network: "blue", Sandbox: "web.blue", IP: "10.1.0.2", PrefixLen: 16, MAC: "0a:58:0a:01:00:02", Gateway: "10.1.0.1", MTU: 1400}},
		Flows: []openapi.Flow{
			{Table: 0, Priority: 0, Match: "", Actions: "drop"},
			{Table: 0, Priority: 100, Cookie: 7, Match: "in_port=${port:syc0123456789ab}", Actions: "goto_table:1"},
			{Table: 7, Priority: 100, Cookie: 7, Match: "reg0=0x65,dl_dst=0a:58:0a:01:00:02", Actions: "set_field:${port:syc0123456789ab}->reg2,goto_table:8"},
		},
		Groups: []openapi.Group{{ID: 1, Spec: "type=select,bucket=output:1"}},
	}
	SortFlows(p.Flows)
	p.Digest = Digest(p)
	return p
}

// TestDigestPinned: digests are part of the protocol (controller and agent
// of different versions must agree); these values were computed by the
// compiler's digest before it moved here and must never change.
func TestDigestPinned(t *testing.T) {
	p := sample()
	if p.Digest != "b9f59e338b8a3d8c0f426bad55f2ce37" {
		t.Errorf("digest %s", p.Digest)
	}
	p.Groups = nil
	if d := Digest(p); d != "2f367d7bb7e67bd158de81b52d465b14" {
		t.Errorf("digest without groups %s", d)
	}
	if d := Digest(&openapi.Program{}); d != "068d18cb4e1b7a5a16999453a08c7b91" {
		t.Errorf("digest of the empty program %s", d)
	}
}

// TestDigestContent: the digest ignores revision, the Digest field and
// element order, and sees every other field.
func TestDigestContent(t *testing.T) {
	base := sample()
	q := sample()
	q.Revision, q.Digest = 42, "x"
	slices.Reverse(q.Flows)
	q.Tunnels = append(q.Tunnels, openapi.TunnelPort{Name: "syt000000000002"})
	base.Tunnels = append([]openapi.TunnelPort{{Name: "syt000000000002"}}, base.Tunnels...)
	if Digest(q) != Digest(base) {
		t.Fatal("digest depends on revision or order")
	}
	changes := map[string]func(p *openapi.Program){
		"host":           func(p *openapi.Program) { p.Host = "h2" },
		"bridge":         func(p *openapi.Program) { p.Bridge.Name = "br-x" },
		"fail mode":      func(p *openapi.Program) { p.Bridge.FailMode = "standalone" },
		"flow table":     func(p *openapi.Program) { p.Flows[0].Table = 1 },
		"flow priority":  func(p *openapi.Program) { p.Flows[0].Priority++ },
		"flow cookie":    func(p *openapi.Program) { p.Flows[0].Cookie++ },
		"flow match":     func(p *openapi.Program) { p.Flows[0].Match += ",ip" },
		"flow actions":   func(p *openapi.Program) { p.Flows[0].Actions += ",drop" },
		"flow duplicate": func(p *openapi.Program) { p.Flows = append(p.Flows, p.Flows[0]) },
		"flow removed":   func(p *openapi.Program) { p.Flows = p.Flows[1:] },
		"tunnel type":    func(p *openapi.Program) { p.Tunnels[0].Type = "vxlan" },
		"tunnel ip":      func(p *openapi.Program) { p.Tunnels[0].RemoteIP = "192.168.1.3" },
		"container ip":   func(p *openapi.Program) { p.Containers[0].IP = "10.1.0.3" },
		"container mtu":  func(p *openapi.Program) { p.Containers[0].MTU = 1500 },
		"container len":  func(p *openapi.Program) { p.Containers[0].PrefixLen = 24 },
		"container ns":   func(p *openapi.Program) { p.Containers[0].Netns = "/run/netns/x" },
		"group spec":     func(p *openapi.Program) { p.Groups[0].Spec = "type=all" },
		"group id":       func(p *openapi.Program) { p.Groups[0].ID = 2 },
		"no group":       func(p *openapi.Program) { p.Groups = nil },
		// Same strings, split differently: length prefixes tell them apart.
		"match/actions split": func(p *openapi.Program) {
			p.Flows[0].Match, p.Flows[0].Actions = p.Flows[0].Match+"g", strings.TrimPrefix(p.Flows[0].Actions, "g")
		},
	}
	for what, change := range changes {
		p := sample()
		change(p)
		if Digest(p) == base.Digest {
			t.Errorf("%s: digest did not change", what)
		}
	}
}

// TestDigestDNSHealth: DNS records and health probes are part of the
// digest, in any order, every field of them; Sums follows them.
func TestDigestDNSHealth(t *testing.T) {
	mk := func() *openapi.Program {
		p := sample()
		p.DNS = []openapi.DNSRecord{
			{Network: "blue", VNI: 1, Kind: openapi.DNSContainer, Name: "web", IP: "10.1.0.2"},
			{Network: "blue", VNI: 1, Kind: openapi.DNSService, Name: "api", IP: "10.96.0.1",
				Ports: []openapi.ServicePort{{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"}}},
		}
		p.HealthChecks = []openapi.HealthProbe{{Service: "s1", ServiceName: "api", Container: "c1", Port: "syc1", IP: "10.1.0.2",
			Check: openapi.HealthCheck{Protocol: "HTTP", Port: 8080, Path: "/", IntervalSeconds: 5, TimeoutSeconds: 1, UnhealthyThreshold: 3, HealthyThreshold: 1}}}
		p.Digest = Digest(p)
		return p
	}
	base := mk()
	if base.Digest == sample().Digest {
		t.Fatal("DNS records and health probes do not change the digest")
	}
	q := mk()
	slices.Reverse(q.DNS)
	if Digest(q) != base.Digest {
		t.Fatal("digest depends on the order of DNS records")
	}
	changes := map[string]func(p *openapi.Program){
		"dns ip":        func(p *openapi.Program) { p.DNS[0].IP = "10.1.0.9" },
		"dns vni":       func(p *openapi.Program) { p.DNS[0].VNI = 2 },
		"dns name":      func(p *openapi.Program) { p.DNS[0].Name = "x" },
		"dns port":      func(p *openapi.Program) { p.DNS[1].Ports[0].TargetPort = 81 },
		"dns port name": func(p *openapi.Program) { p.DNS[1].Ports[0].Name = "web" },
		"dns gone":      func(p *openapi.Program) { p.DNS = p.DNS[:1] },
		"hc port":       func(p *openapi.Program) { p.HealthChecks[0].Port = "syc2" },
		"hc path":       func(p *openapi.Program) { p.HealthChecks[0].Check.Path = "/x" },
		"hc interval":   func(p *openapi.Program) { p.HealthChecks[0].Check.IntervalSeconds = 6 },
		"hc gone":       func(p *openapi.Program) { p.HealthChecks = nil },
		"ctr domain":    func(p *openapi.Program) { p.Containers[0].DNSDomain = "x.local" },
	}
	for what, change := range changes {
		p := mk()
		change(p)
		if Digest(p) == base.Digest {
			t.Errorf("%s: digest did not change", what)
		}
	}
	var s Sums
	s = programSums(sample())
	s.AddDNS(DNSKey(&base.DNS[1]), 1)
	s.AddDNS(DNSKey(&base.DNS[0]), 1)
	s.AddHealthCheck(HealthKey(&base.HealthChecks[0]), 1)
	if s.Digest(base.Host, base.Bridge) != base.Digest {
		t.Fatal("incremental sums differ from Digest")
	}
	// A shared part summed apart and added whole gives the same.
	var part, whole Sums
	part.AddDNS(DNSKey(&base.DNS[0]), 1)
	part.AddDNS(DNSKey(&base.DNS[1]), 1)
	whole = programSums(sample())
	whole.AddSums(&part, 2)
	whole.AddSums(&part, -1)
	whole.AddHealthCheck(HealthKey(&base.HealthChecks[0]), 1)
	if whole.Digest(base.Host, base.Bridge) != base.Digest {
		t.Fatal("AddSums differs from adding the elements")
	}
	// A changed record is removed and added by key.
	b := mk()
	b.DNS[0].IP = "10.1.0.9"
	b.Digest = Digest(b)
	d := Diff(base, b)
	if len(d.RemoveDNS) != 1 || len(d.AddDNS) != 1 || d.RemoveDNS[0] != "blue/container/web" {
		t.Fatalf("delta %+v", d)
	}
	if got, err := Track(base).Patch(d); err != nil || got.P.Digest != b.Digest {
		t.Fatalf("tracked patch: %v", err)
	}
	if _, err := Patch(base, &openapi.ProgramDelta{FromDigest: base.Digest, RemoveHealthChecks: []string{"nope"}}); err == nil {
		t.Fatal("removed a health check the program does not have")
	}
}

// TestSumsIncremental: a Sums fed element by element, with additions and
// removals in any order, gives Digest's value.
func TestSumsIncremental(t *testing.T) {
	p := sample()
	var s Sums
	extra := openapi.Flow{Table: 3, Priority: 5, Match: "ip", Actions: "drop"}
	s.AddFlow(FlowKey(&extra), 2)
	for i := len(p.Flows) - 1; i >= 0; i-- {
		s.AddFlow(FlowKey(&p.Flows[i]), 1)
	}
	s.AddGroup(GroupKey(&p.Groups[0]), 1)
	s.AddTunnel(TunnelKey(&p.Tunnels[0]), 1)
	gone := p.Containers[0]
	gone.Name = "sycgone"
	s.AddContainer(ContainerKey(&gone), 1)
	s.AddContainer(ContainerKey(&p.Containers[0]), 1)
	s.AddContainer(ContainerKey(&gone), -1)
	s.AddFlow(FlowKey(&extra), -2)
	if d := s.Digest(p.Host, p.Bridge); d != p.Digest {
		t.Fatalf("incremental digest %s, Digest %s", d, p.Digest)
	}
	var empty Sums
	if empty.Digest("", openapi.BridgeSpec{}) != Digest(&openapi.Program{}) {
		t.Fatal("zero Sums is not the empty program")
	}
}

func TestCompareFlows(t *testing.T) {
	sorted := []openapi.Flow{
		{Table: 0, Priority: 100, Match: "b"},
		{Table: 0, Priority: 0, Match: "a"},
		{Table: 1, Priority: 200, Match: "a", Cookie: 1, Actions: "z"},
		{Table: 1, Priority: 200, Match: "a", Cookie: 2, Actions: "a"},
		{Table: 1, Priority: 200, Match: "a", Cookie: 2, Actions: "b"},
		{Table: 1, Priority: 200, Match: "b"},
		{Table: 2, Priority: 300},
	}
	if !FlowsSorted(sorted) {
		t.Fatal("not sorted: table, priority descending, match, cookie, actions")
	}
	fs := slices.Clone(sorted)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	SortFlows(fs)
	if !slices.Equal(fs, sorted) {
		t.Fatalf("SortFlows: %v", fs)
	}
	for i := range sorted {
		if CompareFlows(&sorted[i], &sorted[i]) != 0 {
			t.Fatal("a flow differs from itself")
		}
	}
}

func TestAppendFlow(t *testing.T) {
	for _, c := range []struct {
		f    openapi.Flow
		want string
	}{
		{openapi.Flow{Table: 3, Priority: 0, Actions: "goto_table:4"}, "table=3, priority=0, cookie=0x0 actions=goto_table:4"},
		{openapi.Flow{Table: 7, Priority: 100, Cookie: 0x2a, Match: "reg0=0x65", Actions: "drop"}, "table=7, priority=100, cookie=0x2a, reg0=0x65 actions=drop"},
	} {
		if got := string(AppendFlow([]byte("> "), &c.f)); got != "> "+c.want {
			t.Errorf("got %q, want %q", got, "> "+c.want)
		}
	}
}

func TestMergeFlows(t *testing.T) {
	f := func(prio int) openapi.Flow { return openapi.Flow{Table: 1, Priority: prio, Actions: "drop"} }
	old := []openapi.Flow{f(50), f(40), f(40), f(30)}
	a1, a2, a3, r1, r2 := f(60), f(40), f(10), f(40), f(30)
	got, err := MergeFlows(old, []*openapi.Flow{&a3, &a1, &a2}, []*openapi.Flow{&r2, &r1})
	if err != nil {
		t.Fatal(err)
	}
	want := []openapi.Flow{f(60), f(50), f(40), f(40), f(10)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if len(old) != 4 || old[3] != f(30) {
		t.Fatal("old modified")
	}
	missing := f(20)
	_, err = MergeFlows(old, nil, []*openapi.Flow{&missing})
	if err == nil || !strings.Contains(err.Error(), "table=1, priority=20, cookie=0x0 actions=drop") {
		t.Fatalf("removing a missing flow: %v", err)
	}
	three := f(40)
	if _, err = MergeFlows(old, nil, []*openapi.Flow{&three, &three, &three}); err == nil {
		t.Fatal("removed a flow more times than the program has it")
	}
}

func TestPatchRejects(t *testing.T) {
	p := sample()
	if _, err := Patch(nil, &openapi.ProgramDelta{}); err == nil {
		t.Error("Patch patched no program")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: "other"}); err == nil {
		t.Error("Patch accepted a delta from another digest")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, RemoveFlows: []openapi.Flow{{Table: 3, Match: "nope"}}}); err == nil {
		t.Error("Patch removed a flow the program does not have")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, AddTunnels: p.Tunnels[:1]}); err == nil {
		t.Error("Patch added a tunnel the program already has")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, AddContainers: p.Containers[:1]}); err == nil {
		t.Error("Patch added a container port the program already has")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, RemoveContainers: []string{"sycnope"}}); err == nil {
		t.Error("Patch removed a container port the program does not have")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, RemoveGroups: []uint32{9}}); err == nil {
		t.Error("Patch removed a group the program does not have")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, Digest: "wrong"}); err == nil {
		t.Error("Patch accepted a result whose digest differs from the delta's")
	}
	if _, err := Patch(p, &openapi.ProgramDelta{FromDigest: p.Digest, Digest: p.Digest}); err != nil {
		t.Errorf("empty delta: %v", err)
	}
}

// TestDiffPatchGroupsUnsorted: groups, changed groups, and flows in no
// particular order.
func TestDiffPatchGroupsUnsorted(t *testing.T) {
	a := sample()
	b := *a
	b.Flows = append([]openapi.Flow{{Table: 4, Priority: 10, Match: "ip", Actions: "group:1"}}, a.Flows...)
	b.Groups = []openapi.Group{{ID: 2, Spec: "type=select,bucket=output:1"}, {ID: 1, Spec: "type=select,bucket=output:2"}}
	b.Digest = Digest(&b)
	d := Diff(a, &b)
	if len(d.AddFlows) != 1 || len(d.RemoveFlows) != 0 || len(d.AddGroups) != 2 || len(d.RemoveGroups) != 1 {
		t.Fatalf("delta %+v", d)
	}
	got, err := Patch(a, d)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != b.Digest || len(got.Groups) != 2 || got.Groups[0].ID != 1 || !FlowsSorted(got.Flows) {
		t.Fatalf("patched: %+v", got)
	}
	c := b
	c.Groups = []openapi.Group{{ID: 1, Spec: "type=all,bucket=output:2"}}
	c.Digest = Digest(&c)
	d = Diff(&b, &c)
	if len(d.RemoveGroups) != 2 || len(d.AddGroups) != 1 {
		t.Fatalf("group delta %+v", d)
	}
	if got, err := Patch(&b, d); err != nil || got.Digest != c.Digest {
		t.Fatalf("patch groups: %v", err)
	}
}

// randomProgram draws a program of host h1 from a small pool of elements, so
// that two draws share some and differ in others; flows may repeat.
func randomProgram(r *rand.Rand) *openapi.Program {
	p := &openapi.Program{Host: "h1", Revision: r.Int64N(100), Bridge: openapi.BridgeSpec{Name: "br-int", FailMode: "secure"},
		Tunnels: []openapi.TunnelPort{}, Containers: []openapi.ContainerPort{}, Groups: []openapi.Group{}}
	for i := r.IntN(12); i > 0; i-- {
		p.Flows = append(p.Flows, openapi.Flow{Table: r.IntN(3), Priority: 100 * r.IntN(3), Cookie: uint64(r.IntN(2)),
			Match: fmt.Sprint("reg0=", r.IntN(3)), Actions: fmt.Sprint("goto_table:", 3+r.IntN(2))})
	}
	for _, i := range r.Perm(4)[:r.IntN(4)] {
		p.Tunnels = append(p.Tunnels, openapi.TunnelPort{Name: fmt.Sprint("syt", i), Type: "geneve", PeerHost: fmt.Sprint("h", i),
			RemoteIP: fmt.Sprint("192.168.1.", i+r.IntN(2)*10)})
	}
	for _, i := range r.Perm(4)[:r.IntN(4)] {
		p.Containers = append(p.Containers, openapi.ContainerPort{Name: fmt.Sprint("syc", i), ID: fmt.Sprint("id", i),
			IP: fmt.Sprint("10.0.0.", i), MTU: 1400 + 100*r.IntN(2)})
	}
	for _, i := range r.Perm(3)[:r.IntN(3)] {
		p.Groups = append(p.Groups, openapi.Group{ID: uint32(i), Spec: fmt.Sprint("type=select,bucket=output:", r.IntN(2))})
	}
	for _, i := range r.Perm(4)[:r.IntN(4)] {
		rec := openapi.DNSRecord{Network: "blue", VNI: 1, Kind: openapi.DNSContainer, Name: fmt.Sprint("c", i), IP: fmt.Sprint("10.0.0.", i+r.IntN(2)*10)}
		if i%2 == 1 {
			rec.Kind = openapi.DNSService
			rec.Ports = []openapi.ServicePort{{Name: "http", Port: 80 + r.IntN(2), Protocol: "TCP"}}
		}
		p.DNS = append(p.DNS, rec)
	}
	for _, i := range r.Perm(3)[:r.IntN(3)] {
		p.HealthChecks = append(p.HealthChecks, openapi.HealthProbe{Service: "s", Container: fmt.Sprint("id", i), Port: fmt.Sprint("syc", i),
			Check: openapi.HealthCheck{Protocol: "TCP", Port: 80, IntervalSeconds: 1 + r.IntN(2)}})
	}
	p.Digest = Digest(p)
	return p
}

// normalized is p as Patch returns it: elements sorted.
func normalized(p *openapi.Program) *openapi.Program {
	q := *p
	q.Flows = slices.Clone(p.Flows)
	SortFlows(q.Flows)
	q.Tunnels = slices.Clone(p.Tunnels)
	slices.SortFunc(q.Tunnels, func(a, b openapi.TunnelPort) int { return strings.Compare(a.Name, b.Name) })
	q.Containers = slices.Clone(p.Containers)
	slices.SortFunc(q.Containers, func(a, b openapi.ContainerPort) int { return strings.Compare(a.Name, b.Name) })
	q.Groups = slices.Clone(p.Groups)
	slices.SortFunc(q.Groups, func(a, b openapi.Group) int { return cmp.Compare(a.ID, b.ID) })
	q.DNS = slices.Clone(p.DNS)
	slices.SortFunc(q.DNS, func(a, b openapi.DNSRecord) int { return strings.Compare(a.Key(), b.Key()) })
	q.HealthChecks = slices.Clone(p.HealthChecks)
	slices.SortFunc(q.HealthChecks, func(a, b openapi.HealthProbe) int { return strings.Compare(a.Key(), b.Key()) })
	if len(q.DNS) == 0 {
		q.DNS = nil
	}
	if len(q.HealthChecks) == 0 {
		q.HealthChecks = nil
	}
	return &q
}

// patchedTo tells whether got, a patch's result, is want (normalized) at
// revision rev; no flows and an empty list of flows are alike.
func patchedTo(got, want *openapi.Program, rev int64) bool {
	w, g := *want, *got
	w.Revision = rev
	if len(w.Flows) == 0 {
		w.Flows = nil
	}
	if len(g.Flows) == 0 {
		g.Flows = nil
	}
	return reflect.DeepEqual(&g, &w)
}

// A tracked program patched again and again (the agent's way: each patch
// from the last result, which skips the order check of its flows) ends
// where the package's Patch does, from programs whose flows come in any
// order.
func TestTrackedChain(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	prev := randomProgram(r)
	tr := Track(prev)
	for i := 0; i < 200; i++ {
		next := randomProgram(r)
		next.Host, next.Bridge = prev.Host, prev.Bridge
		r.Shuffle(len(next.Flows), func(a, b int) { next.Flows[a], next.Flows[b] = next.Flows[b], next.Flows[a] })
		next.Digest = Digest(next)
		d := Diff(prev, next)
		want, err := Patch(prev, d)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if tr, err = tr.Patch(d); err != nil {
			t.Fatalf("step %d: tracked: %v", i, err)
		}
		if tr.P.Digest != next.Digest || !slices.EqualFunc(tr.P.Flows, want.Flows, func(a, b openapi.Flow) bool { return a == b }) || !FlowsSorted(tr.P.Flows) {
			t.Fatalf("step %d: tracked chain differs from Patch", i)
		}
		prev = want
	}
}

// TestTransitions: for random pairs of programs A, B,
// Patch(A, Diff(A, B)) == B (elements sorted, revision A's), digests
// included; Diff(A, A) is empty; Diff(nil, B) patches the empty program
// into B.
func TestTransitions(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var progs []*openapi.Program
	for i := 0; i < 60; i++ {
		progs = append(progs, randomProgram(r))
	}
	empty := &openapi.Program{Host: "h1", Bridge: progs[0].Bridge}
	empty.Digest = Digest(empty)
	for i, a := range progs {
		for j, b := range progs {
			d := Diff(a, b)
			got, err := Patch(a, d)
			if err != nil {
				t.Fatalf("%d->%d: %v", i, j, err)
			}
			if want := normalized(b); !patchedTo(got, want, a.Revision) {
				t.Fatalf("%d->%d: got %+v, want %+v", i, j, got, want)
			}
			// A tracked program patches to the same content and digest.
			tr, err := Track(a).Patch(d)
			if err != nil || tr.P.Digest != b.Digest || tr.P.Digest != Digest(tr.P) || len(tr.P.Flows) != len(b.Flows) {
				t.Fatalf("%d->%d: tracked patch: %v", i, j, err)
			}
			if i == j && (len(d.AddFlows)+len(d.RemoveFlows)+len(d.AddTunnels)+len(d.RemoveTunnels)+len(d.AddContainers)+
				len(d.RemoveContainers)+len(d.AddGroups)+len(d.RemoveGroups)+len(d.AddDNS)+len(d.RemoveDNS)+
				len(d.AddHealthChecks)+len(d.RemoveHealthChecks) != 0 || d.FromDigest != d.Digest) {
				t.Fatalf("%d: diff of a program with itself is not empty: %+v", i, d)
			}
		}
		d := Diff(nil, a)
		if d.FromDigest != "" {
			t.Fatalf("%d: delta from no program has FromDigest %q", i, d.FromDigest)
		}
		d.FromDigest = empty.Digest
		if got, err := Patch(empty, d); err != nil || got.Digest != a.Digest {
			t.Fatalf("%d: from the empty program: %v", i, err)
		}
	}
}
