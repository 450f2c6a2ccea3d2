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
