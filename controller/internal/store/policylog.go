package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// PolicyStats returns the counters of every current rule of the policy ref
// (an id, or a name within network), summed over hosts and per host. Rules
// no host has reported yet show zeros.
func (s *Store) PolicyStats(ctx context.Context, ref, network string) (openapi.PolicyStats, error) {
	p, err := policies.get(ctx, s.Pool, ref, network, false)
	if err != nil {
		return openapi.PolicyStats{}, err
	}
	out := openapi.PolicyStats{Policy: p.Name, ID: p.ID, Network: p.Network, Rules: []openapi.PolicyRuleStats{}}
	type slot struct {
		rule int // position in out.Rules
		conn bool
	}
	slots := map[uint64]slot{} // cookie -> what it counts
	for _, d := range []struct {
		dir   string
		rules []openapi.PolicyRule
	}{{"ingress", p.Ingress}, {"egress", p.Egress}} {
		for i := range d.rules {
			rule, conn := RuleCookies(p.ID, d.dir, i)
			slots[rule] = slot{rule: len(out.Rules)}
			slots[conn] = slot{rule: len(out.Rules), conn: true}
			out.Rules = append(out.Rules, openapi.PolicyRuleStats{Rule: fmt.Sprintf("%s[%d]", d.dir, i), Direction: d.dir, Index: i,
				Hosts: []openapi.HostRuleStats{}})
		}
	}
	// Every host's row: reading them whole is cheaper than searching them.
	rows, err := s.Pool.Query(ctx, `SELECT h.name, rc.cookies, rc.counters FROM rule_counters rc JOIN hosts h ON h.id = rc.host_id
		ORDER BY h.name`)
	if err != nil {
		return out, err
	}
	var host string
	var cookies, vals []int64
	_, err = pgx.ForEachRow(rows, []any{&host, &cookies, &vals}, func() error {
		for c, v := range scanHostCounters(cookies, vals) {
			sl, ok := slots[c]
			if !ok {
				continue
			}
			r := &out.Rules[sl.rule]
			// Rows come by host: a host's part is the last one, or new.
			if len(r.Hosts) == 0 || r.Hosts[len(r.Hosts)-1].Host != host {
				r.Hosts = append(r.Hosts, openapi.HostRuleStats{Host: host})
			}
			h := &r.Hosts[len(r.Hosts)-1]
			// Both flows count the rule's packets; the new connections'
			// flow counts connections too.
			h.Packets, h.Bytes = h.Packets+v[2], h.Bytes+v[3]
			r.Packets, r.Bytes = r.Packets+v[2], r.Bytes+v[3]
			if sl.conn {
				h.Connections += v[2]
				r.Connections += v[2]
			}
		}
		return nil
	})
	return out, err
}

// PolicyLogOptions select a read of a policy's log.
type PolicyLogOptions struct {
	// After is a cursor: the entries after it. Since (when After is 0) is a
	// time: the entries seen at or after it.
	After int64
	Since time.Time
	Limit int
}

// ParsePolicyLogSince reads since= of a policy log read: a cursor (decimal
// digits, from an entry or a page) or an RFC 3339 time.
func ParsePolicyLogSince(raw string) (PolicyLogOptions, error) {
	var o PolicyLogOptions
	if raw == "" {
		return o, nil
	}
	if strings.Trim(raw, "0123456789") == "" {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return o, problem.Invalid("since", "since is out of range")
		}
		o.After = v
		return o, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return o, problem.Invalid("since", "since must be a cursor (decimal digits) or an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	o.Since = t
	return o, nil
}

const policyLogColumns = `l.id, l.at, l.host, p.name, p.id::text, n.name, l.direction, l.rule, l.verdict, l.protocol,
	host(l.src_ip), l.src_port, l.src_container, host(l.dst_ip), l.dst_port, l.dst_container
	FROM policy_log l JOIN policies p ON p.id = l.policy_id JOIN networks n ON n.id = p.network_id`

func scanPolicyLog(r pgx.CollectableRow) (openapi.PolicyLogEntry, error) {
	var e openapi.PolicyLogEntry
	var id int64
	err := r.Scan(&id, &e.Time, &e.Host, &e.Policy, &e.PolicyID, &e.Network, &e.Direction, &e.Index, &e.Verdict, &e.Protocol,
		&e.Source.IP, &e.Source.Port, &e.Source.Container, &e.Dest.IP, &e.Dest.Port, &e.Dest.Container)
	e.Cursor = strconv.FormatInt(id, 10)
	e.Rule = fmt.Sprintf("%s[%d]", e.Direction, e.Index)
	return e, err
}

// PolicyLog returns a page of the log of the policy ref, oldest first.
func (s *Store) PolicyLog(ctx context.Context, ref, network string, o PolicyLogOptions) (openapi.PolicyLogPage, error) {
	p, err := policies.get(ctx, s.Pool, ref, network, false)
	if err != nil {
		return openapi.PolicyLogPage{}, err
	}
	o.Limit = min(max(o.Limit, 1), MaxLimit)
	cond, arg := "l.id > $2", any(o.After)
	if o.After == 0 && !o.Since.IsZero() {
		cond, arg = "l.at >= $2", o.Since
	}
	rows, err := s.Pool.Query(ctx, `SELECT `+policyLogColumns+` WHERE l.policy_id = $1 AND `+cond+` ORDER BY l.id LIMIT $3`,
		p.ID, arg, o.Limit)
	if err != nil {
		return openapi.PolicyLogPage{}, err
	}
	items, err := pgx.CollectRows(rows, scanPolicyLog)
	if err != nil {
		return openapi.PolicyLogPage{}, err
	}
	page := openapi.PolicyLogPage{Items: items, Cursor: strconv.FormatInt(o.After, 10)}
	if page.Items == nil {
		page.Items = []openapi.PolicyLogEntry{}
	}
	if len(items) > 0 {
		page.Cursor = items[len(items)-1].Cursor
	} else if o.After == 0 {
		// Nothing since that time yet: go on from the newest entry.
		if err := s.Pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0)::text FROM policy_log`).Scan(&page.Cursor); err != nil {
			return page, err
		}
	}
	return page, nil
}

// PolicyLogHead is the cursor of the newest policy log entry of any policy
// (0 when there is none): a reader from it sees only what comes later.
func (s *Store) PolicyLogHead(ctx context.Context) (int64, error) {
	var id int64
	err := s.Pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM policy_log`).Scan(&id)
	return id, err
}

// PolicyLogAfter returns up to limit entries of every policy after cursor
// after, oldest first (the event stream's policy-log events).
func (s *Store) PolicyLogAfter(ctx context.Context, after int64, limit int) ([]openapi.PolicyLogEntry, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+policyLogColumns+` WHERE l.id > $1 ORDER BY l.id LIMIT $2`, after, max(limit, 1))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanPolicyLog)
}

// prunePolicyLog deletes up to pruneChunk policy log entries received
// longer than age ago; more says whether there may be more.
func prunePolicyLog(ctx context.Context, tx pgx.Tx, age time.Duration) (deleted int64, more bool, err error) {
	tag, err := tx.Exec(ctx, `DELETE FROM policy_log WHERE id IN (
		SELECT id FROM policy_log WHERE received_at < now() - make_interval(secs => $1) ORDER BY received_at LIMIT $2)`,
		age.Seconds(), pruneChunk)
	if err != nil {
		return 0, false, err
	}
	return tag.RowsAffected(), tag.RowsAffected() == pruneChunk, nil
}
