package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/openapi"
)

// Two replicas on one database, each committing groups that mix writes which
// bump the revision early (network updates) with writes that lock a network
// row later (container creates): before the revision lock was taken first,
// one replica's group held the revision row and waited for a network row
// that the other held while waiting for the revision row, and PostgreSQL
// aborted one with 40P01, which reached the client as a 500.
func TestReplicasWriteConcurrentlyWithoutDeadlock(t *testing.T) {
	a, url := newStore(t, Options{})
	b := openStore(t, url, Options{})
	ctx := context.Background()
	mkHost(t, a, "h1", "192.0.2.1")
	nets := []string{"n1", "n2", "n3"}
	for i, n := range nets {
		mkNetwork(t, a, n, fmt.Sprintf("10.%d.0.0/16", i+1), 0)
	}
	const workers, rounds = 6, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*rounds*2)
	for r, st := range []*Store{a, b} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					// Each worker touches the networks in its own order.
					n := nets[(w+i+r)%len(nets)]
					m := nets[(w+2*i+1)%len(nets)]
					_, err := st.UpdateNetwork(ctx, "test", n, 0, openapi.Network{Labels: map[string]string{"r": fmt.Sprintf("%d-%d-%d", r, w, i)}})
					if err != nil {
						errs <- fmt.Errorf("update %s: %w", n, err)
					}
					_, err = st.CreateContainer(ctx, "test", openapi.Container{Name: fmt.Sprintf("c-%d-%d-%d", r, w, i), Network: m, Host: "h1"})
					if err != nil {
						errs <- fmt.Errorf("create in %s: %w", m, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d writes failed", n, 2*2*workers*rounds)
	}
}

// A deadlock the lock order cannot rule out (another transaction that locks
// a row a write needs, then waits for the revision row) is retried: the
// write's group is rolled back whole and runs again, and its caller sees no
// error.
func TestWriteRetriesDeadlock(t *testing.T) {
	st, url := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.0.2.1")
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	// The other side checks for deadlocks much later than the write does
	// (1 s by default), so PostgreSQL aborts the write whatever the load
	// on the machine: which side is aborted is not left to timing.
	if _, err := tx.Exec(ctx, `SET LOCAL deadlock_timeout = '60s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM hosts WHERE name = 'h1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.UpdateHost(ctx, "test", "h1", 0, openapi.Host{Labels: map[string]string{"a": "b"}})
		done <- err
	}()
	// Wait until the write's group (holding the revision row) waits for the
	// host row, then close the cycle: the write's deadlock check runs first
	// (see deadlock_timeout above), so it is the one PostgreSQL aborts.
	for {
		var waiting bool
		if err := st.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		runtime.Gosched()
	}
	if _, err := tx.Exec(ctx, `UPDATE sy_revision SET revision = revision + 1`); err != nil {
		t.Fatalf("the other transaction was aborted instead of the write: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the write failed instead of being retried: %v", err)
	}
	h, err := st.GetHost(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Labels["a"] != "b" {
		t.Fatalf("the retried write did not land: labels %v", h.Labels)
	}
}

// A write whose statement runs too long fails alone, with a 503, and the
// writes grouped with it land: no request holds the writer for long.
func TestSlowWriteFailsAlone(t *testing.T) {
	saved := statementTimeout
	statementTimeout = 50 * time.Millisecond
	t.Cleanup(func() { statementTimeout = saved })
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	slow := make(chan error, 1)
	go func() {
		_, err := st.Write(ctx, "test", func(tx *Tx) error {
			_, err := tx.Exec(tx.ctx, `SELECT pg_sleep(30)`)
			return err
		})
		slow <- err
	}()
	mkHost(t, st, "h1", "192.0.2.1")
	wantStatus(t, <-slow, 503)
	if _, err := st.GetHost(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
}
