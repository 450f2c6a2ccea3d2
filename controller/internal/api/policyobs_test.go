package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

func hexCookie(c uint64) string { return fmt.Sprintf("0x%x", c) }

// report posts a node report with observations as host's node token.
func (e *env) report(tok, host string, st openapi.NodeStatus) resp {
	e.t.Helper()
	if st.Ports == nil {
		st.Ports = []openapi.PortStatus{}
	}
	return e.do("POST", "/api/v1/nodes/"+host+"/status", st, withToken(tok))
}

func (e *env) stats(ref string, query ...string) map[string]openapi.PolicyRuleStats {
	e.t.Helper()
	var st openapi.PolicyStats
	e.must(200, "GET", "/api/v1/policies/"+ref+"/stats"+strings.Join(query, ""), nil).decode(e.t, &st)
	out := map[string]openapi.PolicyRuleStats{}
	for _, r := range st.Rules {
		out[r.Rule] = r
	}
	return out
}

func wantCounters(t *testing.T, what string, r openapi.PolicyRuleStats, packets, bytes, conns int64, hosts int) {
	t.Helper()
	if r.Packets != packets || r.Bytes != bytes || r.Connections != conns || len(r.Hosts) != hosts {
		t.Fatalf("%s: %+v, want %d packets %d bytes %d connections on %d hosts", what, r, packets, bytes, conns, hosts)
	}
}

// Rule counters from the agents' reports: summed over hosts with the
// per-host part, accumulated across reports, a smaller value taken as a
// reset, unknown cookies ignored (204, not counted), rules that no host
// reported at zero; oversized or malformed reports are 400 naming the field.
func TestPolicyStats(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.seedPods()
	n1, n2 := e.newToken("node-h1", "node", "h1"), e.newToken("node-h2", "node", "h2")
	var p openapi.Policy
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "web", "network": "blue", "selector": "ns=x", "log": true,
		"ingress": []map[string]any{{"peers": []map[string]any{{"selector": "ns=y"}}}, {}}, "egress": []any{map[string]any{}}}).decode(t, &p)
	if !p.Log {
		t.Fatalf("log not kept: %+v", p)
	}
	in0, in0conn := store.RuleCookies(p.ID, "ingress", 0)
	eg0, _ := store.RuleCookies(p.ID, "egress", 0)
	stat := func(c uint64, packets, bytes int64) openapi.RuleStat {
		return openapi.RuleStat{Cookie: hexCookie(c), Packets: packets, Bytes: bytes}
	}
	unknown := store.CookieCounted | 0x1234
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{
		stat(in0, 10, 1000), stat(in0conn, 2, 120), stat(unknown, 99, 99)}}, withToken(n1))
	e.must(204, "POST", "/api/v1/nodes/h2/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{
		stat(in0, 5, 500), stat(eg0, 7, 700)}}, withToken(n2))
	s := e.stats("web", "?network=blue")
	if len(s) != 3 {
		t.Fatalf("rules %v", s)
	}
	wantCounters(t, "ingress[0]", s["ingress[0]"], 17, 1620, 2, 2) // both flows count packets
	wantCounters(t, "ingress[1]", s["ingress[1]"], 0, 0, 0, 0)
	wantCounters(t, "egress[0]", s["egress[0]"], 7, 700, 0, 1)
	if h := s["ingress[0]"].Hosts; h[0].Host != "h1" || h[0].Packets != 12 || h[0].Connections != 2 || h[1].Host != "h2" || h[1].Packets != 5 {
		t.Fatalf("per host %+v", h)
	}

	// The same counters again (a heartbeat) add nothing; growth adds the
	// difference; a smaller value is a reset (OVS restarted): all of it is new.
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{stat(in0, 10, 1000)}}, withToken(n1))
	wantCounters(t, "heartbeat", e.stats(p.ID)["ingress[0]"], 17, 1620, 2, 2)
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{stat(in0, 14, 1400)}}, withToken(n1))
	wantCounters(t, "growth", e.stats(p.ID)["ingress[0]"], 21, 2020, 2, 2)
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{stat(in0, 3, 300), stat(in0conn, 1, 60)}}, withToken(n1))
	wantCounters(t, "reset", e.stats(p.ID)["ingress[0]"], 25, 2380, 3, 2)
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{stat(in0, 5, 500)}}, withToken(n1))
	wantCounters(t, "after the reset", e.stats(p.ID)["ingress[0]"], 27, 2580, 3, 2)

	// Bad reports change nothing.
	many := make([]openapi.PolicyLogRecord, openapi.MaxPolicyLog+1)
	for i := range many {
		many[i] = openapi.PolicyLogRecord{Time: time.Now(), Cookie: hexCookie(in0), Verdict: "allow", Direction: "ingress",
			Protocol: "TCP", SrcIP: "10.10.0.5", DstIP: "10.10.0.2", SrcPort: 40000, DstPort: 80}
	}
	e.wantProblem(e.report(n1, "h1", openapi.NodeStatus{PolicyLog: many}), 400, "policyLog")
	e.wantProblem(e.report(n1, "h1", openapi.NodeStatus{RuleStats: make([]openapi.RuleStat, openapi.MaxRuleStats+1)}), 400, "ruleStats")
	e.wantProblem(e.report(n1, "h1", openapi.NodeStatus{RuleStats: []openapi.RuleStat{{Cookie: "12", Packets: 1}}}), 400, "ruleStats[0].cookie")
	e.wantProblem(e.report(n1, "h1", openapi.NodeStatus{RuleStats: []openapi.RuleStat{stat(in0, -1, 1)}}), 400, "ruleStats[0].packets")
	bad := many[0]
	bad.SrcIP = "nope"
	e.wantProblem(e.report(n1, "h1", openapi.NodeStatus{PolicyLog: []openapi.PolicyLogRecord{bad}}), 400, "policyLog[0].srcIP")
	bad = many[0]
	bad.Verdict = "maybe"
	e.wantProblem(e.report(n1, "h1", openapi.NodeStatus{PolicyLog: []openapi.PolicyLogRecord{bad}}), 400, "policyLog[0].verdict")
	wantCounters(t, "after bad reports", e.stats(p.ID)["ingress[0]"], 27, 2580, 3, 2)
	if r := e.do("GET", "/api/v1/policies/nope/stats", nil); r.Status != 404 {
		t.Fatalf("unknown policy: %d", r.Status)
	}

	// Deleting the policy drops its counters; a cookie of it is then unknown.
	e.must(204, "DELETE", "/api/v1/policies/"+p.ID, nil)
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, RuleStats: []openapi.RuleStat{stat(in0, 50, 5000)}}, withToken(n1))
}

// Logged connections: reported by the agents, mapped to the policy and rule
// from the cookie, container names resolved from the addresses, read by
// cursor or time, streamed as policy-log events; unknown cookies ignored.
func TestPolicyLog(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.seedPods()
	n1 := e.newToken("node-h1", "node", "h1")
	var p, other openapi.Policy
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "web", "network": "blue", "selector": "ns=x", "log": true,
		"ingress": []map[string]any{{"peers": []map[string]any{{"selector": "ns=y"}}}}}).decode(t, &p)
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "other", "network": "blue", "log": true, "action": "deny",
		"egress": []any{map[string]any{}}}).decode(t, &other)
	addr := map[string]string{}
	var cs openapi.List[openapi.Container]
	e.must(200, "GET", "/api/v1/containers", nil).decode(t, &cs)
	for _, c := range cs.Items {
		addr[c.Name] = c.IP
	}
	in0, _ := store.RuleCookies(p.ID, "ingress", 0)
	oeg0, _ := store.RuleCookies(other.ID, "egress", 0)
	stream := openEvents(t, e, "?kinds=policy-log", nil)
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	rec := func(c uint64, verdict, dir, proto, src, dst string, sport, dport int, at time.Time) openapi.PolicyLogRecord {
		return openapi.PolicyLogRecord{Time: at, Cookie: hexCookie(c), Verdict: verdict, Direction: dir, Protocol: proto,
			SrcIP: src, DstIP: dst, SrcPort: sport, DstPort: dport}
	}
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}, PolicyLog: []openapi.PolicyLogRecord{
		rec(in0, "allow", "ingress", "TCP", addr["y-a"], addr["x-a"], 41000, 80, t0),
		rec(store.CookieCounted|0x77, "deny", "ingress", "TCP", addr["y-a"], addr["x-a"], 41001, 80, t0), // unknown: ignored
		rec(oeg0, "deny", "egress", "ICMP", addr["x-c"], "192.0.2.9", 0, 0, t0.Add(time.Second)),
		rec(in0, "allow", "ingress", "UDP", addr["y-b"], addr["x-b"], 5353, 53, t0.Add(2*time.Second)),
	}}, withToken(n1))

	var page openapi.PolicyLogPage
	e.must(200, "GET", "/api/v1/policies/web/log?network=blue", nil).decode(t, &page)
	if len(page.Items) != 2 {
		t.Fatalf("web's log: %+v", page)
	}
	want := openapi.PolicyLogEntry{Time: t0, Host: "h1", Policy: "web", PolicyID: p.ID, Network: "blue", Rule: "ingress[0]",
		Direction: "ingress", Index: 0, Verdict: "allow", Protocol: "TCP",
		Source: openapi.PolicyLogAddress{Container: "y-a", IP: addr["y-a"], Port: 41000},
		Dest:   openapi.PolicyLogAddress{Container: "x-a", IP: addr["x-a"], Port: 80}}
	got := page.Items[0]
	got.Cursor = ""
	got.Time = got.Time.UTC()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entry\n got %+v\nwant %+v", got, want)
	}
	if page.Cursor != page.Items[1].Cursor || page.Items[1].Source.Container != "y-b" || page.Items[1].Protocol != "UDP" {
		t.Fatalf("page %+v", page)
	}
	var op openapi.PolicyLogPage
	e.must(200, "GET", "/api/v1/policies/"+other.ID+"/log", nil).decode(t, &op)
	if len(op.Items) != 1 || op.Items[0].Dest.Container != "" || op.Items[0].Dest.IP != "192.0.2.9" || op.Items[0].Source.Container != "x-c" ||
		op.Items[0].Verdict != "deny" || op.Items[0].Rule != "egress[0]" || op.Items[0].Dest.Port != 0 {
		t.Fatalf("other's log: %+v", op)
	}

	// By cursor: after the first; limit; by time.
	e.must(200, "GET", "/api/v1/policies/web/log?network=blue&since="+page.Items[0].Cursor, nil).decode(t, &op)
	if len(op.Items) != 1 || op.Items[0].Cursor != page.Items[1].Cursor {
		t.Fatalf("after the first: %+v", op)
	}
	e.must(200, "GET", "/api/v1/policies/web/log?network=blue&limit=1", nil).decode(t, &op)
	if len(op.Items) != 1 || op.Cursor != page.Items[0].Cursor {
		t.Fatalf("limit 1: %+v", op)
	}
	e.must(200, "GET", "/api/v1/policies/web/log?network=blue&since="+url.QueryEscape(t0.Add(time.Second).Format(time.RFC3339Nano)), nil).decode(t, &op)
	if len(op.Items) != 1 || op.Items[0].Cursor != page.Items[1].Cursor {
		t.Fatalf("since a time: %+v", op)
	}
	e.must(200, "GET", "/api/v1/policies/web/log?network=blue&since="+page.Cursor, nil).decode(t, &op)
	if len(op.Items) != 0 || op.Cursor != page.Cursor {
		t.Fatalf("caught up: %+v", op)
	}
	for _, q := range []struct{ query, field string }{
		{"since=yesterday", "since"}, {"since=-1", "since"}, {"since=99999999999999999999", "since"},
		{"limit=0", "limit"}, {"limit=x", "limit"}, {"limit=1001", "limit"},
	} {
		e.wantProblem(e.do("GET", "/api/v1/policies/web/log?network=blue&"+q.query, nil), 400, q.field)
	}

	// The stream got the three known entries, in order.
	for i, wantRule := range []string{"web/ingress[0]", "other/egress[0]", "web/ingress[0]"} {
		_, name, data, ok := stream.message()
		for ok && data == "" { // id-only messages of the event log
			_, name, data, ok = stream.message()
		}
		if !ok || name != "policy-log" {
			t.Fatalf("stream message %d: %q %v", i, name, ok)
		}
		var le openapi.PolicyLogEntry
		if err := json.Unmarshal([]byte(data), &le); err != nil {
			t.Fatal(err)
		}
		if le.Policy+"/"+le.Rule != wantRule {
			t.Fatalf("stream entry %d: %+v, want %s", i, le, wantRule)
		}
	}
	e.wantProblem(e.do("GET", "/api/v1/events?kinds=policy-logs", nil), 400, "kinds")
}
