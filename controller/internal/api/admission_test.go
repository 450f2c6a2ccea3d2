package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// admissionRig is a router behind the admission middleware whose write
// handlers block until released, so that slots are held deterministically.
type admissionRig struct {
	h       http.Handler
	s       *Server
	entered chan string   // a handler started (its path)
	release chan struct{} // one value lets one handler finish
}

func newAdmissionRig(max int, wait time.Duration) *admissionRig {
	gin.SetMode(gin.ReleaseMode)
	rig := &admissionRig{s: &Server{admission: newAdmission(max, wait)},
		entered: make(chan string, 100), release: make(chan struct{}, 100)}
	r := gin.New()
	r.Use(rig.s.admit())
	block := func(c *gin.Context) {
		rig.entered <- c.Request.URL.Path
		<-rig.release
		c.Status(http.StatusNoContent)
	}
	r.POST("/api/v1/networks", block)
	r.DELETE("/api/v1/networks/:ref", block)
	r.POST("/api/v1/nodes/:host/status", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	r.GET("/api/v1/networks", func(c *gin.Context) { c.Status(http.StatusOK) })
	// A write that commits, gives its slot back, then waits (as
	// ?wait=realized does) until released.
	r.PUT("/api/v1/networks/:ref", func(c *gin.Context) {
		releaseAdmission(c)
		block(c)
	})
	rig.h = r
	return rig
}

// do serves one request in the background; the answer comes on the channel.
func (rig *admissionRig) do(method, path string) <-chan *httptest.ResponseRecorder {
	out := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		rig.h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		out <- w
	}()
	return out
}

func (rig *admissionRig) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-rig.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("a write never reached its handler")
		}
	}
}

// Two slots held: the third write waits its admission wait and gets 429
// problem+json with Retry-After; reads and the node protocol pass; a write
// queued while a slot frees up gets it.
func TestAdmissionLimitsWrites(t *testing.T) {
	rig := newAdmissionRig(2, 50*time.Millisecond)
	a := rig.do("POST", "/api/v1/networks")
	b := rig.do("DELETE", "/api/v1/networks/x")
	rig.waitEntered(t, 2)

	w := <-rig.do("POST", "/api/v1/networks")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third write with two slots held: %d, want 429", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if ct := w.Header().Get("Content-Type"); ct != ProblemContentType {
		t.Errorf("content type %q, want %s", ct, ProblemContentType)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p["status"] != float64(429) || !strings.HasSuffix(p["type"].(string), "/overloaded") {
		t.Errorf("problem body %s (%v)", w.Body, err)
	}
	if n := testutil.ToFloat64(rig.s.admission.rejected); n != 1 {
		t.Errorf("rejected counter %v, want 1", n)
	}

	// Not limited: reads, and the agents' reports.
	if w := <-rig.do("GET", "/api/v1/networks"); w.Code != http.StatusOK {
		t.Errorf("read with every write slot held: %d", w.Code)
	}
	if w := <-rig.do("POST", "/api/v1/nodes/h1/status"); w.Code != http.StatusNoContent {
		t.Errorf("node report with every write slot held: %d", w.Code)
	}

	// A write in line gets the slot the first one frees. Its wait is long
	// enough here to never run out.
	rig.s.admission.wait = time.Minute
	queued := rig.do("POST", "/api/v1/networks")
	rig.release <- struct{}{}
	rig.waitEntered(t, 1) // the queued one is in
	rig.release <- struct{}{}
	rig.release <- struct{}{}
	for _, ch := range []<-chan *httptest.ResponseRecorder{a, b, queued} {
		if w := <-ch; w.Code != http.StatusNoContent {
			t.Errorf("admitted write: %d", w.Code)
		}
	}
	if n := len(rig.s.admission.slots); n != 0 {
		t.Errorf("%d slots still taken after every write ended", n)
	}
}

// A write that gave its slot back (committed, now waiting until realized)
// does not count against the limit, and its deferred release does not free
// a second slot.
func TestAdmissionReleasedBeforeWait(t *testing.T) {
	rig := newAdmissionRig(1, 10*time.Millisecond)
	waiting := rig.do("PUT", "/api/v1/networks/x")
	rig.waitEntered(t, 1)
	held := rig.do("POST", "/api/v1/networks")
	rig.waitEntered(t, 1)
	if w := <-rig.do("DELETE", "/api/v1/networks/y"); w.Code != http.StatusTooManyRequests {
		t.Errorf("write with the one slot held: %d, want 429", w.Code)
	}
	rig.release <- struct{}{}
	rig.release <- struct{}{}
	<-waiting
	<-held
	if n := len(rig.s.admission.slots); n != 0 {
		t.Errorf("%d slots taken after every write ended", n)
	}
}

// A burst of writes far above the limit: every one is answered, admitted
// or 429, none hangs; the number admitted at once never exceeds the limit.
func TestAdmissionBurst(t *testing.T) {
	const limit, burst = 4, 400
	gin.SetMode(gin.ReleaseMode)
	s := &Server{admission: newAdmission(limit, time.Millisecond)}
	var mu sync.Mutex
	running, peak := 0, 0
	r := gin.New()
	r.Use(s.admit())
	r.POST("/api/v1/networks", func(c *gin.Context) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond) // a commit's worth of work
		mu.Lock()
		running--
		mu.Unlock()
		c.Status(http.StatusCreated)
	})
	codes := make(chan int, burst)
	var wg sync.WaitGroup
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/networks", nil))
			codes <- w.Code
		}()
	}
	wg.Wait()
	close(codes)
	tally := map[int]int{}
	for c := range codes {
		tally[c]++
	}
	if tally[201]+tally[429] != burst || tally[201] == 0 {
		t.Errorf("answers %v, want only 201 and 429 (some 201)", tally)
	}
	if peak > limit {
		t.Errorf("%d writes ran at once, limit %d", peak, limit)
	}
	t.Logf("%d writes at once, limit %d: %v, peak %d", burst, limit, tally, peak)
}
