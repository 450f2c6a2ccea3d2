package nodes

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
)

// ack is the last report of a host this replica heard of.
type ack struct {
	applied  int64
	lastSeen time.Time
	// The rest comes from status notices only; after a load it is unknown
	// (empty) until the host reports again.
	digest      string
	applyFailed bool            // the program of digest could not be applied
	failed      map[string]bool // containers whose port failed
	failedAll   bool            // too many failed ports to list
}

func ackOf(n store.StatusNotice) ack {
	a := ack{applied: n.Applied, lastSeen: time.Now(), digest: n.Digest, applyFailed: n.ApplyFailed, failedAll: n.FailedAll}
	for _, id := range n.FailedContainers {
		if a.failed == nil {
			a.failed = map[string]bool{}
		}
		a.failed[id] = true
	}
	return a
}

// Realization states of one host for one revision.
const (
	stateRealized = "realized" // applied a program at least as new
	stateBehind   = "behind"   // has not applied such a program yet
	// degraded: it failed to apply its current program, or applied one at
	// least as new but the port of a container the change touched failed.
	stateDegraded = "degraded"
)

// HostState is one host's part in a ?wait=realized answer.
type HostState struct {
	Host            string `json:"host"`
	State           string `json:"state"`
	AppliedRevision int64  `json:"appliedRevision"`
}

// WaitRealized returns once every host whose program the change of revision
// rev touched has applied a program at least that new. If some of them
// applied it degraded, it answers at once with a 502 problem naming them;
// on timeout, with a 504 problem naming the hosts behind. Both carry every
// touched host's state.
func (m *Manager) WaitRealized(ctx context.Context, rev int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		states, done, progress := m.realization(rev)
		behind, degraded := []string{}, []string{}
		for _, s := range states {
			switch s.State {
			case stateBehind:
				behind = append(behind, s.Host)
			case stateDegraded:
				degraded = append(degraded, s.Host)
			}
		}
		if done && len(behind) == 0 {
			if len(degraded) == 0 {
				return nil
			}
			return &problem.Error{Status: http.StatusBadGateway, Slug: "degraded", Title: "Realized with failures",
				Detail: fmt.Sprintf("revision %d is committed, but %d hosts failed to realize it fully: %s", rev, len(degraded), strings.Join(degraded, ", ")),
				Extra:  map[string]any{"hosts": degraded, "states": states, "revision": rev}}
		}
		select {
		case <-ctx.Done():
			if !done {
				states = []HostState{}
			}
			p := problem.Timeout("not realized within %s: %d hosts have not applied revision %d yet", timeout, len(behind), rev)
			p.Extra = map[string]any{"hosts": behind, "states": states, "revision": rev}
			return p
		case <-progress:
		}
	}
}

func (m *Manager) realization(rev int64) ([]HostState, bool, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	states, done := m.states(rev)
	return states, done, m.progress
}

// states gives the state of every host that revision rev touched, sorted by
// host; done is false while the manager has not reached rev. Callers hold
// mu.
func (m *Manager) states(rev int64) (states []HostState, done bool) {
	if !m.ready || m.rev < rev {
		return nil, false
	}
	states = []HostState{}
	add := func(name string, e *hostEntry) {
		if e == nil || !e.touched(rev) {
			return
		}
		a := m.acks[name]
		s := HostState{Host: name, State: stateBehind, AppliedRevision: a.applied}
		current := a.digest != "" && a.digest == e.digest // holds every change up to m.rev
		switch {
		case current && a.applyFailed:
			s.State = stateDegraded
		case a.applied >= rev || current:
			s.State = stateRealized
			if a.failedAll || m.touchedFailed(rev, a.failed) {
				s.State = stateDegraded
			}
		}
		states = append(states, s)
	}
	if rev > m.hostsFrom {
		// Indexed: only the hosts that changed at rev.
		for _, name := range m.hostsAt[rev] {
			add(name, m.hosts[name])
		}
	} else {
		for name, e := range m.hosts {
			add(name, e)
		}
	}
	slices.SortFunc(states, func(a, b HostState) int { return cmp.Compare(a.Host, b.Host) })
	return states, true
}

// touchedFailed tells whether revision rev changed a container among
// failed. Callers hold mu.
func (m *Manager) touchedFailed(rev int64, failed map[string]bool) bool {
	for _, id := range m.ctrsAt[rev] {
		if failed[id] {
			return true
		}
	}
	return false
}

// noteContainers remembers which containers revision rev changed, for the
// last ctrsLen revisions that changed any. Callers hold mu.
func (m *Manager) noteContainers(rev int64, ids []string) {
	if len(ids) == 0 {
		return
	}
	m.ctrsAt[rev] = ids
	m.ctrsRevs = append(m.ctrsRevs, rev)
	if len(m.ctrsRevs) > ctrsLen {
		delete(m.ctrsAt, m.ctrsRevs[0])
		m.ctrsRevs = slices.Delete(m.ctrsRevs, 0, 1)
	}
}

// noteHost remembers that host's program changed at revision rev (each
// host once per revision). Callers hold mu.
func (m *Manager) noteHost(rev int64, host string) {
	if len(m.hostsRevs) == 0 || m.hostsRevs[len(m.hostsRevs)-1] != rev {
		m.hostsRevs = append(m.hostsRevs, rev)
	}
	m.hostsAt[rev] = append(m.hostsAt[rev], host)
	if len(m.hostsRevs) > ctrsLen {
		m.hostsFrom = max(m.hostsFrom, m.hostsRevs[0])
		delete(m.hostsAt, m.hostsRevs[0])
		m.hostsRevs = slices.Delete(m.hostsRevs, 0, 1)
	}
}

// touched tells whether the host's program changed at revision rev; when
// that is no longer known (before e.known), it assumes so.
func (e *hostEntry) touched(rev int64) bool {
	if rev < e.known {
		return true
	}
	return slices.ContainsFunc(e.hist, func(p progRev) bool { return p.rev == rev })
}

// HostProgram returns the revision at which host's program last changed.
func (m *Manager) HostProgram(host string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.hosts[host]; e != nil && m.ready {
		return e.rev, true
	}
	return 0, false
}

// onStatus records a report heard from any replica.
func (m *Manager) onStatus(payload string) {
	if payload == "" {
		// (Re)connected: reload every ack, some may have been missed.
		acks, err := m.st.HostAcks(context.Background())
		if err != nil {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.mergeAcks(acks)
		m.advance()
		return
	}
	if n, ok := store.ParseStatusNotice(payload); ok {
		m.noteAck(n)
	}
}

// mergeAcks takes the applied revisions of the hosts table, keeping what
// only notices tell. Callers hold mu.
func (m *Manager) mergeAcks(acks map[string]store.HostAck) {
	for name, a := range acks {
		old := m.acks[name]
		old.applied, old.lastSeen = a.Applied, a.LastSeen
		m.acks[name] = old
	}
}

// noteAck records a host's report: the last one wins.
func (m *Manager) noteAck(n store.StatusNotice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks[n.Host] = ackOf(n)
	m.advance()
}
