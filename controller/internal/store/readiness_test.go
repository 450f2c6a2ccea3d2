package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/migrations"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// hostEvents returns the host events after revision since, decoded.
func hostEvents(t *testing.T, st *Store, since int64) []openapi.Host {
	t.Helper()
	evs, err := st.EventsSince(context.Background(), since, []string{"host"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []openapi.Host
	for _, e := range evs {
		var h openapi.Host
		if err := json.Unmarshal(e.Object, &h); err != nil {
			t.Fatal(err)
		}
		if e.Action != openapi.EventUpdated || h.Revision != e.Revision {
			t.Fatalf("host event %+v: want updated, at the object's revision", e)
		}
		out = append(out, h)
	}
	return out
}

func revision(t *testing.T, st *Store) int64 {
	t.Helper()
	r, err := st.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A host starts NotReady; its first report flips it Ready with one host
// event (later reports write nothing); past the heartbeat timeout a sweep
// flips it NotReady with one event (a second sweep writes nothing); its
// next report flips it back.
func TestReadinessFlips(t *testing.T) {
	// Sweeps are run by hand here: the store's own never comes.
	st, _ := newStore(t, Options{HeartbeatTimeout: 300 * time.Millisecond, ReadinessSweep: time.Hour})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.168.7.1")
	mkHost(t, st, "h2", "192.168.7.2")
	status := func(name string) string {
		t.Helper()
		h, err := st.GetHost(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return h.Status
	}
	if status("h1") != openapi.HostNotReady {
		t.Fatal("a host that never reported is Ready")
	}
	from := revision(t, st)
	for range 3 {
		if err := st.ReportStatus(ctx, "h1", openapi.NodeStatus{}); err != nil {
			t.Fatal(err)
		}
	}
	evs := hostEvents(t, st, from)
	if len(evs) != 1 || evs[0].Name != "h1" || evs[0].Status != openapi.HostReady || status("h1") != openapi.HostReady {
		t.Fatalf("after reports: events %+v, status %s", evs, status("h1"))
	}
	if names, err := st.SweepReadiness(ctx); err != nil || len(names) != 0 {
		t.Fatalf("a sweep within the timeout flipped %v (%v)", names, err)
	}
	time.Sleep(400 * time.Millisecond) // past the heartbeat timeout
	from = revision(t, st)
	names, err := st.SweepReadiness(ctx)
	if err != nil || fmt.Sprint(names) != "[h1]" {
		t.Fatalf("sweep flipped %v (%v), want [h1]", names, err)
	}
	if names, err := st.SweepReadiness(ctx); err != nil || len(names) != 0 {
		t.Fatalf("a second sweep flipped %v (%v)", names, err)
	}
	evs = hostEvents(t, st, from)
	if len(evs) != 1 || evs[0].Status != openapi.HostNotReady || status("h1") != openapi.HostNotReady || revision(t, st) != from+1 {
		t.Fatalf("after the sweep: events %+v, status %s", evs, status("h1"))
	}
	from = revision(t, st)
	if err := st.ReportStatus(ctx, "h1", openapi.NodeStatus{}); err != nil {
		t.Fatal(err)
	}
	if evs := hostEvents(t, st, from); len(evs) != 1 || evs[0].Status != openapi.HostReady {
		t.Fatalf("after the report: events %+v", evs)
	}
}

// The store's own sweep flips a host that stops reporting within the
// heartbeat timeout and about a second.
func TestReadinessSweepRuns(t *testing.T) {
	const timeout = 500 * time.Millisecond
	st, _ := newStore(t, Options{HeartbeatTimeout: timeout})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.168.7.1")
	if err := st.ReportStatus(ctx, "h1", openapi.NodeStatus{}); err != nil {
		t.Fatal(err)
	}
	h, err := st.GetHost(ctx, "h1")
	if err != nil || h.Status != openapi.HostReady || h.LastSeen == nil {
		t.Fatalf("after a report: %+v (%v)", h, err)
	}
	waitFor(t, "h1 NotReady", func() bool {
		h, err = st.GetHost(ctx, "h1")
		return err == nil && h.Status == openapi.HostNotReady
	})
	if late := time.Since(*h.LastSeen); late > timeout+1500*time.Millisecond {
		t.Fatalf("h1 went NotReady %s after its last report, timeout %s", late, timeout)
	}
}

// Concurrent claims of one port land once: every write group holds the
// revision row lock from its start to its commit, so the check of one and
// the write of another never interleave.
func TestPortClaimsRaceFree(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.168.7.1")
	mkNetwork(t, st, "blue", "10.1.0.0/24", 0)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, errs[i] = st.CreateContainer(ctx, "test", openapi.Container{Name: fmt.Sprint("c", i), Network: "blue", Host: "h1",
				Publish: []openapi.PublishedPort{{HostPort: 30000, Port: 80}}})
		}()
		go func() {
			defer wg.Done()
			_, errs[n+i] = st.CreateService(ctx, "test", openapi.Service{Name: fmt.Sprint("s", i), Network: "blue",
				Ports: []openapi.ServicePort{{Port: 80, NodePort: 30000}}})
		}()
	}
	wg.Wait()
	landed := 0
	for _, err := range errs {
		if err == nil {
			landed++
			continue
		}
		if pe, ok := problem.As(err); !ok || pe.Status != 409 {
			t.Fatalf("a losing claim: %v, want a 409", err)
		}
	}
	if landed != 1 {
		t.Fatalf("%d claims of 30000/TCP landed, want 1", landed)
	}
}

// Migration 00007 gives existing objects the defaults (hosts NotReady
// until their next report, egress on, no published or node ports, policy
// Cluster); down and up again works.
func TestExternalMigration(t *testing.T) {
	ctx := context.Background()
	st, p := migratedTo(t, 6)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mkHost(t, st, "h1", "192.168.7.1")
	mkNetwork(t, st, "blue", "10.1.0.0/24", 0)
	if err := st.ReportStatus(ctx, "h1", openapi.NodeStatus{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateContainer(ctx, "test", openapi.Container{Name: "web", Network: "blue", Host: "h1",
		Publish: []openapi.PublishedPort{{HostPort: 8080, Port: 80}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := st.GetHost(ctx, "h1")
	if err != nil || h.Status != openapi.HostNotReady {
		t.Fatalf("migrated host %+v (%v)", h, err)
	}
	n, err := st.GetNetwork(ctx, "blue")
	if err != nil || !n.EgressEnabled() || n.Egress == nil || n.EgressIP != "" {
		t.Fatalf("migrated network %+v (%v)", n, err)
	}
	c, err := st.GetContainer(ctx, "web", "blue")
	if err != nil || c.Publish != nil {
		t.Fatalf("migrated container %+v (%v)", c, err)
	}
	v, err := st.CreateService(ctx, "test", openapi.Service{Name: "web", Network: "blue", Ports: []openapi.ServicePort{{Port: 80}}})
	if err != nil || v.ExternalTrafficPolicy != openapi.TrafficCluster {
		t.Fatalf("service after the migration %+v (%v)", v, err)
	}
}

// migratedTo opens a store on the test database migrated to version only
// (for migration tests: write rows the old way, then Migrate); the
// provider moves it further up or down.
func migratedTo(t *testing.T, version int64) (*Store, *goose.Provider) {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, pgtest.DatabaseURL(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	db := stdlib.OpenDBFromPool(st.Pool)
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return st, p
}
