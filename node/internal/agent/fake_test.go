package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// fakeDatapath records calls; Apply fails while fail is set.
type fakeDatapath struct {
	mu       sync.Mutex
	underlay int
	observe  int
	applies  []time.Time
	revs     []int64
	changes  []*openapi.ProgramDelta
	fail     error
	drift    []string
	// observing, when set, makes the next Observe signal on it and wait
	// until its context ends (then it returns that error).
	observing chan struct{}
	cancelled int        // Observes that ended with their context
	applied   chan int64 // receives each applied or attempted revision
	restarts  chan string
}

func newFakeDatapath() *fakeDatapath {
	return &fakeDatapath{applied: make(chan int64, 100), restarts: make(chan string, 1)}
}

// setFail makes the next applies fail with err (nil: succeed).
func (f *fakeDatapath) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

func (f *fakeDatapath) EnsureUnderlay(context.Context, string, netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.underlay++
	return nil
}
func (f *fakeDatapath) NewGeneration(context.Context) (uint16, error) { return 1, nil }
func (f *fakeDatapath) Apply(_ context.Context, p *openapi.Program, d *openapi.ProgramDelta) (Result, error) {
	f.mu.Lock()
	f.changes = append(f.changes, d)
	f.applies = append(f.applies, time.Now())
	f.revs = append(f.revs, p.Revision)
	err := f.fail
	f.mu.Unlock()
	if f.applied != nil {
		f.applied <- p.Revision
	}
	ports := []openapi.PortStatus{{Name: "vc1", Up: true}}
	if len(p.Containers) > 0 {
		ports = nil
		for _, c := range p.Containers {
			ports = append(ports, openapi.PortStatus{Name: c.Name, Up: true})
		}
	}
	return Result{Flows: len(p.Flows), Ports: ports}, err
}
func (f *fakeDatapath) Observe(ctx context.Context) (Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe++
	if f.observing != nil {
		sig := f.observing
		f.observing = nil
		f.mu.Unlock()
		sig <- struct{}{}
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		f.mu.Lock()
	}
	if ctx.Err() != nil {
		f.cancelled++
		return Observation{}, ctx.Err()
	}
	return Observation{Drift: f.drift}, nil
}
func (f *fakeDatapath) Restarts() <-chan string { return f.restarts }

// fakeController speaks the node protocol for host h1 and counts requests.
type fakeController struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	prog     *openapi.Program
	changed  chan struct{} // closed and replaced when prog changes
	requests map[string]int
	fulls    int // program responses
	reports  []openapi.NodeStatus
	// statusGate, when set, holds every status request until it is closed.
	statusGate chan struct{}
	// abandoned counts status requests the agent gave up on while held.
	abandoned int
	// failStatus is how many of the next status requests get a 503.
	failStatus int
	reported   chan openapi.NodeStatus
}

func newFakeController(t *testing.T) *fakeController {
	c := &fakeController{t: t, changed: make(chan struct{}), requests: map[string]int{},
		reported: make(chan openapi.NodeStatus, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/nodes/h1/register", func(w http.ResponseWriter, r *http.Request) {
		c.count("register")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(openapi.Host{Name: "h1", Address: "192.168.200.11"})
	})
	mux.HandleFunc("GET /api/v1/nodes/h1/program", func(w http.ResponseWriter, r *http.Request) {
		c.count("program")
		timeout, _ := time.ParseDuration(r.URL.Query().Get("timeout"))
		deadline := time.After(timeout)
		for {
			c.mu.Lock()
			p, changed := c.prog, c.changed
			if p != nil && p.Digest != r.URL.Query().Get("digest") {
				c.fulls++
				c.mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(openapi.ProgramUpdate{Revision: p.Revision, Full: true, Program: p})
				return
			}
			c.mu.Unlock()
			select {
			case <-changed:
			case <-deadline:
				w.WriteHeader(http.StatusNoContent)
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST /api/v1/nodes/h1/status", func(w http.ResponseWriter, r *http.Request) {
		c.count("status")
		var st openapi.NodeStatus
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &st); err != nil {
			t.Errorf("status body: %v", err)
		}
		c.mu.Lock()
		gate := c.statusGate
		c.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				c.mu.Lock()
				c.abandoned++
				c.mu.Unlock()
				return
			}
		}
		c.mu.Lock()
		fail := c.failStatus > 0
		if fail {
			c.failStatus--
		}
		c.reports = append(c.reports, st)
		c.mu.Unlock()
		c.reported <- st
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *fakeController) count(what string) {
	c.mu.Lock()
	c.requests[what]++
	c.mu.Unlock()
}

// publish makes p the host's program.
func (c *fakeController) publish(p *openapi.Program) {
	c.mu.Lock()
	c.prog = p
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *fakeController) snapshot() (map[string]int, int, []openapi.NodeStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := map[string]int{}
	for k, v := range c.requests {
		req[k] = v
	}
	return req, c.fulls, append([]openapi.NodeStatus(nil), c.reports...)
}

// startAgent runs an agent against c until the test ends.
func startAgent(t *testing.T, c *fakeController, dp Datapath, cfg Config) *Agent {
	t.Helper()
	cfg.ControllerURL, cfg.Host, cfg.Token = c.srv.URL, "h1", "t"
	cfg.Address = netip.MustParseAddr("192.168.200.11")
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Hour
	}
	if cfg.Resync == 0 {
		cfg.Resync = time.Hour
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 5 * time.Second
	}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	a := New(cfg, dp)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// next waits for the next revision the datapath was asked to apply.
func next(t *testing.T, ch <-chan int64) int64 {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no apply within 30 s")
		return 0
	}
}

func prog(rev int64) *openapi.Program {
	return &openapi.Program{Host: "h1", Revision: rev, Digest: "d" + string(rune('0'+rev)),
		Flows: []openapi.Flow{{}}}
}

// publishEach publishes the programs of revisions from to to, each once
// the one before is applied, and calls after (if any) after each.
func publishEach(t *testing.T, c *fakeController, dp *fakeDatapath, from, to int64, after func()) {
	t.Helper()
	for rev := from; rev <= to; rev++ {
		c.publish(prog(rev))
		if r := next(t, dp.applied); r != rev {
			t.Fatalf("applied %d, want %d", r, rev)
		}
		if after != nil {
			after()
		}
	}
}

// eventually waits up to 30 s for cond to hold, failing with what.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
