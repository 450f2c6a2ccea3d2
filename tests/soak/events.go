package soak

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/cluster"
)

// evKey is what identifies one event of the log.
type evKey struct {
	Revision     int64
	Kind, Action string
	ID           string
}

func (k evKey) String() string {
	return fmt.Sprintf("r%d %s.%s %s", k.Revision, k.Kind, k.Action, k.ID)
}

// watcher follows GET /api/v1/events from a revision, as a client that
// resumes does: when the stream breaks (a replica killed, PostgreSQL
// restarted) it reconnects, to whichever replica the soak talks to now,
// from the last revision it received whole (the last `id:`), dropping the
// events of a revision it had only in part. Problems are what a client
// would see wrong: an event of a revision not above the resume point (a
// duplicate), revisions going backwards.
type watcher struct {
	api *api

	start int64 // the revision it follows the log from

	mu         sync.Mutex
	events     []evKey
	lastID     int64
	reconnects int
	problems   []string
}

// watch starts following the log after revision since until ctx ends.
func watch(ctx context.Context, a *api, since int64) *watcher {
	w := &watcher{api: a, lastID: since, start: since}
	go w.run(ctx)
	return w
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.reconnects++
		// A revision received in part comes again whole after the resume.
		for len(w.events) > 0 && w.events[len(w.events)-1].Revision > w.lastID {
			w.events = w.events[:len(w.events)-1]
		}
		w.mu.Unlock()
		_ = err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stream reads one connection until it breaks.
func (w *watcher) stream(ctx context.Context) error {
	w.mu.Lock()
	since := w.lastID
	w.mu.Unlock()
	return readEvents(ctx, w.api.Base(), since, func(id int64, e *openapi.Event) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		if e != nil {
			k := evKey{e.Revision, e.Kind, e.Action, e.ID}
			if e.Revision <= w.lastID {
				w.problems = append(w.problems, fmt.Sprintf("event stream: %s at or below the resume point r%d (a duplicate)", k, w.lastID))
			}
			if n := len(w.events); n > 0 && w.events[n-1].Revision > e.Revision {
				w.problems = append(w.problems, fmt.Sprintf("event stream: %s after r%d (out of order)", k, w.events[n-1].Revision))
			}
			w.events = append(w.events, k)
		}
		if id > 0 {
			if id < w.lastID {
				w.problems = append(w.problems, fmt.Sprintf("event stream: id %d after id %d", id, w.lastID))
			}
			w.lastID = id
		}
		return true
	})
}

// readEvents streams the events after since from base, calling f for each
// message: the id (0 when the message has none) and the event (nil for an
// id-only message). It returns when f returns false, ctx ends or the
// stream breaks.
func readEvents(ctx context.Context, base string, since int64, f func(id int64, e *openapi.Event) bool) error {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events?since="+strconv.FormatInt(since, 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cluster.AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("GET /api/v1/events: %s", res.Status)
	}
	stopped := false
	err = client.ReadSSE(res.Body, func(m client.SSEMessage) bool {
		ev, ok := m.Change()
		switch {
		case ok:
			stopped = !f(m.ID, &ev)
		case m.ID != 0:
			stopped = !f(m.ID, nil)
		}
		return !stopped // keep-alives and the live-only policy-log and host-status are skipped
	})
	if stopped {
		return nil
	}
	return fmt.Errorf("event stream ended: %v", err)
}

// replay reads the log after since, fresh, up to revision until.
func replay(a *api, since, until int64) ([]evKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []evKey
	done := since >= until
	if done {
		return nil, nil
	}
	err := readEvents(ctx, a.Base(), since, func(id int64, e *openapi.Event) bool {
		if e != nil && e.Revision <= until {
			out = append(out, evKey{e.Revision, e.Kind, e.Action, e.ID})
		}
		if id >= until {
			done = true
			return false
		}
		return true
	})
	if !done {
		return out, fmt.Errorf("replay after r%d did not reach r%d: %v", since, until, err)
	}
	return out, nil
}

// verify waits until the watcher has received revision until whole, then
// compares what it received live (across its reconnects) with a fresh
// replay of the same range: a missing event is a gap. It returns the
// problems seen (nil: none).
func (w *watcher) verify(until int64, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		w.mu.Lock()
		last := w.lastID
		w.mu.Unlock()
		if last >= until {
			break
		}
		if time.Now().After(deadline) {
			return []string{fmt.Sprintf("event stream: at r%d, %s after the log reached r%d", last, wait, until)}
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.mu.Lock()
	var live []evKey
	problems := append([]string(nil), w.problems...)
	for _, e := range w.events {
		if e.Revision <= until {
			live = append(live, e)
		}
	}
	w.mu.Unlock()
	fresh, err := replay(w.api, w.start, until)
	if err != nil {
		return append(problems, err.Error())
	}
	return append(problems, compareEvents(live, fresh)...)
}

// compareEvents lists how the events received live differ from a fresh
// replay of the log: missing ones (a gap) and extra ones (duplicates).
func compareEvents(live, fresh []evKey) []string {
	count := map[evKey]int{}
	for _, e := range fresh {
		count[e]++
	}
	for _, e := range live {
		count[e]--
	}
	var out []string
	for _, e := range fresh {
		if n := count[e]; n > 0 {
			out = append(out, fmt.Sprintf("event stream: gap: %s is in the log but was not received", e))
			count[e] = 0
		}
	}
	for _, e := range live {
		if n := count[e]; n < 0 {
			out = append(out, fmt.Sprintf("event stream: %s received %d more time(s) than the log has it", e, -n))
			count[e] = 0
		}
	}
	return out
}

// stats are the watcher's counters for the report.
func (w *watcher) stats() (events, reconnects int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events), w.reconnects
}
