package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/switchyard/switchyard/openapi"
)

// addRevision commits one revision with n events, named name0, name1, ...,
// of kind (alternating with "container" when kind is "mixed"), recorded age
// ago; it returns the revision.
func addRevision(t *testing.T, st *Store, n int, kind, name string, age time.Duration) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := st.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after commit
	var rev int64
	if err := tx.QueryRow(ctx, `UPDATE sy_revision SET revision = revision + 1 RETURNING revision`).Scan(&rev); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO events (revision, kind, action, object_id, name, object, at)
		SELECT $1, CASE WHEN $2 = 'mixed' THEN (CASE WHEN g % 2 = 0 THEN 'host' ELSE 'container' END) ELSE $2 END,
			'created', gen_random_uuid(), $3 || g, '{}', now() - make_interval(secs => $5)
		FROM generate_series(0, $4 - 1) g`, rev, kind, name, n, age.Seconds())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return rev
}

// readAll pages through the log from since as the node manager does: each
// page continues after the revision of the last event of the one before.
func readAll(t *testing.T, st *Store, since int64, kinds []string, limit int) []openapi.Event {
	t.Helper()
	var all []openapi.Event
	for {
		evs, err := st.EventsSince(context.Background(), since, kinds, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return all
		}
		if evs[0].Revision <= since {
			t.Fatalf("page after %d starts at %d", since, evs[0].Revision)
		}
		all = append(all, evs...)
		since = evs[len(evs)-1].Revision
	}
}

// A revision with more events than a page comes through whole: pages end
// between revisions, never inside one. Before, a page of 1,000 ended inside
// the revision of 2,500 and the next page, after that revision, skipped the
// other 1,500.
func TestEventsSinceWholeRevisions(t *testing.T) {
	st, _ := newStore(t, Options{})
	r1 := addRevision(t, st, 1, "host", "a", 0)
	r2 := addRevision(t, st, 2500, "mixed", "big", 0)
	r3 := addRevision(t, st, 3, "network", "c", 0)
	r4 := addRevision(t, st, 1, "container", "d", 0)

	first, err := st.EventsSince(context.Background(), 0, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2501 || first[len(first)-1].Revision != r2 {
		t.Fatalf("first page: %d events, last at revision %d; want 2501 up to revision %d", len(first), first[len(first)-1].Revision, r2)
	}
	count := func(evs []openapi.Event) map[int64]int {
		m := map[int64]int{}
		for i, e := range evs {
			m[e.Revision]++
			if i > 0 && e.Revision < evs[i-1].Revision {
				t.Fatalf("event %d: revision %d after %d", i, e.Revision, evs[i-1].Revision)
			}
		}
		return m
	}
	for _, limit := range []int{1, 2, 999, 1000, 5000} {
		got := count(readAll(t, st, 0, nil, limit))
		want := map[int64]int{r1: 1, r2: 2500, r3: 3, r4: 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: events per revision %v, want %v", limit, got, want)
		}
	}
	// The same with a kind filter, which keeps half of the big revision.
	got := count(readAll(t, st, 0, []string{"container"}, 1000))
	if want := map[int64]int{r2: 1250, r4: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("containers per revision %v, want %v", got, want)
	}
	// A read says how far it got: to the end of a full page, else to the
	// committed revision, past revisions without events of the kinds.
	for _, c := range []struct {
		since int64
		kinds []string
		limit int
		want  int64
	}{{0, nil, 1000, r2}, {0, nil, 5000, r4}, {0, []string{"policy"}, 10, r4}, {r2, []string{"host"}, 10, r4}} {
		if p, err := st.ReadEvents(context.Background(), c.since, c.kinds, c.limit); err != nil || p.Through != c.want {
			t.Errorf("read %d %v %d: through %d (%v), want %d", c.since, c.kinds, c.limit, p.Through, err, c.want)
		}
	}
	// Within a revision, events keep the order they were written in.
	big := readAll(t, st, r1, nil, 1000)[:2500]
	for i, e := range big {
		if e.Name != fmt.Sprint("big", i) {
			t.Fatalf("event %d of revision %d is %s", i, r2, e.Name)
		}
	}
}

// The catch-up read walks the (revision, seq) index from the revision on,
// without a sort and without reading history. Before, only revision had an
// index and the query ordered by seq.
func TestEventsQueryUsesIndex(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	if _, err := st.Pool.Exec(ctx, `INSERT INTO events (revision, kind, action, object_id, name, object)
		SELECT g, 'host', 'created', gen_random_uuid(), 'h' || g, '{}' FROM generate_series(1, 50000) g;
		UPDATE sy_revision SET revision = 50000; ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	for _, kinds := range [][]string{nil, {"container", "host"}} {
		args := []any{int64(49000), 500}
		if kinds != nil {
			args = append(args, kinds)
		}
		rows, err := st.Pool.Query(ctx, "EXPLAIN "+eventsQuery(kinds != nil), args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "events_revision_seq_idx") || strings.Contains(text, "Seq Scan") || strings.Contains(text, "Sort") {
			t.Errorf("kinds %v: the plan does not walk events_revision_seq_idx:\n%s", kinds, text)
		}
	}
}

// Pruning by age and by count moves the horizon; a read from before it is
// refused with ErrEventsPruned, a read from it on gets every event after.
func TestPruneEvents(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	var old []int64
	for i := range 3 {
		old = append(old, addRevision(t, st, 2, "host", fmt.Sprint("old", i), 2*time.Hour))
	}
	var young []int64
	for i := range 3 {
		young = append(young, addRevision(t, st, 1, "host", fmt.Sprint("young", i), 0))
	}
	n, err := st.PruneEvents(ctx, Retention{Age: time.Hour})
	if err != nil || n != 6 {
		t.Fatalf("pruned %d events (%v), want the 6 old ones", n, err)
	}
	if h, err := st.EventHorizon(ctx); err != nil || h != old[2] {
		t.Fatalf("horizon %d (%v), want %d", h, err, old[2])
	}
	for _, since := range []int64{0, old[0], old[2] - 1} {
		if _, err := st.EventsSince(ctx, since, nil, 100); !errors.Is(err, ErrEventsPruned) {
			t.Errorf("since %d: %v, want ErrEventsPruned", since, err)
		}
	}
	if evs := readAll(t, st, old[2], nil, 100); len(evs) != 3 || evs[0].Revision != young[0] {
		t.Fatalf("events after the horizon: %+v", evs)
	}
	// Nothing more to prune by age; the count limit cuts further.
	if n, err := st.PruneEvents(ctx, Retention{Age: time.Hour}); err != nil || n != 0 {
		t.Fatalf("second prune: %d %v", n, err)
	}
	if n, err := st.PruneEvents(ctx, Retention{Age: time.Hour, Revisions: 1}); err != nil || n != 2 {
		t.Fatalf("prune to the last revision: %d %v", n, err)
	}
	if evs, err := st.EventsSince(ctx, young[1], nil, 100); err != nil || len(evs) != 1 || evs[0].Revision != young[2] {
		t.Fatalf("after the count limit: %+v %v", evs, err)
	}
	// A long backlog goes in chunks, all of it (with young[2]).
	for range 3 {
		addRevision(t, st, pruneChunk, "host", "bulk", 2*time.Hour)
	}
	last := addRevision(t, st, 1, "host", "new", 0)
	if n, err := st.PruneEvents(ctx, Retention{Revisions: 1}); err != nil || n != 3*pruneChunk+1 {
		t.Fatalf("backlog: pruned %d (%v), want %d", n, err, 3*pruneChunk+1)
	}
	if evs := readAll(t, st, last-1, nil, 100); len(evs) != 1 {
		t.Fatalf("after the backlog: %+v", evs)
	}
}

// Pruning runs on one replica at a time: while another holds the lock, a
// prune does nothing.
func TestPruneEventsOneAtATime(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	addRevision(t, st, 5, "host", "x", 2*time.Hour)
	other, err := st.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1)`, pruneLock); err != nil {
		t.Fatal(err)
	}
	if n, err := st.PruneEvents(ctx, Retention{Age: time.Hour}); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) while another replica holds the lock", n, err)
	}
	if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1)`, pruneLock); err != nil {
		t.Fatal(err)
	}
	if n, err := st.PruneEvents(ctx, Retention{Age: time.Hour}); err != nil || n != 5 {
		t.Fatalf("pruned %d (%v) once the lock is free", n, err)
	}
}

// countingBackOff counts how Listen uses its backoff.
type countingBackOff struct {
	backoff.BackOff
	resets, waits atomic.Int32
}

func (c *countingBackOff) Reset()                     { c.resets.Add(1); c.BackOff.Reset() }
func (c *countingBackOff) NextBackOff() time.Duration { c.waits.Add(1); return c.BackOff.NextBackOff() }

// Listen comes back after its connection is killed, says so with "", and
// hears notifications again; its backoff starts over once it listens again
// (before, it was hand-rolled and never came down from 5 s once there).
func TestListenReconnects(t *testing.T) {
	st, _ := newStore(t, Options{})
	counting := &countingBackOff{BackOff: listenBackOff()}
	defer func(orig func() backoff.BackOff) { listenBackOff = orig }(listenBackOff)
	listenBackOff = func() backoff.BackOff { return counting }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.Listen(ctx, "sy_test", func(p string) { got <- p })
	}()
	next := func() string {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(30 * time.Second):
			t.Fatal("Listen said nothing")
			return ""
		}
	}
	for i := range 3 {
		if p := next(); p != "" {
			t.Fatalf("round %d: %q before the (re)connect notice", i, p)
		}
		if _, err := st.Pool.Exec(ctx, `SELECT pg_notify('sy_test', $1)`, fmt.Sprint("n", i)); err != nil {
			t.Fatal(err)
		}
		if p := next(); p != fmt.Sprint("n", i) {
			t.Fatalf("round %d: heard %q", i, p)
		}
		var killed int
		if err := st.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&killed); err != nil || killed != 1 {
			t.Fatalf("killed %d listening connections (%v)", killed, err)
		}
	}
	if p := next(); p != "" {
		t.Fatalf("%q before the last reconnect notice", p)
	}
	cancel()
	<-done
	// One wait per kill, and a fresh start at the first connect and after
	// every reconnect.
	if w, r := counting.waits.Load(), counting.resets.Load(); w != 3 || r < 4 {
		t.Fatalf("%d waits and %d resets, want 3 and at least 4", w, r)
	}
}
