package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// Revision is the controller's current revision (GET /api/v1/revision).
func (c *Cluster) Revision(t testing.TB) int64 {
	t.Helper()
	var out struct {
		Revision int64 `json:"revision"`
	}
	c.MustDo(t, 200, "GET", "/api/v1/revision", nil, &out)
	return out.Revision
}

// EventStream is an open GET /api/v1/events stream, collecting every event
// it receives until the test ends.
type EventStream struct {
	mu     sync.Mutex
	events []openapi.Event
	err    error
	wake   chan struct{}
}

// Events opens the event stream from revision since (the events after it),
// of the kinds given (all when none).
func (c *Cluster) Events(t testing.TB, since int64, kinds ...string) *EventStream {
	t.Helper()
	q := "?since=" + strconv.FormatInt(since, 10)
	if len(kinds) > 0 {
		q += "&kinds=" + strings.Join(kinds, ",")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", c.URL+"/api/v1/events"+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/v1/events%s: %v", q, err)
	}
	if res.StatusCode != 200 {
		var p openapi.Problem
		_ = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		t.Fatalf("GET /api/v1/events%s: %s %+v", q, res.Status, p)
	}
	s := &EventStream{wake: make(chan struct{})}
	go s.read(res)
	return s
}

// read collects the stream's Events (messages named "<kind>.<action>");
// resume points, keep-alives and the live-only policy-log and host-status
// messages are left out.
func (s *EventStream) read(res *http.Response) {
	defer res.Body.Close()
	rerr := client.ReadSSE(res.Body, func(m client.SSEMessage) bool {
		if m.Data == "" || !strings.Contains(m.Event, ".") {
			return true
		}
		e, ok := m.Change()
		s.mu.Lock()
		if !ok {
			s.err = fmt.Errorf("event %q: not an Event", m.Data)
		} else {
			s.events = append(s.events, e)
		}
		close(s.wake)
		s.wake = make(chan struct{})
		s.mu.Unlock()
		return true
	})
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("event stream ended: %v", rerr)
	}
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// Wait waits until an event matching f has arrived and returns the first
// such, failing the test after timeout (or when the stream breaks).
func (s *EventStream) Wait(t testing.TB, timeout time.Duration, what string, f func(openapi.Event) bool) openapi.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if f(e) {
				s.mu.Unlock()
				return e
			}
		}
		wake, err, n := s.wake, s.err, len(s.events)
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("no event %s within %s (%d events seen)", what, timeout, n)
		}
	}
}
