package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/openapi"
)

// The policy log is pruned by age with the event log (PruneEvents), in
// chunks; the events' revision limit does not touch it. Reports of one host
// that share a batch all keep their log entries (counters: the last wins).
func TestPolicyLogRetentionAndBatches(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "blue", "10.1.0.0/16", 0)
	mkHost(t, st, "h1", "192.168.7.1")
	p, err := st.CreatePolicy(ctx, "test", openapi.Policy{Name: "p", Network: "blue", Log: true, Ingress: []openapi.PolicyRule{{}}})
	if err != nil {
		t.Fatal(err)
	}
	rule := compile.RuleCookie(p.ID, "ingress", 0)
	entry := func(port int) openapi.PolicyLogRecord {
		return openapi.PolicyLogRecord{Time: time.Now(), Cookie: fmt.Sprintf("0x%x", rule), Verdict: "deny", Direction: "ingress",
			Protocol: "TCP", SrcIP: "10.1.0.9", DstIP: "10.1.0.10", SrcPort: port, DstPort: 80}
	}
	// Many reports at once: they share batches.
	const reports = 40
	var wg sync.WaitGroup
	for i := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st2 := openapi.NodeStatus{PolicyLog: []openapi.PolicyLogRecord{entry(1000 + i)},
				RuleStats: []openapi.RuleStat{{Cookie: fmt.Sprintf("0x%x", rule), Packets: int64(i), Bytes: int64(i)}}}
			if err := st.ReportStatus(ctx, "h1", st2); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	page, err := st.PolicyLog(ctx, p.ID, "", PolicyLogOptions{Limit: 1000})
	if err != nil || len(page.Items) != reports {
		t.Fatalf("%d entries (%v), want %d", len(page.Items), err, reports)
	}
	if st.rep.batches.Load() >= reports {
		t.Logf("no two reports shared a batch (%d batches): the batch path was not exercised", st.rep.batches.Load())
	}

	// Age them: an hour old. A revision limit alone keeps them; the age prunes.
	if _, err := st.Pool.Exec(ctx, `UPDATE policy_log SET received_at = now() - interval '2 hours' WHERE src_port < 1020`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PruneEvents(ctx, Retention{Revisions: 1}); err != nil {
		t.Fatal(err)
	}
	if page, _ := st.PolicyLog(ctx, p.ID, "", PolicyLogOptions{Limit: 1000}); len(page.Items) != reports {
		t.Fatalf("a revision limit pruned the policy log: %d left", len(page.Items))
	}
	if _, err := st.PruneEvents(ctx, Retention{Age: time.Hour}); err != nil {
		t.Fatal(err)
	}
	page, err = st.PolicyLog(ctx, p.ID, "", PolicyLogOptions{Limit: 1000})
	if err != nil || len(page.Items) != reports-20 {
		t.Fatalf("after pruning by age: %d entries (%v)", len(page.Items), err)
	}
	for _, e := range page.Items {
		if e.Source.Port < 1020 {
			t.Fatalf("an old entry stayed: %+v", e)
		}
	}
}

// A host's counters keep the totals of a rule whose flows are not on the
// switch right now (a report without its cookie), and drop those of rules
// that no longer exist; a report with unchanged counters writes nothing.
func TestRuleCountersRow(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "blue", "10.1.0.0/16", 0)
	mkHost(t, st, "h1", "192.168.7.1")
	p, err := st.CreatePolicy(ctx, "test", openapi.Policy{Name: "p", Network: "blue", Ingress: []openapi.PolicyRule{{}, {}}})
	if err != nil {
		t.Fatal(err)
	}
	r0, _ := RuleCookies(p.ID, "ingress", 0)
	r1, _ := RuleCookies(p.ID, "ingress", 1)
	report := func(stats ...openapi.RuleStat) {
		t.Helper()
		if err := st.ReportStatus(ctx, "h1", openapi.NodeStatus{RuleStats: stats}); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(c uint64, n int64) openapi.RuleStat {
		return openapi.RuleStat{Cookie: fmt.Sprintf("%#x", c), Packets: n, Bytes: 100 * n}
	}
	row := func() (cookies []int64, at time.Time) {
		t.Helper()
		if err := st.Pool.QueryRow(ctx, `SELECT cookies, updated_at FROM rule_counters`).Scan(&cookies, &at); err != nil {
			t.Fatal(err)
		}
		return cookies, at
	}
	report(stat(r0, 5), stat(r1, 7))
	_, at := row()
	report(stat(r0, 5), stat(r1, 7))
	if _, again := row(); !again.Equal(at) {
		t.Fatal("unchanged counters were written again")
	}
	report(stat(r0, 6)) // r1's flows are gone for now
	s, err := st.PolicyStats(ctx, p.ID, "")
	if err != nil || s.Rules[0].Packets != 6 || s.Rules[1].Packets != 7 || s.Rules[1].Bytes != 700 {
		t.Fatalf("stats %+v %v", s, err)
	}
	// The policy loses its second rule: the next report drops its cookie.
	if _, err := st.UpdatePolicy(ctx, "test", p.ID, "", 0, openapi.Policy{Ingress: []openapi.PolicyRule{{}}}); err != nil {
		t.Fatal(err)
	}
	report(stat(r0, 8), stat(r1, 9))
	if cookies, _ := row(); len(cookies) != 1 || uint64(cookies[0]) != r0 {
		t.Fatalf("cookies kept: %#x", cookies)
	}
	if s, _ := st.PolicyStats(ctx, p.ID, ""); len(s.Rules) != 1 || s.Rules[0].Packets != 8 || len(s.Rules[0].Hosts) != 1 {
		t.Fatalf("after the rule went: %+v", s)
	}
}
