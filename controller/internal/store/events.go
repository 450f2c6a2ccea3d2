package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// ErrEventsPruned is wrapped by the error of a read of the events after a
// revision that the retention has pruned events after: the log no longer
// holds everything that happened since, so the reader must start over from
// a snapshot of the intent.
var ErrEventsPruned = errors.New("events pruned")

// EventKinds are the kinds of object the event log records.
var EventKinds = []string{"host", "network", "container", "service", "policy", "endpoint"}

// eventsQuery reads one page of the event log: the events after revision $1,
// in (revision, seq) order, up to $2 of them and then the rest of the last
// revision, so that a page never ends inside a revision. ofKinds adds the
// filter on kind = ANY($3). The index on (revision, seq) serves both scans.
func eventsQuery(ofKinds bool) string {
	cond := "revision > $1"
	if ofKinds {
		cond += " AND kind = ANY($3)"
	}
	return `WITH last AS (
		SELECT revision FROM events WHERE ` + cond + ` ORDER BY revision, seq OFFSET $2 - 1 LIMIT 1)
	SELECT revision, kind, action, object_id::text, name, network, object, at FROM events
	WHERE ` + cond + ` AND revision <= COALESCE((SELECT revision FROM last), 9223372036854775807)
	ORDER BY revision, seq`
}

// EventPage is one read of the event log.
type EventPage struct {
	// Events are whole revisions, oldest first.
	Events []openapi.Event
	// Through is the revision the read is complete up to, for the kinds
	// asked for: the next read goes on after it. It may be past the last
	// event (revisions without events of those kinds).
	Through int64
}

// ReadEvents returns the events after revision since, oldest first,
// optionally only of the given kinds. It returns whole revisions: up to
// limit events, then every remaining event of the last revision it reached.
// It fails with ErrEventsPruned when events after since may have been
// pruned.
func (s *Store) ReadEvents(ctx context.Context, since int64, kinds []string, limit int) (EventPage, error) {
	limit = max(limit, 1)
	args := []any{since, limit}
	if len(kinds) > 0 {
		args = append(args, kinds)
	}
	var b pgx.Batch
	// The committed revision, read before the events: the read below sees
	// every event up to it (commit order is revision order).
	var head int64
	b.Queue(`SELECT revision FROM sy_revision`).QueryRow(func(r pgx.Row) error { return r.Scan(&head) })
	var evs []openapi.Event
	b.Queue(eventsQuery(len(kinds) > 0), args...).Query(func(rows pgx.Rows) error {
		var err error
		evs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (openapi.Event, error) {
			var e openapi.Event
			err := r.Scan(&e.Revision, &e.Kind, &e.Action, &e.ID, &e.Name, &e.Network, &e.Object, &e.At)
			return e, err
		})
		return err
	})
	// The horizon is read after the events: pruning deletes and moves the
	// horizon in one transaction, so a horizon at or below since here means
	// that the events read above were all there.
	var horizon int64
	b.Queue(`SELECT pruned_through FROM event_horizon`).QueryRow(func(r pgx.Row) error { return r.Scan(&horizon) })
	if err := s.Pool.SendBatch(ctx, &b).Close(); err != nil {
		return EventPage{}, err
	}
	if horizon > since {
		return EventPage{}, fmt.Errorf("%w: the events up to revision %d are no longer retained, revision %d is too old", ErrEventsPruned, horizon, since)
	}
	p := EventPage{Events: evs, Through: since}
	if len(evs) > 0 {
		p.Through = evs[len(evs)-1].Revision
	}
	if len(evs) < limit {
		// Not cut short: everything up to head was read.
		p.Through = max(p.Through, head)
	}
	return p, nil
}

// EventsSince returns the events of ReadEvents: a reader that continues
// after the revision of the last one misses nothing.
func (s *Store) EventsSince(ctx context.Context, since int64, kinds []string, limit int) ([]openapi.Event, error) {
	p, err := s.ReadEvents(ctx, since, kinds, limit)
	return p.Events, err
}

// EventHorizon returns the revision that the event log may be pruned up to:
// the events after it are all retained.
func (s *Store) EventHorizon(ctx context.Context) (int64, error) {
	var h int64
	err := s.Pool.QueryRow(ctx, `SELECT pruned_through FROM event_horizon`).Scan(&h)
	return h, err
}

// AuditOptions filter the audit log.
type AuditOptions struct {
	Kind, Actor string
	// Ref keeps the entries about the object of this id or name.
	Ref      string
	Limit    int
	Continue string // the id of the last entry served
}

// ListAudit returns audit entries, oldest first, one page at a time.
func (s *Store) ListAudit(ctx context.Context, o AuditOptions) ([]openapi.AuditEntry, string, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	if o.Limit > MaxLimit {
		o.Limit = MaxLimit
	}
	var after int64
	if o.Continue != "" {
		v, err := strconv.ParseInt(o.Continue, 10, 64)
		if err != nil || v < 0 {
			return nil, "", problem.Invalid("continue", "malformed continue token")
		}
		after = v
	}
	args := []any{after}
	conds := []string{"id > $1"}
	if o.Kind != "" {
		args = append(args, o.Kind)
		conds = append(conds, fmt.Sprintf("kind = $%d", len(args)))
	}
	if o.Actor != "" {
		args = append(args, o.Actor)
		conds = append(conds, fmt.Sprintf("actor = $%d", len(args)))
	}
	if o.Ref != "" {
		args = append(args, o.Ref)
		conds = append(conds, fmt.Sprintf("(object_id = $%d OR object_name = $%d)", len(args), len(args)))
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, revision, actor, action, kind, object_id, object_name, at FROM audit WHERE `+
		strings.Join(conds, " AND ")+fmt.Sprintf(" ORDER BY id LIMIT %d", o.Limit+1), args...)
	if err != nil {
		return nil, "", err
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (openapi.AuditEntry, error) {
		var a openapi.AuditEntry
		err := r.Scan(&a.ID, &a.Revision, &a.Actor, &a.Action, &a.Kind, &a.ObjectID, &a.ObjectName, &a.At)
		return a, err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > o.Limit {
		items = items[:o.Limit]
		next = strconv.FormatInt(items[len(items)-1].ID, 10)
	}
	if items == nil {
		items = []openapi.AuditEntry{}
	}
	return items, next, nil
}

// listenBackOff paces Listen's reconnects (tests wrap it).
var listenBackOff = func() backoff.BackOff {
	b := backoff.NewExponentialBackOff() // jittered: ±50%
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // never give up
	return b
}

// Listen calls fn with the payload of every notification on channel, in
// order of arrival, until ctx ends. It reconnects on its own, after a
// jittered exponential backoff that starts over once a connection listens,
// and calls fn with "" after every (re)connect so callers catch up on what
// they missed.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) {
	b := listenBackOff()
	listen := func() error {
		err := s.listenOnce(ctx, channel, fn, b.Reset)
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		return err
	}
	_ = backoff.RetryNotify(listen, backoff.WithContext(b, ctx), func(err error, in time.Duration) {
		slog.Warn("listen for changes: reconnecting", "channel", channel, "err", err, "in", in)
	})
}

// listenOnce listens on one connection until it fails; listening calls
// after LISTEN took effect.
func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string), listening func()) error {
	pc, err := s.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A listening connection is never returned to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.Background()) //nolint:errcheck // closing
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	listening()
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
