package nodes

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// compiledStatus is the status of host in m's compiler ("" when it has
// none).
func compiledStatus(m *Manager, host string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.comp == nil {
		return ""
	}
	for _, h := range m.comp.Snapshot().Hosts {
		if h.Name == host {
			return h.Status
		}
	}
	return ""
}

// A host's readiness reaches every replica's compiler through the event
// log: two managers on one database see h1 go Ready on its first report,
// NotReady within the heartbeat timeout and about a second once its
// reports stop, and Ready again on its next report.
func TestReadinessReachesCompiler(t *testing.T) {
	const timeout = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := pgtest.DatabaseURL(t)
	var managers []*Manager
	var st *store.Store
	for i := range 2 {
		s, err := store.Open(ctx, url, store.Options{HeartbeatTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			st = s
			if _, err := st.CreateHost(ctx, "test", openapi.Host{Name: "h1", Address: "192.168.200.11"}); err != nil {
				t.Fatal(err)
			}
		}
		m := New(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
		go m.Run(ctx)
		managers = append(managers, m)
	}
	wait := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for _, m := range managers {
			for compiledStatus(m, "h1") != want {
				if time.Since(start) > within {
					t.Fatalf("h1 is %q in a compiler after %s, want %s", compiledStatus(m, "h1"), time.Since(start), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		return time.Since(start)
	}
	wait(openapi.HostNotReady, time.Minute)
	report := func() {
		t.Helper()
		if err := st.ReportStatus(ctx, "h1", openapi.NodeStatus{}); err != nil {
			t.Fatal(err)
		}
	}
	report()
	wait(openapi.HostReady, time.Minute)
	report()
	if took := wait(openapi.HostNotReady, time.Minute); took > timeout+1500*time.Millisecond {
		t.Fatalf("h1 went NotReady in the compilers %s after its last report, timeout %s", took, timeout)
	}
	report()
	wait(openapi.HostReady, time.Minute)
}
