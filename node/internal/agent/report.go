package agent

import (
	"context"
	"reflect"
	"slices"
	"time"

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

// fullPortsEvery bounds how long reports may leave the ports out: a store
// that lost an accepted report (restored from a backup, an asynchronous
// standby promoted) gets them again within this time.
const fullPortsEvery = time.Minute

// portsSent is what the last report the controller accepted said of the
// ports: the list, the specs counter it was of, and when. A report whose
// ports and specs are the same says portsUnchanged and lists only the
// failed ports (openapi NodeStatus): the controller then writes no
// container's status, and a report costs O(1) instead of O(ports) on the
// wire, in the contract check and in PostgreSQL. Any failed report
// forgets it, so the next one carries every port.
type portsSent struct {
	valid bool
	specs uint64
	ports []openapi.PortStatus
	at    time.Time
}

// unchanged reports whether ports, of the specs counter specs, are what
// the controller already has.
func (s *portsSent) unchanged(specs uint64, ports []openapi.PortStatus, now time.Time) bool {
	return s.valid && s.specs == specs && now.Sub(s.at) < fullPortsEvery && slices.Equal(s.ports, ports)
}

// failedOnly is the ports of an unchanged report: the failed ones, which
// the controller's realization tracking reads from every report.
func failedOnly(ports []openapi.PortStatus) []openapi.PortStatus {
	out := []openapi.PortStatus{}
	for _, p := range ports {
		if p.Error != "" {
			out = append(out, p)
		}
	}
	return out
}

// countersSent is what the controller has of the policy counters from
// this agent's accepted reports. The store keeps every cookie's totals until
// a report says otherwise, so a report lists only the counters that moved
// since (all of them after a failed report, and at least once a minute).
type countersSent struct {
	valid bool
	at    time.Time
	last  map[string]openapi.RuleStat
}

// changed returns the counters of all to report at now, and whether they
// are all of them.
func (c *countersSent) changed(all []openapi.RuleStat, now time.Time) ([]openapi.RuleStat, bool) {
	if !c.valid || now.Sub(c.at) >= fullPortsEvery {
		return all, true
	}
	var out []openapi.RuleStat
	for _, r := range all {
		if c.last[r.Cookie] != r {
			out = append(out, r)
		}
	}
	return out, false
}

// accepted records a report of sent (all the counters when full) that the
// controller accepted at now.
func (c *countersSent) accepted(sent []openapi.RuleStat, full bool, now time.Time) {
	if full || c.last == nil {
		*c = countersSent{valid: true, at: now, last: make(map[string]openapi.RuleStat, len(sent))}
	}
	for _, r := range sent {
		c.last[r.Cookie] = r
	}
}

// report posts the newest status now.
func (a *Agent) report(ctx context.Context) {
	a.mu.Lock()
	st := a.status
	specs := a.specs
	st.RuleStats = a.ruleStats
	a.mu.Unlock()
	if st.Ports == nil {
		st.Ports = []openapi.PortStatus{}
	}
	all, now := st.Ports, time.Now()
	if a.sent.unchanged(specs, all, now) {
		st.Ports, st.PortsUnchanged = failedOnly(all), true
	}
	var allStats bool
	st.RuleStats, allStats = a.sentStats.changed(st.RuleStats, now)
	st.PolicyLog = a.logq.take(openapi.MaxPolicyLog)
	st.Endpoints = a.health.Endpoints()
	err := a.api.report(ctx, st)
	switch {
	case err != nil:
		a.logq.putBack(st.PolicyLog) // for the next report
		a.sent = portsSent{}         // the next one carries every port
		a.sentStats = countersSent{} // and every counter
	case !st.PortsUnchanged:
		a.sent = portsSent{valid: true, specs: specs, ports: all, at: now}
	}
	if err == nil {
		a.sentStats.accepted(st.RuleStats, allStats, now)
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
