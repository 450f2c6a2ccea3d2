package agent

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/openapi"
)

func rec(i int) openapi.PolicyLogRecord {
	return openapi.PolicyLogRecord{Cookie: fmt.Sprintf("%#x", i), Verdict: "allow", Direction: "ingress", Protocol: "TCP",
		SrcIP: "10.0.0.1", DstIP: "10.0.0.2", SrcPort: 1000 + i, DstPort: 80}
}

func ports(rs []openapi.PolicyLogRecord) string {
	var s []int
	for _, r := range rs {
		s = append(s, r.SrcPort-1000)
	}
	return fmt.Sprint(s)
}

// The queue keeps the oldest records: when full, new ones are dropped and
// counted; records of a failed report go back ahead of newer ones.
func TestLogQueue(t *testing.T) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	q := newLogQueue(3, dropped)
	for i := range 5 {
		q.add(rec(i))
	}
	if got := testutil.ToFloat64(dropped); got != 2 || q.len() != 3 {
		t.Fatalf("dropped %v, queued %d", got, q.len())
	}
	taken := q.take(2)
	if ports(taken) != "[0 1]" || q.len() != 1 {
		t.Fatalf("took %s, %d left", ports(taken), q.len())
	}
	q.add(rec(5))
	q.add(rec(6))
	q.putBack(taken) // the report failed: 0 1 go first; 5 and 6, the newest, no longer fit
	if got := q.take(10); ports(got) != "[0 1 2]" || testutil.ToFloat64(dropped) != 4 {
		t.Fatalf("after putBack: %s, dropped %v", ports(got), testutil.ToFloat64(dropped))
	}
	if q.take(1) != nil {
		t.Fatal("took from an empty queue")
	}
}

// fakeObserver hands out fixed counters and sends the records it is given
// to the agent's listener.
type fakeObserver struct {
	stats []openapi.RuleStat
	recs  chan openapi.PolicyLogRecord
}

func (f *fakeObserver) RuleStats(context.Context) ([]openapi.RuleStat, error) { return f.stats, nil }

func (f *fakeObserver) ListenLog(ctx context.Context, fn func(openapi.PolicyLogRecord), ready func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-f.recs:
			fn(r)
		}
	}
}

// Reports carry the newest counters and the logged connections, at most
// openapi.MaxPolicyLog per report, oldest first, none twice.
func TestReportsCarryPolicyObservations(t *testing.T) {
	c := newFakeController(t)
	obs := &fakeObserver{stats: []openapi.RuleStat{{Cookie: "0x800000000001", Packets: 3, Bytes: 300}},
		recs: make(chan openapi.PolicyLogRecord)}
	c.publish(prog(1))
	a := startAgent(t, c, newFakeDatapath(), Config{Observer: obs})
	const n = 2*openapi.MaxPolicyLog + 10
	for i := range n {
		obs.recs <- rec(i)
	}
	var got []openapi.PolicyLogRecord
	stats := false
	for len(got) < n || !stats {
		a.poke() // a heartbeat
		st := <-c.reported
		if len(st.PolicyLog) > openapi.MaxPolicyLog {
			t.Fatalf("a report with %d log records", len(st.PolicyLog))
		}
		got = append(got, st.PolicyLog...)
		stats = stats || (len(st.RuleStats) == 1 && st.RuleStats[0] == obs.stats[0])
	}
	if len(got) != n {
		t.Fatalf("%d records reported, want %d", len(got), n)
	}
	for i, r := range got {
		if r.SrcPort != 1000+i {
			t.Fatalf("record %d is %+v", i, r)
		}
	}
	if !stats {
		t.Fatal("no report carried the counters")
	}
}
