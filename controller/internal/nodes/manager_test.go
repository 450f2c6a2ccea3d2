package nodes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// fixture is a manager on a real store of its own. Tests drive it step by
// step (load, catchUp) instead of running it, so nothing races them.
type fixture struct {
	t   *testing.T
	ctx context.Context
	st  *store.Store
	m   *Manager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.DatabaseURL(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, st: st, m: New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	return f
}

func (f *fixture) host(name, addr string) {
	f.t.Helper()
	if _, err := f.st.CreateHost(f.ctx, "test", openapi.Host{Name: name, Address: addr, TunnelType: "geneve"}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) network(name, cidr string) {
	f.t.Helper()
	if _, err := f.st.CreateNetwork(f.ctx, "test", openapi.Network{Name: name, CIDR: cidr}); err != nil {
		f.t.Fatal(err)
	}
}

// container creates a container and returns its revision.
func (f *fixture) container(name, network, host string) int64 {
	f.t.Helper()
	c, err := f.st.CreateContainer(f.ctx, "test", openapi.Container{Name: name, Network: network, Host: host})
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Revision
}

func (f *fixture) deleteContainer(name string) int64 {
	f.t.Helper()
	rev, err := f.st.DeleteContainer(f.ctx, "test", name, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return rev
}

func (f *fixture) load() {
	f.t.Helper()
	if err := f.m.load(f.ctx, "test"); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) catchUp() {
	f.t.Helper()
	if err := f.m.catchUp(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// poll is one long-poll that must answer at once (ctx already ended, so a
// poll that would wait returns nil).
func (f *fixture) poll(host, digest string) *openapi.ProgramUpdate {
	f.t.Helper()
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	up, err := f.m.next(ctx, host, digest, -1)
	if err != nil {
		f.t.Fatal(err)
	}
	return up
}

// truth is the program of host compiled from scratch from the store.
func (f *fixture) truth(host string) *openapi.Program {
	f.t.Helper()
	in, err := f.st.LoadIntent(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return compile.Compile(&compile.Snapshot{Revision: in.Revision, Hosts: in.Hosts, Networks: in.Networks,
		Containers: in.Containers, Services: in.Services, Policies: in.Policies})[host]
}

// sameContent fails unless a and b are the same program but for Revision.
func sameContent(t *testing.T, what string, a, b *openapi.Program) {
	t.Helper()
	if a == nil || b == nil {
		t.Fatalf("%s: program missing (%v, %v)", what, a != nil, b != nil)
	}
	x, y := *a, *b
	x.Revision, y.Revision = 0, 0
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("%s: programs differ: digests %s and %s, %d and %d flows", what, a.Digest, b.Digest, len(a.Flows), len(b.Flows))
	}
}

// twoHosts: network blue on h1 and h2, a container on h1.
func twoHosts(t *testing.T) *fixture {
	f := newFixture(t)
	f.network("blue", "10.10.0.0/24")
	f.host("h1", "192.168.200.11")
	f.host("h2", "192.168.200.12")
	f.container("a", "blue", "h1")
	f.load()
	return f
}

// An agent one change behind gets the delta; a digest the host never had
// (none, garbage) gets the whole program; its own digest gets nothing.
// (history_test.go: agents further behind.)
func TestDeltaOrFull(t *testing.T) {
	f := twoHosts(t)
	up := f.poll("h1", "")
	if up == nil || !up.Full || up.Program == nil {
		t.Fatalf("first poll: %+v", up)
	}
	d1 := up.Program.Digest
	if up := f.poll("h1", d1); up != nil {
		t.Fatalf("poll at the current digest answered %+v", up)
	}
	rev := f.container("b", "blue", "h1")
	f.catchUp()
	up = f.poll("h1", d1)
	if up == nil || up.Full || up.Delta == nil || up.Delta.FromDigest != d1 || up.Revision != rev {
		t.Fatalf("one change behind: %+v", up)
	}
	d2 := up.Delta.Digest
	f.container("c", "blue", "h1")
	f.catchUp()
	for _, digest := range []string{"", "00ff"} {
		up := f.poll("h1", digest)
		if up == nil || !up.Full || up.Delta != nil {
			t.Fatalf("poll from %q: %+v", digest, up)
		}
		sameContent(t, "full program", up.Program, f.truth("h1"))
	}
	if up := f.poll("h1", d2); up.Delta == nil || up.Delta.FromDigest != d2 {
		t.Fatalf("one change behind again: %+v", up)
	}
	// An unknown host is a 404.
	if _, err := f.m.next(f.ctx, "h9", "", -1); !isStatus(err, 404) {
		t.Fatalf("unknown host: %v", err)
	}
}

func isStatus(err error, status int) bool {
	p, ok := problem.As(err)
	return ok && p.Status == status
}

// A change on h1 alone does not wake h2's long-poll; a change on h2 does.
func TestUnrelatedChangeDoesNotWake(t *testing.T) {
	f := newFixture(t)
	f.network("blue", "10.10.0.0/24")
	f.network("red", "10.20.0.0/24")
	f.host("h1", "192.168.200.11")
	f.host("h2", "192.168.200.12")
	f.container("a", "blue", "h1")
	f.container("z", "red", "h2")
	f.load()
	d2 := f.poll("h2", "").Program.Digest
	_, _, wake, err := f.m.peek("h2", d2, -1)
	if err != nil || wake == nil {
		t.Fatalf("peek: %v", err)
	}
	f.container("b", "blue", "h1")
	f.catchUp()
	select {
	case <-wake:
		t.Fatal("h2's long-poll woke for a change on h1 only")
	default:
	}
	f.container("y", "red", "h2")
	f.catchUp()
	<-wake // closed by the change on h2, or the test hangs
	if up := f.poll("h2", d2); up == nil || up.Delta == nil {
		t.Fatalf("h2 after its change: %+v", up)
	}
}

// A compiler that panics, or finds its bookkeeping inconsistent, while the
// manager holds its lock: the lock is released, the host gets a correct
// program from a recompile, and other hosts' long-polls keep working.
func TestCompilerFailureRecompiles(t *testing.T) {
	for _, mode := range []string{"panic", "error"} {
		t.Run(mode, func(t *testing.T) {
			f := twoHosts(t)
			f.container("b", "blue", "h1")
			f.catchUp()
			failures := 0
			f.m.programOf = func(c *compile.Compiler, host string) (*openapi.Program, error) {
				if host == "h1" && failures == 0 {
					failures++
					if mode == "panic" {
						panic("injected bookkeeping bug")
					}
					return nil, fmt.Errorf("%w: injected", compile.ErrInconsistent)
				}
				return c.Program(host)
			}
			done := make(chan *openapi.ProgramUpdate)
			go func() { done <- f.poll("h1", "") }()
			var up *openapi.ProgramUpdate
			select {
			case up = <-done:
			case <-time.After(time.Minute): // a deadlock guard, not a timing
				t.Fatal("the long-poll of h1 never answered")
			}
			if failures != 1 || up == nil || !up.Full {
				t.Fatalf("failures %d, update %+v", failures, up)
			}
			sameContent(t, "h1 after the recompile", up.Program, f.truth("h1"))
			// The lock is free: h2's long-poll and an ack still work.
			go func() { done <- f.poll("h2", "") }()
			select {
			case up = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the manager's lock is still held")
			}
			sameContent(t, "h2", up.Program, f.truth("h2"))
			f.m.noteAck(store.StatusNotice{Host: "h2", Applied: up.Revision, Digest: up.Program.Digest})
			// And it keeps following the store.
			f.container("c", "blue", "h1")
			f.catchUp()
			sameContent(t, "h1 after a later change", f.poll("h1", "").Program, f.truth("h1"))
			if got := testutil.ToFloat64(f.m.metrics.reloads.WithLabelValues("inconsistent")); got != 1 {
				t.Fatalf("inconsistent reloads %v, want 1", got)
			}
		})
	}
}

// An event this replica cannot read does not leave its compiler silently
// behind: it is reported as diverged (readyz, metrics) and reloads from the
// store, after which the program holds the change.
func TestUnreadableEventReloads(t *testing.T) {
	f := twoHosts(t)
	rev := f.container("b", "blue", "h1")
	if _, err := f.st.Pool.Exec(f.ctx, `UPDATE events SET object = '{"ip": 5}' WHERE revision = $1`, rev); err != nil {
		t.Fatal(err)
	}
	if err := f.m.catchUp(f.ctx); err == nil {
		t.Fatal("catch-up over an unreadable event succeeded")
	}
	if err := f.m.Healthy(); err == nil {
		t.Fatal("healthy after an unreadable event")
	}
	if got := testutil.ToFloat64(f.m.metrics.diverged); got != 1 {
		t.Fatalf("diverged gauge %v", got)
	}
	// Run's loop reloads once kicked; do what it does.
	select {
	case <-f.m.kick:
	default:
		t.Fatal("divergence did not kick the run loop")
	}
	if !f.m.reload(f.ctx, "diverged") {
		t.Fatal("reload failed")
	}
	if err := f.m.Healthy(); err != nil {
		t.Fatal(err)
	}
	sameContent(t, "h1 after the reload", f.poll("h1", "").Program, f.truth("h1"))
	if got := testutil.ToFloat64(f.m.metrics.reloads.WithLabelValues("diverged")); got != 1 {
		t.Fatalf("diverged reloads %v", got)
	}
	if n, err := testutil.GatherAndCount(registry(t, f.m), "switchyard_nodes_compiler_diverged", "switchyard_nodes_compiler_reloads_total"); err != nil || n != 3 { // the gauge, reloads by "test" and "diverged"
		t.Fatalf("gathered %d metrics: %v", n, err)
	}
}

func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	if err := r.Register(c); err != nil {
		t.Fatal(err)
	}
	return r
}

// stateOf returns host's realization state for rev.
func (f *fixture) stateOf(host string, rev int64) string {
	f.t.Helper()
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	states, done := f.m.states(rev)
	if !done {
		f.t.Fatalf("manager not at revision %d", rev)
	}
	for _, s := range states {
		if s.Host == host {
			return s.State
		}
	}
	return "untouched"
}

// Realization needs every touched host to have applied a program at least
// as new, however many changes came after; a degraded apply is not
// realized; an unrelated host is not waited for.
func TestRealization(t *testing.T) {
	f := twoHosts(t)
	f.m.noteAck(store.StatusNotice{Host: "h1", Applied: f.m.rev})
	w := f.container("b", "blue", "h1")
	for i := 0; i < histLen+6; i++ { // push w out of the kept history
		f.container(fmt.Sprint("x", i), "blue", "h1")
		f.deleteContainer(fmt.Sprint("x", i))
	}
	f.catchUp()
	if got := f.stateOf("h1", w); got != stateBehind {
		t.Fatalf("h1 for revision %d beyond the history: %s, want behind", w, got)
	}
	err := f.m.WaitRealized(f.ctx, w, time.Millisecond)
	p, ok := problem.As(err)
	if !ok || p.Status != 504 || !reflect.DeepEqual(p.Extra["hosts"], []string{"h1"}) {
		t.Fatalf("wait: %v %+v", err, p)
	}
	if states := p.Extra["states"].([]HostState); len(states) != 1 || states[0].State != stateBehind {
		t.Fatalf("states %+v", states)
	}
	// h2 has no container of blue: no change on h1 touches it.
	if got := f.stateOf("h2", f.m.rev); got != "untouched" {
		t.Fatalf("h2: %s", got)
	}

	// The port of the container created at w failed: degraded, and the
	// wait answers at once with a 502 and the states.
	cur := f.poll("h1", "")
	b := f.m.ctrsAt[w]
	full := store.StatusNotice{Host: "h1", Applied: cur.Revision, Digest: cur.Program.Digest}
	withFailed := full
	withFailed.FailedContainers = b
	f.m.noteAck(withFailed)
	if got := f.stateOf("h1", w); got != stateDegraded || len(b) != 1 {
		t.Fatalf("failed port of the change's container %v: %s", b, got)
	}
	p, ok = problem.As(f.m.WaitRealized(f.ctx, w, time.Minute))
	if !ok || p.Status != 502 || !reflect.DeepEqual(p.Extra["hosts"], []string{"h1"}) ||
		!reflect.DeepEqual(p.Extra["states"], []HostState{{Host: "h1", State: stateDegraded, AppliedRevision: cur.Revision}}) {
		t.Fatalf("wait on a degraded host: %+v", p)
	}
	// A failed port of a container the change did not touch is not its
	// business; an apply that failed on the current program is.
	withFailed.FailedContainers = []string{"00000000-0000-0000-0000-000000000000"}
	f.m.noteAck(withFailed)
	if got := f.stateOf("h1", w); got != stateRealized {
		t.Fatalf("unrelated failed port: %s", got)
	}
	failedApply := full
	failedApply.Applied, failedApply.ApplyFailed = w-1, true
	f.m.noteAck(failedApply)
	if got := f.stateOf("h1", w); got != stateDegraded {
		t.Fatalf("failed apply of the current program: %s", got)
	}
	f.m.noteAck(full)
	if got := f.stateOf("h1", w); got != stateRealized {
		t.Fatalf("applied: %s", got)
	}
	if err := f.m.WaitRealized(f.ctx, w, time.Minute); err != nil {
		t.Fatal(err)
	}

	// After a reload every program counts as changed at the load; an agent
	// that runs the current program (same digest, older revision) is
	// realized, one that reports an older program is not.
	f.load()
	if got := f.stateOf("h1", f.m.rev); got != stateRealized {
		t.Fatalf("current digest after a reload: %s", got)
	}
	f.m.noteAck(store.StatusNotice{Host: "h1", Applied: w, Digest: "00"})
	if got := f.stateOf("h1", f.m.rev); got != stateBehind {
		t.Fatalf("older program after a reload: %s", got)
	}
}

// Only revisions the controller sent are accepted in a report, and the
// stored applied revision follows the reports.
func TestReportRevisions(t *testing.T) {
	f := twoHosts(t)
	f.container("b", "blue", "h2") // h1's program changes too: now at m.rev
	f.catchUp()
	h1 := f.poll("h1", "")
	f.container("c", "blue", "h2")
	f.container("d", "blue", "h2")
	f.catchUp()
	if now := f.poll("h1", "").Revision; now == h1.Revision {
		t.Fatal("h1's program did not change")
	}
	f.host("h3", "192.168.200.13") // h1's program stays
	f.catchUp()
	cur := f.poll("h1", "")
	global := f.m.rev
	report := func(rev int64, digest string) error {
		st := openapi.NodeStatus{AppliedRevision: rev, Digest: digest, Ports: []openapi.PortStatus{}}
		if err := f.m.checkReport(f.ctx, "h1", st); err != nil {
			return err
		}
		return f.st.ReportStatus(f.ctx, "h1", st)
	}
	for _, bad := range []struct {
		rev    int64
		digest string
		field  string
	}{
		{global + 1000, cur.Program.Digest, "appliedRevision"}, // never sent
		{global, "00ff", "appliedRevision"},                    // not h1's program at that revision
		{-1, "", "appliedRevision"},
		{cur.Revision, "not hex", "digest"},
	} {
		err := report(bad.rev, bad.digest)
		if p, ok := problem.As(err); !ok || p.Status != 400 || p.Field != bad.field {
			t.Fatalf("report %d %q: %v, want a 400 naming %s", bad.rev, bad.digest, err, bad.field)
		}
	}
	// The current program at the current revision (a replica that loaded
	// since sends that), at its own revision, and an older one.
	for _, ok := range []struct {
		rev    int64
		digest string
	}{{global, cur.Program.Digest}, {cur.Revision, cur.Program.Digest}, {h1.Revision, h1.Program.Digest}} {
		if err := report(ok.rev, ok.digest); err != nil {
			t.Fatalf("report %d: %v", ok.rev, err)
		}
	}
	acks, err := f.st.HostAcks(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if acks["h1"].Applied != h1.Revision {
		t.Fatalf("stored applied revision %d, want the last report's %d", acks["h1"].Applied, h1.Revision)
	}
	if !strings.Contains(store.StatusNotice{Host: "h1", Applied: 3}.String(), "h1 3 ") {
		t.Fatal("notice format")
	}
	for _, n := range []store.StatusNotice{
		{Host: "h1", Applied: 7, Digest: "abc", ApplyFailed: true, FailedContainers: []string{"x", "y"}},
		{Host: "h1", Applied: 7, FailedAll: true},
	} {
		if got, ok := store.ParseStatusNotice(n.String()); !ok || !reflect.DeepEqual(got, n) {
			t.Fatalf("notice %+v: %q parsed as %+v", n, n.String(), got)
		}
	}
	if n, ok := store.ParseStatusNotice("h1 7"); !ok || n.Applied != 7 {
		t.Fatalf("old notice: %+v", n)
	}
}

// Run itself notices a divergence, reloads from the store and is healthy
// again, and keeps following the store afterwards.
func TestRunReloadsAfterDivergence(t *testing.T) {
	f := twoHosts(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go f.m.Run(ctx)
	f.waitFor(func() bool { return testutil.ToFloat64(f.m.metrics.reloads.WithLabelValues("start")) == 1 })
	// An event of a kind no compiler knows, at a revision of its own.
	if _, err := f.st.Pool.Exec(f.ctx, `WITH r AS (UPDATE sy_revision SET revision = revision + 1 RETURNING revision)
		INSERT INTO events (revision, kind, action, object_id, name, object)
		SELECT revision, 'gadget', 'created', gen_random_uuid(), 'g', '{}' FROM r`); err != nil {
		t.Fatal(err)
	}
	f.m.poke()
	f.waitFor(func() bool {
		return testutil.ToFloat64(f.m.metrics.reloads.WithLabelValues("diverged")) == 1 && f.m.Healthy() == nil
	})
	f.container("b", "blue", "h1")
	rev, err := f.st.Revision(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(func() bool { return f.m.revision() >= rev })
	sameContent(t, "h1 after the reload and a change", f.poll("h1", "").Program, f.truth("h1"))
}

// waitFor waits until cond holds, re-checking whenever the manager makes
// progress (a new revision, a load, an ack).
func (f *fixture) waitFor(cond func() bool) {
	f.t.Helper()
	deadline := time.After(time.Minute) // a hang guard, not a timing
	for {
		f.m.mu.Lock()
		progress := f.m.progress
		f.m.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-progress:
		case <-deadline:
			f.t.Fatal("the manager made no progress towards the condition")
		}
	}
}

// A long-poll for a host created a moment ago is not a 404 while this
// replica has not caught up with the host yet: it waits for the catch-up.
func TestNewHostLongPoll(t *testing.T) {
	f := twoHosts(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go f.m.Run(ctx)
	f.waitFor(func() bool { return testutil.ToFloat64(f.m.metrics.reloads.WithLabelValues("start")) == 1 })
	f.host("h3", "192.168.200.13")
	pollCtx, stop := context.WithTimeout(f.ctx, time.Minute) // a hang guard
	defer stop()
	up, err := f.m.next(pollCtx, "h3", "", -1)
	if err != nil || up == nil || !up.Full {
		t.Fatalf("poll of a new host: %+v %v", up, err)
	}
	sameContent(t, "h3", up.Program, f.truth("h3"))
	// A host that does not exist is still a 404.
	if _, err := f.m.next(pollCtx, "h9", "", -1); !isStatus(err, 404) {
		t.Fatalf("unknown host: %v", err)
	}
}
