package agent

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/openapi"
)

// fakeResolver fails its first Start, then records what it is fed.
type fakeResolver struct {
	mu      sync.Mutex
	starts  int
	fed     chan int64
	counter prometheus.Counter
}

func (r *fakeResolver) Start(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts++
	if r.starts == 1 {
		return errors.New("no namespace yet")
	}
	return nil
}
func (r *fakeResolver) Update(p *openapi.Program)          { r.fed <- p.Revision }
func (r *fakeResolver) Collectors() []prometheus.Collector { return []prometheus.Collector{r.counter} }

// The resolver is started (retried after a failure, without holding up the
// agent) and fed every applied program, whole or delta; a failed apply is
// not fed. Its metrics are on the agent's registry.
func TestResolverFedEveryAppliedProgram(t *testing.T) {
	c := newFakeController(t)
	c.publish(prog(1))
	dp := newFakeDatapath()
	r := &fakeResolver{fed: make(chan int64, 10),
		counter: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_agent_dns_test_total", Help: "test"})}
	a := startAgent(t, c, dp, Config{DNS: r})
	next(t, dp.applied)
	if got := fed(t, r); got != 1 {
		t.Fatalf("fed revision %d, want 1", got)
	}
	dp.setFail(errors.New("boom"))
	c.publish(prog(2))
	next(t, dp.applied)
	dp.setFail(nil)
	if got := fed(t, r); got != 2 { // the retry that succeeded
		t.Fatalf("fed revision %d, want 2", got)
	}
	eventually(t, "the resolver started again", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.starts >= 2
	})
	if n, err := testutil.GatherAndCount(a.m.reg, "switchyard_agent_dns_test_total"); err != nil || n != 1 {
		t.Fatalf("resolver metrics on the agent's registry: %d %v", n, err)
	}
}

func fed(t *testing.T, r *fakeResolver) int64 {
	t.Helper()
	select {
	case rev := <-r.fed:
		return rev
	case <-time.After(30 * time.Second):
		t.Fatal("resolver not fed within 30 s")
		return 0
	}
}
