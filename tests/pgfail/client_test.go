package pgfail

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// answer is one HTTP exchange with the controller, timed.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
	Took   time.Duration
	Err    error // transport error (no answer)
}

// problemOK reports whether a answers a problem+json 503 with Retry-After,
// the way every request the database cannot serve must.
func (a answer) problem503() error {
	if a.Status != 503 {
		return fmt.Errorf("status %d (%v): %s", a.Status, a.Err, a.Body)
	}
	if ct := a.Header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("503 with Content-Type %q", ct)
	}
	if a.Header.Get("Retry-After") == "" {
		return fmt.Errorf("503 without Retry-After: %s", a.Body)
	}
	var p openapi.Problem
	if err := json.Unmarshal(a.Body, &p); err != nil || p.Status != 503 || p.Detail == "" {
		return fmt.Errorf("503 body %s: %v", a.Body, err)
	}
	return nil
}

// api calls the controller at base as admin.
type api struct {
	base, token string
	http        *http.Client
}

func newAPI(base string) *api {
	return &api{base: base, token: AdminToken, http: &http.Client{Timeout: time.Minute}}
}

func (c *api) call(method, path string, body any) answer {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	res, err := c.http.Do(req)
	a := answer{Err: err}
	if err == nil {
		a.Body, a.Err = io.ReadAll(res.Body)
		res.Body.Close()
		a.Status, a.Header = res.StatusCode, res.Header
	}
	a.Took = time.Since(start)
	return a
}

func (c *api) must(t testing.TB, want int, method, path string, body, out any) {
	t.Helper()
	a := c.call(method, path, body)
	if a.Status != want {
		t.Fatalf("%s %s: %d (%v), want %d: %s", method, path, a.Status, a.Err, want, a.Body)
	}
	if out != nil {
		if err := json.Unmarshal(a.Body, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// eventually retries f every 50 ms until it returns nil, and returns how
// long that took; it fails the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writers are clients creating containers in a loop, the way a client with
// retries does: a write that answers 503 is sent again (after a short
// pause) until it is acknowledged; a retry answered 409 "exists" is a write
// whose first answer was lost (in doubt) and that did land.
type writers struct {
	c       *api
	network string
	host    string

	mu       sync.Mutex
	acked    map[string]int64 // container name -> revision of its 201
	statuses map[int]int
	maxTook  time.Duration // of any answer
	first503 time.Time
	last503  time.Time
	unavail  int
	inDoubt  int // retries answered 409: the first attempt had landed
	bad      []string

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func startWriters(c *api, n int, network, host string) *writers {
	w := &writers{c: c, network: network, host: host, acked: map[string]int64{}, statuses: map[int]int{}, stop: make(chan struct{})}
	for i := range n {
		w.wg.Add(1)
		go w.run(i)
	}
	return w
}

func (w *writers) run(i int) {
	defer w.wg.Done()
	for n := 0; ; n++ {
		name := fmt.Sprintf("w%d-%d", i, n)
		retried := false
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			a := w.c.call("POST", "/api/v1/containers", map[string]any{"name": name, "network": w.network, "host": w.host})
			var rev int64
			if a.Status == 201 {
				var ct openapi.Container
				_ = json.Unmarshal(a.Body, &ct)
				rev = ct.Revision
			}
			done := w.record(name, a, retried, rev)
			if done {
				break
			}
			retried = true
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// record tallies one answer; it returns whether name is acknowledged.
func (w *writers) record(name string, a answer, retried bool, rev int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.statuses[a.Status]++
	w.maxTook = max(w.maxTook, a.Took)
	switch {
	case a.Status == 201:
		w.acked[name] = rev
		return true
	case a.Status == 409 && retried:
		w.inDoubt++
		w.acked[name] = 0
		return true
	case a.Status == 503:
		if err := a.problem503(); err != nil {
			w.bad = append(w.bad, err.Error())
		}
		if w.first503.IsZero() {
			w.first503 = time.Now()
		}
		w.last503 = time.Now()
		w.unavail++
		return false
	default:
		w.bad = append(w.bad, fmt.Sprintf("%s: %d (%v): %s", name, a.Status, a.Err, a.Body))
		return a.Status != 0 // a transport error is retried
	}
}

// count returns the acknowledged writes and the 503s seen so far.
func (w *writers) count() (acked, unavailable int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.unavail
}

// refusedFor is the time between the first and the last 503 so far.
func (w *writers) refusedFor() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last503.Sub(w.first503)
}

func (w *writers) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// check fails the test on any answer that was neither 201, a clean 503 nor
// a 409 of an in-doubt retry, and on any answer slower than bound.
func (w *writers) check(t testing.TB, bound time.Duration) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad {
		t.Errorf("writer: %s", b)
	}
	if w.maxTook > bound {
		t.Errorf("a write took %s (bound %s)", w.maxTook, bound)
	}
	t.Logf("writers: statuses %v, acknowledged %d (%d in doubt then found), slowest answer %s", w.statuses, len(w.acked), w.inDoubt, w.maxTook)
}

// containers lists every container, all pages.
func (c *api) containers(t testing.TB) map[string]openapi.Container {
	t.Helper()
	out := map[string]openapi.Container{}
	next := ""
	for {
		var l openapi.List[openapi.Container]
		c.must(t, 200, "GET", "/api/v1/containers?limit=500"+next, nil, &l)
		for _, ct := range l.Items {
			out[ct.Name] = ct
		}
		if l.Continue == "" {
			return out
		}
		next = "&continue=" + l.Continue
	}
}

// checkAcked fails the test unless every acknowledged container exists,
// once, whole (address and MAC), with exactly one created event and one
// audit entry.
func checkAcked(t testing.TB, c *api, w *writers) {
	t.Helper()
	have := c.containers(t)
	w.mu.Lock()
	defer w.mu.Unlock()
	for name := range w.acked {
		ct, ok := have[name]
		if !ok {
			t.Errorf("acknowledged container %s is lost", name)
			continue
		}
		if ct.IP == "" || ct.MAC == "" {
			t.Errorf("container %s is half written: %+v", name, ct)
		}
	}
	var rev struct {
		Revision int64 `json:"revision"`
	}
	c.must(t, 200, "GET", "/api/v1/revision", nil, &rev)
	created := map[string]int{}
	for _, e := range readEvents(t, c, 0, rev.Revision) {
		if e.Kind == "container" && e.Action == openapi.EventCreated {
			created[e.Name]++
		}
	}
	for name := range have {
		if created[name] != 1 {
			t.Errorf("container %s has %d created events", name, created[name])
		}
	}
	for name, n := range created {
		if _, ok := have[name]; !ok || n != 1 {
			t.Errorf("created event(s) %d of container %s that is not there", n, name)
		}
	}
	t.Logf("%d containers, %d acknowledged, every one whole with one created event", len(have), len(w.acked))
}

// sse reads GET /api/v1/events from since, reconnecting from the last id it
// got whenever the stream breaks (as an EventSource does), until ctx ends.
type sse struct {
	c *api

	mu         sync.Mutex
	events     []openapi.Event
	last       int64 // the last id received
	reconnects int
}

func follow(ctx context.Context, c *api, since int64) *sse {
	s := &sse{c: c, last: since}
	go s.run(ctx)
	return s
}

func (s *sse) run(ctx context.Context) {
	for ctx.Err() == nil {
		s.once(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.reconnects++
		s.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *sse) once(ctx context.Context) {
	s.mu.Lock()
	since := s.last
	s.mu.Unlock()
	// From the start: no since, which starts at the oldest event retained
	// (since=0 is a 410 once the log's horizon moved past revision 0).
	q := ""
	if since > 0 {
		q = "?since=" + strconv.FormatInt(since, 10)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", s.c.base+"/api/v1/events"+q, nil)
	req.Header.Set("Authorization", "Bearer "+s.c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return
	}
	// A revision's events count once the message with its id is
	// complete: a stream cut inside a revision is resumed from the
	// revision before.
	var pending []openapi.Event
	_ = client.ReadSSE(res.Body, func(m client.SSEMessage) bool {
		if e, ok := m.Change(); ok {
			pending = append(pending, e)
		}
		if m.ID != 0 {
			s.mu.Lock()
			s.events = append(s.events, pending...)
			s.last = m.ID
			s.mu.Unlock()
			pending = nil
		}
		return true
	})
}

// reconnected is how many times the stream broke and was opened again.
func (s *sse) reconnected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reconnects
}

// through returns the events received, once the stream reached rev.
func (s *sse) through(t testing.TB, rev int64) []openapi.Event {
	t.Helper()
	eventually(t, 30*time.Second, "event stream reaches the revision", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.last < rev {
			return fmt.Errorf("at %d, want %d", s.last, rev)
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]openapi.Event(nil), s.events...)
}

// readEvents reads the event log after since, through rev.
func readEvents(t testing.TB, c *api, since, rev int64) []openapi.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return follow(ctx, c, since).through(t, rev)
}

// sameEvents fails the test unless the live stream got exactly the events of
// the log, in order: no gap, no duplicate.
func sameEvents(t testing.TB, live, log []openapi.Event) {
	t.Helper()
	key := func(e openapi.Event) string { return fmt.Sprintf("%d/%s/%s/%s", e.Revision, e.Kind, e.Action, e.ID) }
	if len(live) != len(log) {
		t.Errorf("the live stream got %d events, the log has %d", len(live), len(log))
	}
	for i := range min(len(live), len(log)) {
		if key(live[i]) != key(log[i]) {
			t.Errorf("event %d: live %s, log %s", i, key(live[i]), key(log[i]))
			return
		}
	}
}
