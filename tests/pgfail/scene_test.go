package pgfail

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// scene is a controller on a database of a test's own with network n1 and
// host h1, and clients writing containers there.
type scene struct {
	c    *api
	w    *writers
	live *sse // the event stream, from revision 0
	// bound is what no writer's answer may take (answerBound unless set).
	bound time.Duration
}

// writing starts the controller on url, makes n1 and h1, opens the event
// stream, starts n writers and waits until 10 writes are acknowledged. The
// writers and the stream stop when the test ends.
func writing(t testing.TB, url string, n int) *scene {
	t.Helper()
	ctl := StartController(t, url)
	c := newAPI(ctl.URL)
	c.must(t, 201, "POST", "/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.1.0.0/16"}, nil)
	c.must(t, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &scene{c: c, live: follow(ctx, c, 0), w: startWriters(c, n, "n1", "h1"), bound: answerBound}
	t.Cleanup(s.w.halt)
	waitAcked(t, s.w, 10)
	return s
}

// finish stops the writers and checks what they got (no answer but 201,
// clean 503s and in-doubt 409s; none slower than s.bound) and that
// every acknowledged write is there, whole, once; with stream, that the
// live event stream got exactly the event log.
func (s *scene) finish(t testing.TB, stream bool) {
	t.Helper()
	s.w.halt()
	s.w.check(t, s.bound)
	checkAcked(t, s.c, s.w)
	if stream {
		var rev struct {
			Revision int64 `json:"revision"`
		}
		s.c.must(t, 200, "GET", "/api/v1/revision", nil, &rev)
		sameEvents(t, s.live.through(t, rev.Revision), readEvents(t, s.c, 0, rev.Revision))
	}
}

// waitAcked waits until the writers have n writes acknowledged.
func waitAcked(t testing.TB, w *writers, n int) {
	t.Helper()
	eventually(t, 30*time.Second, "acknowledged writes", func() error {
		if got, _ := w.count(); got < n {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// waitRefused waits until the writers have been refused for d, and returns
// when the first refusal came.
func waitRefused(t testing.TB, w *writers, d time.Duration) time.Time {
	t.Helper()
	eventually(t, 60*time.Second, "the writers are refused", func() error {
		if got := w.refusedFor(); got < d {
			return fmt.Errorf("refused for %s", got)
		}
		return nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first503
}

// waitRecovered waits until a write is acknowledged after acked ones, /readyz
// answers 200 and 10 more writes landed; it returns the first two as times
// since back.
func waitRecovered(t testing.TB, c *api, w *writers, acked int, back time.Time) (firstWrite, ready time.Duration) {
	t.Helper()
	waitAcked(t, w, acked+1)
	firstWrite = time.Since(back)
	eventually(t, 30*time.Second, "/readyz", func() error {
		if a := c.call("GET", "/readyz", nil); a.Status != 200 {
			return fmt.Errorf("%d %s", a.Status, a.Body)
		}
		return nil
	})
	ready = time.Since(back)
	waitAcked(t, w, acked+10)
	return firstWrite, ready
}

// followsWrite creates a container on h1 through via (this controller or
// another replica) and waits until this controller's node layer has h1's
// program at that write's revision; it returns how long that took.
func (s *scene) followsWrite(t testing.TB, via *api) time.Duration {
	t.Helper()
	var ct openapi.Container
	start := time.Now()
	via.must(t, 201, "POST", "/api/v1/containers", map[string]any{"name": "follow", "network": "n1", "host": "h1"}, &ct)
	eventually(t, 30*time.Second, "h1's program reaches the write", func() error {
		var h openapi.Host
		s.c.must(t, 200, "GET", "/api/v1/hosts/h1", nil, &h)
		if h.ProgramRevision != ct.Revision {
			return fmt.Errorf("program at revision %d, the write %d", h.ProgramRevision, ct.Revision)
		}
		return nil
	})
	return time.Since(start)
}
