package store

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// Policy observability in node reports: the counters of the counted policy
// flows (ruleStats) and the logged connections (policyLog). Both name a
// rule by its flow cookie; the reporter maps cookies back to (policy,
// direction, rule index) with an index of every current rule's cookies,
// rebuilt only when the policies changed, and ignores cookies of no current
// rule (an agent still running an older program, or garbage). A host's
// counters are one row, written only when they changed: a heartbeat writes
// at most one row per host, and none with the same counters.

// Cookie bits of the counted policy flows (compile's).
const (
	CookieCounted = compile.CookieCounted
	CookieConn    = compile.CookieConn
)

// RuleCookies are the cookies of rule index of direction dir of a policy
// (compile.RuleCookie and ConnCookie): rule on its verdict flow for packets
// of known connections, conn on its verdict flow for new connections. The
// rule's packets and bytes are the sum of both; conn's packets are the
// connections it decided.
func RuleCookies(policyID, dir string, index int) (rule, conn uint64) {
	return compile.RuleCookie(policyID, dir, index), compile.ConnCookie(policyID, dir, index)
}

// ruleRef is what a cookie stands for.
type ruleRef struct {
	policyID, dir string
	index         int
	conn          bool
}

// ruleIndex maps the cookies of every current policy rule to the rule. It
// belongs to the report loop (one goroutine): no lock.
type ruleIndex struct {
	rev      int64 // the global revision it was checked at
	count    int64 // policies, and the highest revision among them, when built
	maxRev   int64
	byCookie map[uint64]ruleRef
}

// refresh makes the index current at global revision rev, in tx (which
// holds the revision row: no policy changes meanwhile). It rebuilds only
// when the policies' count or highest revision moved: any create or update
// raises the highest revision, a delete alone lowers the count.
func (x *ruleIndex) refresh(ctx context.Context, tx pgx.Tx, rev int64) error {
	if x.byCookie != nil && x.rev == rev {
		return nil
	}
	var count, maxRev int64
	if err := tx.QueryRow(ctx, `SELECT count(*), COALESCE(max(revision), 0) FROM policies`).Scan(&count, &maxRev); err != nil {
		return err
	}
	if x.byCookie != nil && count == x.count && maxRev == x.maxRev {
		x.rev = rev
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id::text, COALESCE(jsonb_array_length(ingress), 0), COALESCE(jsonb_array_length(egress), 0) FROM policies`)
	if err != nil {
		return err
	}
	m := map[uint64]ruleRef{}
	var id string
	var nIn, nEg int
	_, err = pgx.ForEachRow(rows, []any{&id, &nIn, &nEg}, func() error {
		for _, d := range []struct {
			dir string
			n   int
		}{{compile.DirIngress, nIn}, {compile.DirEgress, nEg}} {
			for i := range d.n {
				rule, conn := RuleCookies(id, d.dir, i)
				m[rule] = ruleRef{policyID: id, dir: d.dir, index: i}
				m[conn] = ruleRef{policyID: id, dir: d.dir, index: i, conn: true}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	*x = ruleIndex{rev: rev, count: count, maxRev: maxRev, byCookie: m}
	return nil
}

// obsReport is the observability part of one report, checked.
type obsReport struct {
	stats map[uint64]openapi.RuleStat // by cookie: the last of duplicates
	log   []logRecord
}

type logRecord struct {
	openapi.PolicyLogRecord
	cookie       uint64
	src, dst     netip.Addr
	srcP, dstP   int
	verdict, dir string
}

// checkObservations checks a report's ruleStats and policyLog: bounds,
// cookies, addresses, ports, enums. A problem names the field.
func checkObservations(st openapi.NodeStatus) (obsReport, error) {
	var o obsReport
	if len(st.RuleStats) > openapi.MaxRuleStats {
		return o, problem.Invalid("ruleStats", "ruleStats has %d entries, at most %d are taken", len(st.RuleStats), openapi.MaxRuleStats)
	}
	if len(st.PolicyLog) > openapi.MaxPolicyLog {
		return o, problem.Invalid("policyLog", "policyLog has %d entries, at most %d are taken", len(st.PolicyLog), openapi.MaxPolicyLog)
	}
	if err := checkEndpoints(st.Endpoints); err != nil {
		return o, err
	}
	if len(st.RuleStats) > 0 {
		o.stats = make(map[uint64]openapi.RuleStat, len(st.RuleStats))
	}
	for i, s := range st.RuleStats {
		f := fmt.Sprintf("ruleStats[%d]", i)
		c, err := parseCookie(f+".cookie", s.Cookie)
		if err != nil {
			return o, err
		}
		if s.Packets < 0 || s.Bytes < 0 {
			return o, problem.Invalid(f, "counters must not be negative")
		}
		o.stats[c] = s
	}
	for i, r := range st.PolicyLog {
		f := fmt.Sprintf("policyLog[%d]", i)
		rec := logRecord{PolicyLogRecord: r, srcP: r.SrcPort, dstP: r.DstPort, verdict: r.Verdict, dir: r.Direction}
		var err error
		if rec.cookie, err = parseCookie(f+".cookie", r.Cookie); err != nil {
			return o, err
		}
		if r.Time.IsZero() {
			return o, problem.Invalid(f+".time", "time is required")
		}
		if r.Verdict != openapi.VerdictAllow && r.Verdict != openapi.VerdictDeny {
			return o, problem.Invalid(f+".verdict", "verdict must be allow or deny")
		}
		if r.Direction != compile.DirIngress && r.Direction != compile.DirEgress {
			return o, problem.Invalid(f+".direction", "direction must be ingress or egress")
		}
		if r.Protocol == "" || len(r.Protocol) > 4 {
			return o, problem.Invalid(f+".protocol", "protocol must be TCP, UDP, SCTP, ICMP or an IP protocol number")
		}
		if rec.src, err = parseIPv4(f+".srcIP", r.SrcIP); err != nil {
			return o, err
		}
		if rec.dst, err = parseIPv4(f+".dstIP", r.DstIP); err != nil {
			return o, err
		}
		for _, p := range []struct {
			name string
			v    int
		}{{"srcPort", r.SrcPort}, {"dstPort", r.DstPort}} {
			if p.v < 0 || p.v > 65535 {
				return o, problem.Invalid(f+"."+p.name, "%s must be 0..65535", p.name)
			}
		}
		o.log = append(o.log, rec)
	}
	return o, nil
}

// parseCookie reads "0x" and 1..16 lower-case hexadecimal digits.
func parseCookie(field, s string) (uint64, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || h == "" || len(h) > 16 || strings.Trim(h, "0123456789abcdef") != "" {
		return 0, problem.Invalid(field, "a cookie is 0x and 1 to 16 lower-case hexadecimal digits")
	}
	return strconv.ParseUint(h, 16, 64)
}

// counter is one cookie's counters as stored: the switch's last values,
// then the totals over resets.
type counter [4]int64 // last packets, last bytes, packets, bytes

// advance returns c after the switch reported s: the increase is added, or
// all of s when a counter went down (the switch restarted).
func (c counter) advance(s openapi.RuleStat) counter {
	if s.Packets < c[0] || s.Bytes < c[1] {
		return counter{s.Packets, s.Bytes, c[2] + s.Packets, c[3] + s.Bytes}
	}
	return counter{s.Packets, s.Bytes, c[2] + s.Packets - c[0], c[3] + s.Bytes - c[1]}
}

// hostCounters are one host's stored counters by cookie.
type hostCounters map[uint64]counter

// scanHostCounters reads a rule_counters row's arrays.
func scanHostCounters(cookies, vals []int64) hostCounters {
	m := make(hostCounters, len(cookies))
	for i, c := range cookies {
		if 4*i+4 <= len(vals) {
			m[uint64(c)] = counter(vals[4*i : 4*i+4])
		}
	}
	return m
}

// arrays returns the row's arrays, by cookie.
func (m hostCounters) arrays() (cookies, vals []int64) {
	keys := slices.Sorted(maps.Keys(m))
	cookies, vals = make([]int64, 0, len(keys)), make([]int64, 0, 4*len(keys))
	for _, c := range keys {
		v := m[c]
		cookies, vals = append(cookies, int64(c)), append(vals, v[:]...)
	}
	return cookies, vals
}

// writeCounters updates the stored counters of the hosts in stats (each
// host's last report) with one read and one batch of writes: cookies of no
// current rule are left out (and dropped from the row), rows that did not
// change are not written. The report batch holds the revision row, so no
// other batch writes these rows meanwhile.
func writeCounters(ctx context.Context, tx pgx.Tx, x *ruleIndex, stats map[string]map[uint64]openapi.RuleStat) error {
	hosts := slices.Sorted(maps.Keys(stats))
	old := map[string]hostCounters{}
	rows, err := tx.Query(ctx, `SELECT h.name, rc.cookies, rc.counters FROM rule_counters rc JOIN hosts h ON h.id = rc.host_id
		WHERE h.name = ANY($1)`, hosts)
	if err != nil {
		return err
	}
	var name string
	var cookies, vals []int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &cookies, &vals}, func() error {
		old[name] = scanHostCounters(cookies, vals)
		return nil
	}); err != nil {
		return err
	}
	var b pgx.Batch
	for _, h := range hosts {
		prev, next := old[h], hostCounters{}
		for c, s := range stats[h] {
			if _, ok := x.byCookie[c]; ok {
				next[c] = prev[c].advance(s)
			}
		}
		for c, v := range prev {
			if _, known := x.byCookie[c]; known {
				if _, reported := next[c]; !reported {
					next[c] = v // not on the switch now: keep its totals
				}
			}
		}
		if maps.Equal(prev, next) {
			continue
		}
		cs, vs := next.arrays()
		b.Queue(`INSERT INTO rule_counters (host_id, cookies, counters) SELECT id, $2, $3 FROM hosts WHERE name = $1
			ON CONFLICT (host_id) DO UPDATE SET cookies = excluded.cookies, counters = excluded.counters, updated_at = now()`, h, cs, vs)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// logRows are the log records of a batch's reports as the columns of their
// statement, cookies mapped to rules; unknown cookies are left out.
type logRows struct {
	lHost, lPolicy, lDir, lVerdict, lProto []string
	lAt                                    []any
	lRule, lSrcPort, lDstPort              []int32
	lSrc, lDst                             []netip.Addr
}

func (r *logRows) add(x *ruleIndex, host string, log []logRecord) {
	for _, l := range log {
		ref, ok := x.byCookie[l.cookie] // RuleCookie by the contract; a ConnCookie names the rule too
		if !ok {
			continue
		}
		r.lHost, r.lPolicy, r.lDir = append(r.lHost, host), append(r.lPolicy, ref.policyID), append(r.lDir, ref.dir)
		r.lVerdict, r.lProto, r.lAt = append(r.lVerdict, l.verdict), append(r.lProto, l.Protocol), append(r.lAt, l.Time)
		r.lRule, r.lSrcPort, r.lDstPort = append(r.lRule, int32(ref.index)), append(r.lSrcPort, int32(l.srcP)), append(r.lDstPort, int32(l.dstP))
		r.lSrc, r.lDst = append(r.lSrc, l.src), append(r.lDst, l.dst)
	}
}

// write inserts the entries with the container names of their addresses,
// and notifies PolicyLogChannel once when any landed. Entries of hosts or
// policies that are gone are left out by the joins.
func (r *logRows) write(ctx context.Context, tx pgx.Tx) error {
	if len(r.lHost) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `WITH ins AS (
			INSERT INTO policy_log (at, host, policy_id, direction, rule, verdict, protocol,
				src_ip, src_port, src_container, dst_ip, dst_port, dst_container)
			SELECT u.at, u.host, p.id, u.dir, u.rule, u.verdict, u.proto, u.src, u.sport,
				COALESCE((SELECT c.name FROM containers c WHERE c.network_id = p.network_id AND c.ip = u.src LIMIT 1), ''),
				u.dst, u.dport,
				COALESCE((SELECT c.name FROM containers c WHERE c.network_id = p.network_id AND c.ip = u.dst LIMIT 1), '')
			FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::timestamptz[],
				$8::inet[], $9::int[], $10::inet[], $11::int[]) WITH ORDINALITY
				AS u(host, policy, dir, rule, verdict, proto, at, src, sport, dst, dport, ord)
			JOIN hosts h ON h.name = u.host JOIN policies p ON p.id = u.policy
			ORDER BY u.ord
			RETURNING id)
		SELECT CASE WHEN count(*) > 0 THEN pg_notify($12, max(id)::text) END FROM ins`,
		r.lHost, r.lPolicy, r.lDir, r.lRule, r.lVerdict, r.lProto, r.lAt, r.lSrc, r.lSrcPort, r.lDst, r.lDstPort, PolicyLogChannel)
	return err
}

// PolicyLogChannel is notified (payload: the highest entry id) when policy
// log entries were committed.
const PolicyLogChannel = "switchyard_policy_log"
