package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Retention says which events the log keeps; an event goes once either
// limit passes it. Zero fields set no limit, so the zero Retention keeps
// everything. The policy log goes by Age alone (its entries have no
// revision).
type Retention struct {
	// Age keeps the events of the revisions committed within this long.
	Age time.Duration
	// Revisions keeps the events of this many latest revisions.
	Revisions int64
}

// pruneLock is the PostgreSQL advisory lock key that keeps pruning to one
// replica at a time.
const pruneLock int64 = 0x5377_7964_5052_4e45 // "SwydPRNE"

// pruneChunk bounds how many events one pruning transaction deletes.
const pruneChunk = 10000

// PruneEvents deletes the events that r no longer keeps and moves the event
// horizon past them, in chunks of one transaction each, so readers that
// asked for them learn that they are gone (ErrEventsPruned). When another
// replica is pruning at the same time it does nothing. Then it deletes the
// policy log entries older than r.Age the same way. It returns how many
// events and entries it deleted.
func (s *Store) PruneEvents(ctx context.Context, r Retention) (int64, error) {
	var total int64
	for _, chunk := range []func(context.Context, Retention) (int64, bool, error){s.pruneChunk, s.prunePolicyLogChunk} {
		for {
			n, more, err := chunk(ctx, r)
			total += n
			if err != nil {
				return total, err
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

// withPruneLock runs fn in a transaction holding the pruning advisory lock;
// when another replica holds it, it does nothing.
func (s *Store) withPruneLock(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, pruneLock).Scan(&locked); err != nil || !locked {
			return err
		}
		return fn(tx)
	})
}

// prunePolicyLogChunk deletes a chunk of the policy log entries older than
// r.Age under the advisory lock.
func (s *Store) prunePolicyLogChunk(ctx context.Context, r Retention) (deleted int64, more bool, err error) {
	if r.Age <= 0 {
		return 0, false, nil
	}
	err = s.withPruneLock(ctx, func(tx pgx.Tx) error {
		deleted, more, err = prunePolicyLog(ctx, tx, r.Age)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("prune policy log: %w", err)
	}
	return deleted, more, nil
}

// pruneChunk deletes up to about pruneChunk events under the advisory lock;
// more says whether there are more to delete.
func (s *Store) pruneChunk(ctx context.Context, r Retention) (deleted int64, more bool, err error) {
	if r.Age <= 0 && r.Revisions <= 0 {
		return 0, false, nil
	}
	err = s.withPruneLock(ctx, func(tx pgx.Tx) error {
		var horizon, cut int64
		if err := tx.QueryRow(ctx, `SELECT pruned_through FROM event_horizon FOR UPDATE`).Scan(&horizon); err != nil {
			return err
		}
		if r.Revisions > 0 {
			if err := tx.QueryRow(ctx, `SELECT revision - $1 FROM sy_revision`, r.Revisions).Scan(&cut); err != nil {
				return err
			}
		}
		if r.Age > 0 {
			// The first event (in revision order) that is young enough ends
			// what the age limit prunes. Walking the index from the horizon
			// reads only the events that go, and one more.
			var young *int64
			err := tx.QueryRow(ctx, `SELECT revision FROM events WHERE revision > $1 AND at >= now() - make_interval(secs => $2)
				ORDER BY revision, seq LIMIT 1`, horizon, r.Age.Seconds()).Scan(&young)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				// Every event is old enough: prune up to the last one.
				var last *int64
				if err := tx.QueryRow(ctx, `SELECT max(revision) FROM events WHERE revision > $1`, horizon).Scan(&last); err != nil {
					return err
				}
				if last != nil {
					cut = max(cut, *last)
				}
			case err != nil:
				return err
			default:
				cut = max(cut, *young-1)
			}
		}
		if cut <= horizon {
			return nil
		}
		// One chunk ends at the revision of the pruneChunk-th event, so a
		// long backlog goes in many short transactions.
		var chunkEnd *int64
		err := tx.QueryRow(ctx, `SELECT revision FROM events WHERE revision > $1 ORDER BY revision, seq OFFSET $2 LIMIT 1`,
			horizon, pruneChunk-1).Scan(&chunkEnd)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if chunkEnd != nil && *chunkEnd < cut {
			cut, more = *chunkEnd, true
		}
		tag, err := tx.Exec(ctx, `DELETE FROM events WHERE revision > $1 AND revision <= $2`, horizon, cut)
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected()
		_, err = tx.Exec(ctx, `UPDATE event_horizon SET pruned_through = $1`, cut)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("prune events: %w", err)
	}
	return deleted, more, nil
}

// PruneEventsEvery prunes the event log with r at once and then every
// interval, until ctx ends. Failures are logged; the next round retries.
func (s *Store) PruneEventsEvery(ctx context.Context, r Retention, interval time.Duration) {
	if r.Age <= 0 && r.Revisions <= 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		n, err := s.PruneEvents(ctx, r)
		switch {
		case err != nil && ctx.Err() == nil:
			slog.Warn("event log: prune failed", "err", err)
		case n > 0:
			slog.Info("event log: pruned", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
