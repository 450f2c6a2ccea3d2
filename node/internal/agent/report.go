package agent

import (
	"context"
	"reflect"
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

// portsSent is what the controller has of the ports, from this agent's
// accepted reports: the list, the specs counter it is of, and when every
// port was last sent. A report then lists only what differs (openapi
// NodeStatus): nothing but the failed ports when no port changed
// (portsUnchanged), else the ports whose status differs from the
// controller's, those an apply added since (a container made again, moved
// back) and the failed ones (portsDelta). The controller writes the
// statuses of the listed ports only, so a report costs O(change) instead
// of O(ports) on the wire, in the contract check and in PostgreSQL. Any
// failed report forgets it, so the next one carries every port; so does a
// whole program applied, and a minute without a full report.
type portsSent struct {
	valid bool
	specs uint64
	ports []openapi.PortStatus
	full  time.Time
}

// portsReport is what a report says of the ports.
type portsReport struct {
	ports     []openapi.PortStatus
	unchanged bool // portsUnchanged: ports are the failed ones
	delta     bool // portsDelta: ports are the changed and the failed ones
}

// report returns what a report at now says of all, the host's ports after
// the apply counted specs; touched and wholeAt are the agent's (agent.go).
func (s *portsSent) report(specs, wholeAt uint64, touched map[string]uint64, all []openapi.PortStatus, now time.Time) portsReport {
	if !s.valid || wholeAt > s.specs || now.Sub(s.full) >= fullPortsEvery {
		return portsReport{ports: all}
	}
	had := make(map[string]openapi.PortStatus, len(s.ports))
	for _, p := range s.ports {
		had[p.Name] = p
	}
	var listed []openapi.PortStatus
	delta := false
	for _, p := range all {
		old, ok := had[p.Name]
		// Failed ports are listed in every report.
		if fresh := !ok || old != p || touched[p.Name] > s.specs; fresh || p.Error != "" {
			listed = append(listed, p)
			delta = delta || fresh
		}
	}
	return portsReport{ports: listed, delta: delta, unchanged: !delta}
}

// accepted records that the controller took a report r of all, after the
// apply counted specs, at now.
func (s *portsSent) accepted(r portsReport, specs uint64, all []openapi.PortStatus, now time.Time) {
	full := s.full
	if !r.unchanged && !r.delta {
		full = now
	}
	*s = portsSent{valid: true, specs: specs, ports: all, full: full}
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
	now := time.Now()
	a.mu.Lock()
	st := a.status
	specs := a.specs
	pr := a.sent.report(specs, a.wholeAt, a.touched, st.Ports, now)
	st.RuleStats = a.ruleStats
	a.mu.Unlock()
	all := st.Ports
	st.Ports, st.PortsUnchanged, st.PortsDelta = pr.ports, pr.unchanged, pr.delta
	if st.Ports == nil {
		st.Ports = []openapi.PortStatus{}
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
	default:
		a.sent.accepted(pr, specs, all, now)
		a.mu.Lock()
		for name, at := range a.touched {
			if at <= specs {
				delete(a.touched, name) // the controller has it
			}
		}
		a.mu.Unlock()
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
