package store

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Writes go through one writer goroutine per store that commits them in
// groups: every write still runs whole or not at all, with its own revision,
// events and audit rows, but the writes waiting together share one
// transaction and one WAL flush. Each write runs under its own savepoint, so
// one that fails is rolled back alone. Under load this turns N commits (and
// N waits on the network and revision row locks) into one.

// maxGroup bounds how many writes share a commit.
const maxGroup = 64

// groupTimeout bounds one group's transaction.
const groupTimeout = 30 * time.Second

// statementTimeout bounds each statement of a write once its group holds the
// revision lock: a write that cannot finish its work in that time fails alone
// (its savepoint is rolled back) instead of stalling every other write. A
// variable for tests.
var statementTimeout = 5 * time.Second

// revisionLockWait bounds, on the client side, a group's wait for the
// revision lock (the first statements of its transaction): other groups
// hold it a few statements at a time, so a longer wait means a server that
// stopped answering (hung, or its host gone without a TCP reset), and the
// group fails (503, nothing written) before the request deadline (10 s)
// instead of holding its writers for the group's whole timeout.
const revisionLockWait = 8 * time.Second

// A group aborted for a deadlock or serialization failure runs again up to
// maxRetries times, after a jittered exponential backoff from retryInitial
// up to retryMax.
const (
	maxRetries   = 5
	retryInitial = 10 * time.Millisecond
	retryMax     = 500 * time.Millisecond
)

var errRetry = errors.New("store: retry the group")

// retryBackOff paces the runs again of a transaction that PostgreSQL aborted
// for a deadlock or serialization failure (write groups and report batches).
func retryBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = retryInitial, retryMax
	b.MaxElapsedTime = 0 // bounded by the number of attempts
	return backoff.WithMaxRetries(b, maxRetries)
}

type writeReq struct {
	ctx   context.Context
	actor string
	fn    func(*Tx) error
	done  chan writeRes
}

type writeRes struct {
	rev int64
	err error
}

var errClosed = errors.New("store: closed")

// Write runs fn in one transaction as actor, then notifies the other replicas
// of the new revision. Either everything fn did lands, or nothing. It
// returns the write's revision (0 when nothing was written). fn must not
// call Write.
func (s *Store) Write(ctx context.Context, actor string, fn func(*Tx) error) (int64, error) {
	req := &writeReq{ctx: ctx, actor: actor, fn: fn, done: make(chan writeRes, 1)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.stop:
		return 0, errClosed
	}
	// Once queued, the write's outcome is awaited even if ctx ends: the
	// answer must say whether it landed.
	r := <-req.done
	return r.rev, r.err
}

// writer takes queued writes in groups until the store closes.
func (s *Store) writer() {
	defer close(s.stopped)
	for {
		var group []*writeReq
		select {
		case <-s.stop:
			return
		case r := <-s.writes:
			group = append(group, r)
		}
	drain:
		for len(group) < maxGroup {
			select {
			case r := <-s.writes:
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup runs a group of writes in one transaction, and runs the whole
// group again (bounded, with jittered backoff) when PostgreSQL aborted it for
// a deadlock or a serialization failure: those say nothing about the writes,
// only about their timing, so the callers never see them.
func (s *Store) commitGroup(group []*writeReq) {
	var res []writeRes
	attempts := 0
	_ = backoff.Retry(func() error {
		attempts++
		var retry bool
		res, retry = s.runGroup(group)
		if retry {
			return errRetry
		}
		return nil
	}, retryBackOff())
	if attempts > 1 {
		slog.Debug("write group retried", "attempts", attempts, "writes", len(group))
	}
	for i, r := range group {
		r.done <- res[i]
	}
}

// runGroup runs a group of writes in one transaction. retry reports that the
// transaction was aborted for a deadlock or serialization failure and rolled
// back whole, so the group may run again.
func (s *Store) runGroup(group []*writeReq) (res []writeRes, retry bool) {
	res = make([]writeRes, len(group))
	fail := func(err error) {
		retry = retry || retryable(err)
		for i := range res {
			if res[i].err == nil {
				res[i] = writeRes{err: mapError(err)}
			}
		}
	}
	// Statements run on the group's context, not a caller's: a caller that
	// goes away must not break the others' transaction.
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	// A connection is waited for a bounded time: with the database down,
	// the writes answer 503 at once instead of queueing behind each other.
	bctx, bcancel := context.WithTimeout(ctx, s.opts.AcquireTimeout)
	pt, err := s.Pool.Begin(bctx)
	bcancel()
	if err != nil {
		fail(unavailable(err))
		return res, false
	}
	defer pt.Rollback(ctx) //nolint:errcheck // no-op after commit
	// One lock order for every group on every replica: the revision row
	// first. A group that bumped the revision in one write and then waited
	// for a network row in the next could otherwise wait for a replica that
	// holds that network row and waits for the revision row (40P01). Every
	// group bumps the revision before it commits anyway, so this costs no
	// concurrency between groups; it only moves the wait to the start.
	// Then each statement is bounded, so no single write holds the writer
	// (and the revision lock) for long.
	var lb pgx.Batch
	lb.Queue(`SELECT revision FROM sy_revision FOR NO KEY UPDATE`)
	lb.Queue(`SELECT set_config('statement_timeout', $1, true)`, strconv.FormatInt(statementTimeout.Milliseconds(), 10))
	lctx, lcancel := context.WithTimeout(ctx, revisionLockWait)
	err = pt.SendBatch(lctx, &lb).Close()
	lcancel()
	if err != nil {
		fail(err)
		return res, retry
	}
	// Waiting for the revision lock (above) may take as long as other
	// replicas' groups; each statement from here on is bounded on the
	// client side too (unavailable.go), against a server that hangs.
	ctx = guardStatements(ctx)
	savepoints := len(group) > 1
	landed := 0
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			res[i].err = err
			continue
		}
		if savepoints {
			if _, err := pt.Exec(ctx, "SAVEPOINT w"); err != nil {
				fail(err)
				return res, retry
			}
		}
		tx := &Tx{Tx: pt, ctx: ctx, actor: r.actor, savepoint: savepoints}
		err := r.fn(tx)
		if err == nil {
			err = tx.flush()
		}
		if err != nil {
			if retryable(err) {
				// The locks this group holds are what the other party
				// waits for: give them all back and start again.
				fail(err)
				return res, true
			}
			res[i].err = mapError(err)
			if !savepoints {
				return res, false
			}
			if _, err := pt.Exec(ctx, "ROLLBACK TO SAVEPOINT w"); err != nil {
				fail(err)
				return res, retry
			}
			continue
		}
		res[i].rev = tx.rev
		landed++
	}
	if landed == 0 {
		return res, false
	}
	if err := pt.Commit(ctx); err != nil {
		for i := range res {
			res[i].rev = 0
		}
		if inDoubt(err) {
			err = errCommitInDoubt(err)
		}
		fail(err)
	}
	return res, retry
}

// retryable reports a deadlock or serialization failure: the transaction was
// rolled back and may simply run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
