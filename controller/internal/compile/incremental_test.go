package compile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// TestTransitions: for pairs of snapshots A, B and every host in both,
// program.Patch(Compile(A), program.Diff(Compile(A), Compile(B))) ==
// Compile(B), digests included.
func TestTransitions(t *testing.T) {
	var snaps []*Snapshot
	for _, s := range goldenScenarios() {
		snaps = append(snaps, s)
	}
	for _, s := range serviceScenarios() {
		snaps = append(snaps, s)
	}
	w := &randomWorld{r: rand.New(rand.NewPCG(3, 3))}
	for i := 0; i < 40; i++ {
		snaps = append(snaps, w.snapshot())
	}
	for i, a := range snaps {
		pa := Compile(a)
		for j, b := range snaps {
			pb := Compile(b)
			for h, to := range pb {
				from := pa[h]
				if from == nil {
					continue
				}
				d := program.Diff(from, to)
				got, err := program.Patch(from, d)
				if err != nil {
					t.Fatalf("snapshots %d->%d host %s: %v", i, j, h, err)
				}
				sameProgram(t, fmt.Sprintf("snapshots %d->%d", i, j), got, to)
				if i == j && (len(d.AddFlows)+len(d.RemoveFlows)+len(d.AddTunnels)+len(d.RemoveTunnels)+
					len(d.AddContainers)+len(d.RemoveContainers)+len(d.AddGroups)+len(d.RemoveGroups)+
					len(d.AddDNS)+len(d.RemoveDNS)+len(d.AddHealthChecks)+len(d.RemoveHealthChecks) != 0 || d.FromDigest != d.Digest) {
					t.Fatalf("snapshot %d: diff of a program with itself is not empty", i)
				}
			}
		}
	}
}

// TestRenderSorts: Render sorts flows given in any order.
func TestRenderSorts(t *testing.T) {
	p := *Compile(goldenScenarios()["one-host"])["h1"]
	want := Render(&p)
	p.Flows = append([]openapi.Flow{{Table: 4, Priority: 10, Match: "ip", Actions: "drop"}}, p.Flows...)
	got := Render(&p)
	if !strings.HasPrefix(got, "table=0,") || !strings.Contains(got, "\ntable=4, priority=10, cookie=0x0, ip actions=drop\n") ||
		len(got) != len(want)+len("table=4, priority=10, cookie=0x0, ip actions=drop\n") {
		t.Fatalf("Render does not sort:\n%s", got)
	}
}

// TestIncrementalEqualsFull applies random sequences of random changes, one
// or a few per step, and checks after every step that: the hosts reported
// are exactly those whose program changed; each reported delta patches the
// previous program into the new one; and every program equals the full
// compile of the resulting snapshot.
func TestIncrementalEqualsFull(t *testing.T) {
	seeds, steps := 150, 40
	if testing.Short() {
		seeds = 20
	}
	for seed := 0; seed < seeds; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		w := &randomWorld{r: r}
		s := w.snapshot()
		m := newModel(s)
		c := New()
		prev := c.Full(s)
		for step := 1; step <= steps; step++ {
			var batch []Change
			for k := 1 + r.IntN(3)*r.IntN(2); k > 0; k-- {
				ch := w.change(m)
				m.apply(ch)
				batch = append(batch, ch)
			}
			m.rev++
			ups := c.Apply(m.rev, batch...)
			where := fmt.Sprintf("seed %d step %d (%s)", seed, step, describe(batch))
			full := Compile(m.snapshot(r))
			checkInvariants(t, m.snapshot(nil), full)
			cur := map[string]*openapi.Program{}
			for _, h := range c.Hosts() {
				cur[h] = mustProgram(t, c, h)
				if full[h] == nil {
					t.Fatalf("%s: compiler has host %s, snapshot does not", where, h)
				}
				sameProgram(t, where, cur[h], full[h])
			}
			if len(cur) != len(full) {
				t.Fatalf("%s: compiler has %d hosts, full compile %d", where, len(cur), len(full))
			}
			reported := map[string]bool{}
			for _, u := range ups {
				reported[u.Host] = true
				switch {
				case u.Removed:
					if cur[u.Host] != nil || prev[u.Host] == nil {
						t.Fatalf("%s: %s reported removed", where, u.Host)
					}
				case u.New:
					if u.Delta.FromDigest != "" {
						t.Fatalf("%s: new host %s has a FromDigest", where, u.Host)
					}
					got, err := program.Patch(&openapi.Program{Host: u.Host, Bridge: bridgeSpec()}, u.Delta)
					if err != nil {
						t.Fatalf("%s: new host %s: %v", where, u.Host, err)
					}
					sameProgram(t, where+" new host delta", got, cur[u.Host])
				default:
					if prev[u.Host] == nil {
						t.Fatalf("%s: %s reported changed, had no program", where, u.Host)
					}
					got, err := program.Patch(prev[u.Host], u.Delta)
					if err != nil {
						t.Fatalf("%s: host %s: %v", where, u.Host, err)
					}
					sameProgram(t, where+" delta", got, cur[u.Host])
					if got.Digest == prev[u.Host].Digest {
						t.Fatalf("%s: %s reported without a change", where, u.Host)
					}
					if cur[u.Host].Revision != m.rev {
						t.Fatalf("%s: %s changed but has revision %d", where, u.Host, cur[u.Host].Revision)
					}
				}
				if !u.Removed && u.Digest != cur[u.Host].Digest {
					t.Fatalf("%s: %s update digest %s, program %s", where, u.Host, u.Digest, cur[u.Host].Digest)
				}
			}
			for h, p := range cur {
				if !reported[h] && (prev[h] == nil || prev[h].Digest != p.Digest || prev[h] != p) {
					t.Fatalf("%s: %s changed (or is new) but was not reported", where, h)
				}
			}
			prev = cur
		}
	}
}

func describe(batch []Change) string {
	var parts []string
	for _, ch := range batch {
		op := "put"
		if ch.delete {
			op = "delete"
		}
		parts = append(parts, op+" "+ch.kind+" "+ch.key)
	}
	return strings.Join(parts, ", ")
}

// TestProgramsImmutable: a program handed out is not changed by later
// Apply calls.
func TestProgramsImmutable(t *testing.T) {
	s := goldenScenarios()["three-hosts"]
	c := New()
	progs := c.Full(s)
	before := Render(progs["h2"])
	digest := progs["h2"].Digest
	c.Apply(9, DeleteContainer(s.Containers[2].ID), PutContainer(container("new", "blue", 1, 9, "h2")))
	if Render(progs["h2"]) != before || progs["h2"].Digest != digest {
		t.Fatal("Apply modified a program handed out earlier")
	}
	if mustProgram(t, c, "h2").Digest == digest {
		t.Fatal("the change did not change h2's program")
	}
}

// TestSnapshotCarried: services and policies are kept, and the compiler's
// snapshot round-trips.
func TestSnapshotCarried(t *testing.T) {
	s := goldenScenarios()["one-host"]
	s.Services = []openapi.Service{{Meta: openapi.Meta{ID: "s1"}, Name: "web"}}
	s.Policies = []openapi.Policy{{Meta: openapi.Meta{ID: "p1"}, Name: "deny"}}
	c := New()
	c.Full(s)
	c.Apply(8, PutPolicy(openapi.Policy{Meta: openapi.Meta{ID: "p2"}, Name: "allow"}), DeleteService("s1"))
	got := c.Snapshot()
	if got.Revision != 8 || len(got.Services) != 0 || len(got.Policies) != 2 || len(got.Containers) != 2 {
		t.Fatalf("snapshot: %+v", got)
	}
}

// TestInconsistencyIsAnError: pending changes that do not fit the previous
// program (a bookkeeping bug) make Program fail with ErrInconsistent instead
// of panicking, and a fresh compiler loaded from the objects recovers the
// right program.
func TestInconsistencyIsAnError(t *testing.T) {
	s := goldenScenarios()["three-hosts"]
	c := New()
	want := c.Full(s)["h2"]
	c.Apply(9, PutContainer(container("new", "blue", 1, 9, "h2")))
	h := c.hosts["h2"]
	for _, p := range h.pend { // corrupt: remove one more than was added
		p.n = -len(want.Flows) - 5
		break
	}
	if _, err := c.Program("h2"); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Program on corrupt bookkeeping: err %v, want ErrInconsistent", err)
	}
	fresh := New()
	got := fresh.Full(c.Snapshot())["h2"]
	sameProgram(t, "recompiled", got, Compile(c.Snapshot())["h2"])
	if got.Digest == want.Digest {
		t.Fatal("the recompiled program misses the applied change")
	}
}
