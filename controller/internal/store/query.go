package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/openapi"
)

// Querier is what reads need: the pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ListOptions filter and page a list.
type ListOptions struct {
	Selector selector.Selector
	Limit    int
	Continue string
	// Network and Host filter network-scoped kinds by name ("" = all).
	Network string
	Host    string
}

// MaxLimit caps one page.
const MaxLimit = 1000

// DefaultLimit is a page's size when none is asked for.
const DefaultLimit = 100

// cursor is the decoded continue token: the sort key of the last item served.
type cursor struct {
	Name string `json:"n"`
	ID   string `json:"i"`
}

func encodeCursor(name, id string) string {
	b, _ := json.Marshal(cursor{Name: name, ID: id})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor accepts only a token encodeCursor could have written: the
// canonical encoding of a name PostgreSQL can hold (UTF-8, no NUL, at most
// 253 bytes) and a UUID. Anything else is a 400 before any SQL runs.
func decodeCursor(s string) (cursor, error) {
	var c cursor
	bad := problem.Invalid("continue", "malformed continue token: pass the continue value of the previous page unchanged")
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, bad
	}
	if !isUUID(c.ID) || len(c.Name) > 253 || !utf8.ValidString(c.Name) || strings.ContainsRune(c.Name, 0) ||
		encodeCursor(c.Name, c.ID) != s {
		return c, bad
	}
	return c, nil
}

// kind describes how one object kind is read: the same code lists, gets and
// resolves hosts, networks, containers, services and policies.
type kind[T any] struct {
	name  string // singular, as in events and problems: "container"
	alias string // table alias used in from and filters: "x"
	// from is "SELECT <columns> FROM <table> x JOIN ..." without WHERE.
	from string
	// scoped kinds have names unique per network; their from joins networks as n.
	scoped bool
	// hosted kinds join hosts as h.
	hosted bool
	scan   func(pgx.Row) (T, error)
	key    func(*T) (name, id string)
	meta   func(*T) *openapi.Meta
	// network names the object's network ("" for unscoped kinds).
	network func(*T) string
}

// where builds the WHERE clause of a list.
func (k *kind[T]) where(o ListOptions, args []any) (string, []any, error) {
	conds := []string{}
	var c string
	c, args = o.Selector.SQL(k.alias+".labels", args)
	conds = append(conds, c)
	if o.Network != "" && k.scoped {
		args = append(args, o.Network)
		conds = append(conds, fmt.Sprintf("n.name = $%d", len(args)))
	}
	if o.Host != "" && k.hosted {
		args = append(args, o.Host)
		conds = append(conds, fmt.Sprintf("h.name = $%d", len(args)))
	}
	if o.Continue != "" {
		cur, err := decodeCursor(o.Continue)
		if err != nil {
			return "", nil, err
		}
		args = append(args, cur.Name, cur.ID)
		conds = append(conds, fmt.Sprintf("(%s.name, %s.id) > ($%d, $%d::uuid)", k.alias, k.alias, len(args)-1, len(args)))
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// list returns one page and the continue token of the next ("" on the last).
func (k *kind[T]) list(ctx context.Context, q Querier, o ListOptions) ([]T, string, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	if o.Limit > MaxLimit {
		o.Limit = MaxLimit
	}
	where, args, err := k.where(o, nil)
	if err != nil {
		return nil, "", err
	}
	sql := fmt.Sprintf("%s%s ORDER BY %s.name, %s.id LIMIT %d", k.from, where, k.alias, k.alias, o.Limit+1)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", err
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return k.scan(r) })
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > o.Limit {
		items = items[:o.Limit]
		name, id := k.key(&items[len(items)-1])
		next = encodeCursor(name, id)
	}
	if items == nil {
		items = []T{}
	}
	return items, next, nil
}

// all returns every object matching o, without paging.
func (k *kind[T]) all(ctx context.Context, q Querier, o ListOptions) ([]T, error) {
	where, args, err := k.where(o, nil)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, k.from+where, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return k.scan(r) })
}

// get resolves ref (an id or a name; network narrows a scoped name). With
// lock, the row is locked for update until the transaction ends.
func (k *kind[T]) get(ctx context.Context, q Querier, ref, network string, lock bool) (T, error) {
	var zero T
	args := []any{ref}
	cond := fmt.Sprintf("%s.name = $1", k.alias)
	if isUUID(ref) {
		args = append(args, ref)
		cond = fmt.Sprintf("(%s.id = $2::uuid OR %s.name = $1)", k.alias, k.alias)
	}
	if k.scoped && network != "" {
		args = append(args, network)
		cond += fmt.Sprintf(" AND n.name = $%d", len(args))
	}
	sql := k.from + " WHERE " + cond + " LIMIT 2"
	if lock {
		sql += " FOR UPDATE OF " + k.alias
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return zero, err
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return k.scan(r) })
	if err != nil {
		return zero, err
	}
	switch len(items) {
	case 0:
		return zero, problem.NotFound("%s %q not found", k.name, ref)
	case 1:
		return items[0], nil
	}
	// A uuid-looking name and an id may both match: the id wins.
	for _, it := range items {
		if _, id := k.key(&it); id == ref {
			return it, nil
		}
	}
	return zero, problem.Conflict("network", "%s name %q is used in several networks: add ?network=", k.name, ref)
}

// getForWrite resolves ref, locks its row until the transaction ends, and
// enforces If-Match (ifMatch 0: no precondition).
func (k *kind[T]) getForWrite(ctx context.Context, q Querier, ref, network string, ifMatch int64) (T, error) {
	cur, err := k.get(ctx, q, ref, network, true)
	if err != nil {
		return cur, err
	}
	return cur, checkMatch(ifMatch, k.meta(&cur).Revision)
}

// IsNotFound reports whether err is a 404 problem.
func IsNotFound(err error) bool {
	pe, ok := problem.As(err)
	return ok && pe.Status == 404
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}
