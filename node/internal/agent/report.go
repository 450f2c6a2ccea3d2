package agent

import (
	"context"
	"reflect"

	"github.com/switchyard/switchyard/openapi"
)

// Reports leave the apply path: apply and resync only record the newest
// status and poke a one-slot mailbox; one reporter goroutine posts whatever
// status is newest when it gets to it. A slow controller (or a slow
// PostgreSQL behind it) then delays reports, never applies, and statuses
// recorded while a report is in flight collapse into one.

// setStatus records st as the host's status and schedules a report of it.
func (a *Agent) setStatus(st openapi.NodeStatus) {
	a.mu.Lock()
	a.status = st
	a.mu.Unlock()
	a.m.setPorts(st.Ports)
	a.poke()
}

// setFailed records a failed apply's status. It schedules a report only
// when the status differs from the last failure recorded: a failure that
// repeats on every retry is reported once (and then by the heartbeat).
func (a *Agent) setFailed(st openapi.NodeStatus) {
	a.mu.Lock()
	same := reflect.DeepEqual(st, a.status)
	a.status = st
	a.mu.Unlock()
	if !same {
		a.poke()
	}
}

// poke asks the reporter to post the newest status.
func (a *Agent) poke() {
	select {
	case a.mailbox <- struct{}{}:
	default: // a report is already due; it will carry the newest status
	}
}

// reportLoop posts the newest status each time it is poked, until ctx ends.
func (a *Agent) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.mailbox:
		}
		a.report(ctx)
	}
}

// report posts the newest status now.
func (a *Agent) report(ctx context.Context) {
	a.mu.Lock()
	st := a.status
	st.RuleStats = a.ruleStats
	a.mu.Unlock()
	if st.Ports == nil {
		st.Ports = []openapi.PortStatus{}
	}
	st.PolicyLog = a.logq.take(openapi.MaxPolicyLog)
	st.Endpoints = a.health.Endpoints()
	err := a.api.report(ctx, st)
	if err != nil {
		a.logq.putBack(st.PolicyLog) // for the next report
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		a.m.reports.WithLabelValues("error").Inc()
		a.log.Debug("report failed", "err", err)
	} else {
		a.m.reports.WithLabelValues("ok").Inc()
	}
	a.m.connected(err == nil)
}
