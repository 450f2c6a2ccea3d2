package nodes

import (
	"context"
	"slices"
	"time"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// WaitRealized returns once every host whose program changed at revision
// rev has applied a program at least that new; on timeout it returns a 504
// problem listing the hosts still behind.
func (m *Manager) WaitRealized(ctx context.Context, rev int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		m.mu.Lock()
		behind, done := m.behind(rev)
		progress := m.progress
		m.mu.Unlock()
		if done && len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if !done {
				behind = []string{}
			}
			p := problem.Timeout("not realized within %s: %d hosts have not applied revision %d yet", timeout, len(behind), rev)
			p.Extra = map[string]any{"hosts": behind, "revision": rev}
			return p
		case <-progress:
		}
	}
}

// behind lists the hosts that need revision rev and have not acknowledged
// it; done is false while the manager has not reached rev. Callers hold mu.
func (m *Manager) behind(rev int64) (hosts []string, done bool) {
	if !m.ready || m.rev < rev {
		return nil, false
	}
	for name, e := range m.hosts {
		if !slices.Contains(e.changes, rev) {
			continue
		}
		// The host must have applied the program of rev or a newer one.
		if m.acks[name].Applied < rev {
			hosts = append(hosts, name)
		}
	}
	slices.Sort(hosts)
	return hosts, true
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
