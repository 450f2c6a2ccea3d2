package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// EventsSince returns up to limit events after revision since, in order,
// optionally only of the given kinds.
func (s *Store) EventsSince(ctx context.Context, since int64, kinds []string, limit int) ([]openapi.Event, error) {
	args := []any{since, limit}
	cond := ""
	if len(kinds) > 0 {
		args = append(args, kinds)
		cond = " AND kind = ANY($3)"
	}
	rows, err := s.Pool.Query(ctx, `SELECT revision, kind, action, object_id::text, name, network, object, at FROM events
		WHERE revision > $1`+cond+` ORDER BY seq LIMIT $2`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (openapi.Event, error) {
		var e openapi.Event
		err := r.Scan(&e.Revision, &e.Kind, &e.Action, &e.ID, &e.Name, &e.Network, &e.Object, &e.At)
		return e, err
	})
}

// AuditOptions filter the audit log.
type AuditOptions struct {
	Kind, Actor string
	Limit       int
	Continue    string // the id of the last entry served
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

// Listen calls fn with the payload of every notification on channel, in
// order of arrival, until ctx ends. It reconnects on its own, and calls fn
// with "" after every (re)connect so callers catch up on what they missed.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("listen for changes: reconnecting", "channel", channel, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string)) error {
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
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
