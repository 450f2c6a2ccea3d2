package store

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/openapi"
)

// Host readiness is stored (hosts.ready, migration 00007), not computed on
// read, because the compiler needs it (an egress IP moves off a NotReady
// host) and every replica's compiler must see it change at the same
// revision. Both flips are ordinary writes with a "host" updated event
// (no audit entry: nobody did it), so the nodes manager feeds them to its
// compiler as PutHost like any host change:
//   - NotReady: every replica sweeps every ReadinessSweep; a host that is
//     Ready without a report for HeartbeatTimeout is flipped in one write
//     (a cheap read first: most sweeps find nothing and write nothing).
//     So a host goes NotReady at most HeartbeatTimeout + ReadinessSweep
//     (+ one write) after its last report.
//   - Ready: the report of a NotReady host flips it back before the report
//     is answered.
// Both re-check under the write's locks (the revision row, which report
// batches take too), so replicas racing to flip a host flip it once.

// staleHosts is the condition of a Ready host whose agent has not reported
// within $1 seconds.
const staleHosts = `ready AND (last_seen IS NULL OR last_seen < now() - make_interval(secs => $1))`

// sweepLoop flips stale hosts NotReady until the store closes.
func (s *Store) sweepLoop() {
	defer close(s.swept)
	tick := time.NewTicker(s.opts.ReadinessSweep)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	// While the database cannot be reached, no agent's report can land;
	// once it answers again, every host gets one heartbeat timeout to
	// report before any is flipped NotReady, so an outage of the database
	// does not turn every host NotReady (and move egress IPs) when it ends.
	failing, resumed := false, time.Time{}
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if failing || time.Since(resumed) < s.opts.HeartbeatTimeout {
			if err := s.Pool.Ping(ctx); err != nil {
				failing = true
				continue
			}
			if failing {
				failing, resumed = false, time.Now()
				slog.Info("store: the database answers again; hosts get one heartbeat timeout to report before the readiness sweep resumes",
					"timeout", s.opts.HeartbeatTimeout)
			}
			if time.Since(resumed) < s.opts.HeartbeatTimeout {
				continue
			}
		}
		if _, err := s.SweepReadiness(ctx); err != nil && ctx.Err() == nil && !unmigrated(err) {
			failing = Unavailable(err) != nil
			slog.Warn("store: host readiness sweep", "err", err)
		}
	}
}

// unmigrated reports an error of a schema that migration 00007 has not
// reached yet (the store may be opened before Migrate runs).
func unmigrated(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42703" || pgErr.Code == "42P01")
}

// SweepReadiness flips every Ready host that has not reported within the
// heartbeat timeout to NotReady, with a host event each, and returns their
// names. Every store runs it every ReadinessSweep on its own.
func (s *Store) SweepReadiness(ctx context.Context) ([]string, error) {
	timeout := s.opts.HeartbeatTimeout.Seconds()
	stale, err := exists(ctx, s.Pool, `SELECT 1 FROM hosts WHERE `+staleHosts+` LIMIT 1`, timeout)
	if err != nil || !stale {
		return nil, err
	}
	var names []string
	_, err = s.Write(ctx, "controller", func(tx *Tx) error {
		names = nil
		return s.flipReady(tx, `SELECT id::text FROM hosts WHERE `+staleHosts+` ORDER BY name FOR UPDATE`, false, &names, timeout)
	})
	return names, err
}

// markReady flips host Ready if it is NotReady and has reported within the
// heartbeat timeout (a report of it just landed).
func (s *Store) markReady(ctx context.Context, host string) error {
	_, err := s.Write(ctx, "node:"+host, func(tx *Tx) error {
		return s.flipReady(tx, `SELECT id::text FROM hosts WHERE name = $2 AND NOT ready
			AND last_seen >= now() - make_interval(secs => $1) FOR UPDATE`, true, nil, s.opts.HeartbeatTimeout.Seconds(), host)
	})
	return err
}

// flipReady sets ready to the hosts query selects (and locks), with the
// write's revision and an updated event each; names, when not nil,
// receives their names. Nothing selected: nothing written.
func (s *Store) flipReady(tx *Tx, query string, ready bool, names *[]string, args ...any) error {
	rows, err := tx.Query(tx.ctx, query, args...)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return err
	}
	rev, err := tx.Rev()
	if err != nil {
		return err
	}
	if _, err := tx.Exec(tx.ctx, `UPDATE hosts SET ready = $2, revision = $3 WHERE id = ANY($1::uuid[])`, ids, ready, rev); err != nil {
		return err
	}
	for _, id := range ids {
		h, err := s.hosts.get(tx.ctx, tx, id, "", false)
		if err != nil {
			return err
		}
		if names != nil {
			*names = append(*names, h.Name)
		}
		if err := tx.Event("host", openapi.EventUpdated, h.ID, h.Name, "", h); err != nil {
			return err
		}
	}
	return nil
}
