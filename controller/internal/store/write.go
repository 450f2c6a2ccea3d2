package store

import (
	"context"
	"errors"
	"time"
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

// commitGroup runs a group of writes in one transaction.
func (s *Store) commitGroup(group []*writeReq) {
	res := make([]writeRes, len(group))
	defer func() {
		for i, r := range group {
			r.done <- res[i]
		}
	}()
	fail := func(err error) {
		for i := range res {
			if res[i].err == nil {
				res[i] = writeRes{err: err}
			}
		}
	}
	// Statements run on the group's context, not a caller's: a caller that
	// goes away must not break the others' transaction.
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	pt, err := s.Pool.Begin(ctx)
	if err != nil {
		fail(unavailable(err))
		return
	}
	defer pt.Rollback(ctx) //nolint:errcheck // no-op after commit
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
				return
			}
		}
		tx := &Tx{Tx: pt, ctx: ctx, actor: r.actor, savepoint: savepoints}
		err := r.fn(tx)
		if err == nil {
			err = tx.flush()
		}
		if err != nil {
			res[i].err = mapError(err)
			if !savepoints {
				return
			}
			if _, err := pt.Exec(ctx, "ROLLBACK TO SAVEPOINT w"); err != nil {
				fail(err)
				return
			}
			continue
		}
		res[i].rev = tx.rev
		landed++
	}
	if landed == 0 {
		return
	}
	if err := pt.Commit(ctx); err != nil {
		fail(mapError(err))
		for i := range res {
			res[i].rev = 0
		}
	}
}
