package agent

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/openapi"
)

// Policy observability: the counters of the counted policy flows are read
// at heartbeat cadence by a goroutine of their own (never in the apply
// path) and the newest reading goes with every report; logged connections
// arrive from the datapath's listener into a bounded queue and go with the
// next report, at most openapi.MaxPolicyLog per report. When the queue is
// full, the newest records are dropped and counted
// (switchyard_agent_policy_log_dropped_total); the log meter on the switch
// keeps that rare.

// PolicyObserver reads policy counters and receives logged connections
// (the ovs applier's PolicyObserver).
type PolicyObserver interface {
	RuleStats(ctx context.Context) ([]openapi.RuleStat, error)
	ListenLog(ctx context.Context, fn func(openapi.PolicyLogRecord), ready func())
}

// maxQueuedLog bounds the log records waiting for a report: a few
// heartbeats' worth at the default meter rate.
const maxQueuedLog = 4 * openapi.MaxPolicyLog

// logQueue holds the log records waiting for a report, oldest first.
type logQueue struct {
	mu      sync.Mutex
	max     int
	recs    []openapi.PolicyLogRecord
	dropped prometheus.Counter
}

func newLogQueue(max int, dropped prometheus.Counter) *logQueue {
	return &logQueue{max: max, dropped: dropped}
}

// add queues r, or drops it (counted) when the queue is full.
func (q *logQueue) add(r openapi.PolicyLogRecord) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.recs) >= q.max {
		q.dropped.Inc()
		return
	}
	q.recs = append(q.recs, r)
}

// take removes and returns the oldest n records at most.
func (q *logQueue) take(n int) []openapi.PolicyLogRecord {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.recs))
	if n == 0 {
		return nil
	}
	out := append([]openapi.PolicyLogRecord(nil), q.recs[:n]...)
	q.recs = append(q.recs[:0], q.recs[n:]...)
	return out
}

// putBack returns records taken for a report that failed, ahead of those
// queued since; what no longer fits (the newest) is dropped and counted.
func (q *logQueue) putBack(recs []openapi.PolicyLogRecord) {
	if len(recs) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	all := append(recs, q.recs...)
	if over := len(all) - q.max; over > 0 {
		q.dropped.Add(float64(over))
		all = all[:q.max]
	}
	q.recs = all
}

func (q *logQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs)
}

// observePolicies runs the policy observation until ctx ends: the log
// listener, and a reading of the counters every heartbeat.
func (a *Agent) observePolicies(ctx context.Context, obs PolicyObserver) {
	go obs.ListenLog(ctx, a.logq.add, nil)
	tick := time.NewTicker(a.cfg.Heartbeat)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, a.cfg.Heartbeat)
		stats, err := obs.RuleStats(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			a.log.Debug("reading policy counters failed", "err", err)
		}
		if len(stats) > openapi.MaxRuleStats {
			a.log.Warn("more counted policy flows than a report takes: reporting the first", "cookies", len(stats), "max", openapi.MaxRuleStats)
			stats = stats[:openapi.MaxRuleStats]
		}
		a.mu.Lock()
		a.ruleStats = stats
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
