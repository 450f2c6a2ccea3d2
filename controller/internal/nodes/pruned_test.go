package nodes

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// A manager whose revision the event log no longer reaches (the retention
// pruned the events after it) reloads the intent instead of missing them.
func TestCatchUpAfterPrune(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.DatabaseURL(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	m := New(st, nil)
	if err := m.load(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"h1", "h2"} {
		if _, err := st.CreateHost(ctx, "test", openapi.Host{Name: name, Address: fmt.Sprintf("192.168.1.%d", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	// Keep only the last revision's events: h1's creation is gone.
	if n, err := st.PruneEvents(ctx, store.Retention{Revisions: 1}); err != nil || n == 0 {
		t.Fatalf("pruned %d (%v)", n, err)
	}
	if err := m.catchUp(ctx); err != nil {
		t.Fatalf("catch up: %v", err)
	}
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if _, ok := m.HostProgram(h); !ok {
			t.Errorf("no program for %s after the catch-up", h)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rev != rev {
		t.Errorf("manager at revision %d, the store at %d", m.rev, rev)
	}
}
