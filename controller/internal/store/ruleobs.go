package store

import (
	"context"
	"fmt"
	"net/netip"
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
// rule (an agent still running an older program, or garbage). Counters are
// written only when they changed; a heartbeat with the same counters writes
// nothing.

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
				m[compile.RuleCookie(id, d.dir, i)] = ruleRef{policyID: id, dir: d.dir, index: i}
				m[compile.ConnCookie(id, d.dir, i)] = ruleRef{policyID: id, dir: d.dir, index: i, conn: true}
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

// obsRows are the observations of a batch's reports as the columns of its
// statements, cookies mapped to rules; unknown cookies are left out.
type obsRows struct {
	// rule_counters
	cHost, cPolicy, cDir []string
	cCookie, cPackets    []int64
	cBytes               []int64
	cRule                []int32
	cConn                []bool
	// policy_log
	lHost, lPolicy, lDir, lVerdict, lProto []string
	lAt                                    []any
	lRule, lSrcPort, lDstPort              []int32
	lSrc, lDst                             []netip.Addr
}

func (r *obsRows) add(x *ruleIndex, host string, o obsReport) {
	for c, s := range o.stats {
		ref, ok := x.byCookie[c]
		if !ok {
			continue
		}
		r.cHost, r.cPolicy, r.cDir = append(r.cHost, host), append(r.cPolicy, ref.policyID), append(r.cDir, ref.dir)
		r.cCookie, r.cPackets, r.cBytes = append(r.cCookie, int64(c)), append(r.cPackets, s.Packets), append(r.cBytes, s.Bytes)
		r.cRule, r.cConn = append(r.cRule, int32(ref.index)), append(r.cConn, ref.conn)
	}
	for _, l := range o.log {
		ref, ok := x.byCookie[l.cookie]
		if !ok || ref.conn {
			continue
		}
		r.lHost, r.lPolicy, r.lDir = append(r.lHost, host), append(r.lPolicy, ref.policyID), append(r.lDir, ref.dir)
		r.lVerdict, r.lProto, r.lAt = append(r.lVerdict, l.verdict), append(r.lProto, l.Protocol), append(r.lAt, l.Time)
		r.lRule, r.lSrcPort, r.lDstPort = append(r.lRule, int32(ref.index)), append(r.lSrcPort, int32(l.srcP)), append(r.lDstPort, int32(l.dstP))
		r.lSrc, r.lDst = append(r.lSrc, l.src), append(r.lDst, l.dst)
	}
}

// queue adds the batch's statements: counters upserted (a smaller value
// than the last reported is a reset: all of it is new; unchanged rows are
// not written), log entries inserted with the container names of their
// addresses, and one notification on PolicyLogChannel when any landed.
// Rows of hosts or policies that are gone are left out by the joins.
func (r *obsRows) queue(b *pgx.Batch) {
	if len(r.cHost) > 0 {
		b.Queue(`INSERT INTO rule_counters AS rc (host_id, cookie, policy_id, direction, rule, conn, last_packets, last_bytes, packets, bytes)
			SELECT h.id, u.cookie, p.id, u.dir, u.rule, u.conn, u.packets, u.bytes, u.packets, u.bytes
			FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::bool[], $7::bigint[], $8::bigint[])
				AS u(host, cookie, policy, dir, rule, conn, packets, bytes)
			JOIN hosts h ON h.name = u.host JOIN policies p ON p.id = u.policy
			ON CONFLICT (host_id, cookie) DO UPDATE SET
				packets = rc.packets + CASE WHEN excluded.last_packets < rc.last_packets OR excluded.last_bytes < rc.last_bytes
					THEN excluded.last_packets ELSE excluded.last_packets - rc.last_packets END,
				bytes = rc.bytes + CASE WHEN excluded.last_packets < rc.last_packets OR excluded.last_bytes < rc.last_bytes
					THEN excluded.last_bytes ELSE excluded.last_bytes - rc.last_bytes END,
				last_packets = excluded.last_packets, last_bytes = excluded.last_bytes, updated_at = now()
			WHERE (rc.last_packets, rc.last_bytes) IS DISTINCT FROM (excluded.last_packets, excluded.last_bytes)`,
			r.cHost, r.cCookie, r.cPolicy, r.cDir, r.cRule, r.cConn, r.cPackets, r.cBytes)
	}
	if len(r.lHost) > 0 {
		b.Queue(`WITH ins AS (
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
	}
}

// PolicyLogChannel is notified (payload: the highest entry id) when policy
// log entries were committed.
const PolicyLogChannel = "switchyard_policy_log"
