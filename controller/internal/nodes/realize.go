package nodes

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
)

// ack is the last report of a host this replica heard of.
type ack struct {
	applied  int64
	lastSeen time.Time
	// digest and degraded come from status notices only; after a load
	// they are unknown ("", false) until the host reports again.
	digest   string
	degraded bool
}

// Realization states of one host for one revision.
const (
	stateRealized = "realized" // applied a program at least as new
	stateBehind   = "behind"   // has not applied such a program yet
	stateDegraded = "degraded" // its last apply failed or left a port failed
)

// HostState is one host's part in a ?wait=realized answer.
type HostState struct {
	Host            string `json:"host"`
	State           string `json:"state"`
	AppliedRevision int64  `json:"appliedRevision"`
}

// WaitRealized returns once every host whose program the change of revision
// rev touched has applied a program at least that new, without error. On
// timeout it returns a 504 problem naming the hosts not realized (behind or
// degraded), with every touched host's state.
func (m *Manager) WaitRealized(ctx context.Context, rev int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		states, done, progress := m.realization(rev)
		notRealized := []string{}
		for _, s := range states {
			if s.State != stateRealized {
				notRealized = append(notRealized, s.Host)
			}
		}
		if done && len(notRealized) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if !done {
				states = []HostState{}
			}
			p := problem.Timeout("not realized within %s: %d hosts have not applied revision %d without error", timeout, len(notRealized), rev)
			p.Extra = map[string]any{"hosts": notRealized, "states": states, "revision": rev}
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
	for name, e := range m.hosts {
		if !e.touched(rev) {
			continue
		}
		a := m.acks[name]
		s := HostState{Host: name, State: stateBehind, AppliedRevision: a.applied}
		switch {
		case a.degraded:
			s.State = stateDegraded
		case a.applied >= rev || a.digest != "" && a.digest == e.digest:
			// The host's current program holds every change up to m.rev.
			s.State = stateRealized
		}
		states = append(states, s)
	}
	slices.SortFunc(states, func(a, b HostState) int { return cmp.Compare(a.Host, b.Host) })
	return states, true
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
		for name, a := range acks {
			old := m.acks[name]
			m.acks[name] = ack{applied: a.Applied, lastSeen: a.LastSeen, digest: old.digest, degraded: old.degraded}
		}
		m.advance()
		return
	}
	if n, ok := store.ParseStatusNotice(payload); ok {
		m.noteAck(n)
	}
}

// noteAck records a host's report: the last one wins.
func (m *Manager) noteAck(n store.StatusNotice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks[n.Host] = ack{applied: n.Applied, lastSeen: time.Now(), digest: n.Digest, degraded: n.Degraded}
	m.advance()
}
