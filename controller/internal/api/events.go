package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
)

// hub fans the committed revisions heard from PostgreSQL out to the open
// event streams. A subscriber only learns that something new exists; it
// reads the events themselves from the store, so a slow client never
// blocks the others and never misses an event.
type hub struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: map[chan struct{}]struct{}{}} }

func (h *hub) subscribe() chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *hub) unsubscribe(ch chan struct{}) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *hub) publish(string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default: // already woken
		}
	}
}

// eventBatch bounds one read of the event log (whole revisions are read,
// so one read may return more).
const eventBatch = 500

// keepAlive is how often an idle stream gets a comment line.
var keepAlive = 15 * time.Second

// events streams changes as server-sent events, from ?since= (or
// Last-Event-ID) onwards, then live. A resume point from before the event
// log's retention is answered 410: the client must resync.
func (s *Server) events(c *gin.Context) {
	since, field, err := parseSince(c)
	if err != nil {
		fail(c, err)
		return
	}
	kinds, err := parseKinds(c)
	if err != nil {
		fail(c, err)
		return
	}
	// The event log has no policy-log events: that kind in the filter is
	// harmless there.
	logs := kinds == nil || slices.Contains(kinds, PolicyLogKind)
	wake := s.hub.subscribe()
	defer s.hub.unsubscribe(wake)
	var statuses chan string // nil: never
	var hosts hostStatusWriter
	if kinds == nil || slices.Contains(kinds, HostStatusKind) {
		statuses = s.statusHub.subscribe()
		defer s.statusHub.unsubscribe(statuses)
	}
	ctx := c.Request.Context()
	var logWake chan struct{} // nil: never
	var logAfter int64
	if logs {
		logWake = s.logHub.subscribe()
		defer s.logHub.unsubscribe(logWake)
		if logAfter, err = s.Store.PolicyLogHead(ctx); err != nil {
			fail(c, err)
			return
		}
	}
	// The first read comes before the answer starts, so that a resume point
	// the log no longer reaches gets a problem, not a stream with a gap.
	page, sent, err := s.firstPage(ctx, since, field, kinds)
	if err != nil {
		fail(c, err)
		return
	}

	w := c.Writer
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		// Send the page read, then read on until the log is drained.
		for {
			if err := writePage(w, page, &sent); err != nil {
				return
			}
			w.Flush()
			if len(page.Events) < eventBatch {
				break
			}
			if page, err = s.nextPage(ctx, w, page.Through, kinds); err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
			if page, err = s.nextPage(ctx, w, page.Through, kinds); err != nil {
				return
			}
		case <-logWake:
			page = store.EventPage{Through: page.Through}
			if err := s.writePolicyLog(ctx, w, &logAfter); err != nil {
				return
			}
		case p := <-statuses:
			page = store.EventPage{Through: page.Through}
			if err := hosts.write(w, p); err != nil {
				return
			}
		case <-tick.C:
			page = store.EventPage{Through: page.Through}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}

// firstPage reads the first page of a stream, and returns the resume point
// the client has. Without one (field ""), it starts at the oldest event
// retained; otherwise it checks the resume point against the current
// revision and the retention.
func (s *Server) firstPage(ctx context.Context, since int64, field string, kinds []string) (store.EventPage, int64, error) {
	if field == "" {
		// A prune between the two reads moves the horizon on: read it again.
		for range 3 {
			h, err := s.Store.EventHorizon(ctx)
			if err != nil {
				return store.EventPage{}, 0, err
			}
			p, err := s.Store.ReadEvents(ctx, h, kinds, eventBatch)
			if !errors.Is(err, store.ErrEventsPruned) {
				return p, h, err
			}
		}
		return store.EventPage{}, 0, problem.Unavailable("the event log is being pruned; retry")
	}
	rev, err := s.Store.Revision(ctx)
	if err != nil {
		return store.EventPage{}, 0, err
	}
	if since > rev {
		return store.EventPage{}, 0, problem.Invalid(field, "%s %d is ahead of the current revision %d", field, since, rev)
	}
	p, err := s.Store.ReadEvents(ctx, since, kinds, eventBatch)
	if errors.Is(err, store.ErrEventsPruned) {
		return p, 0, problem.Gone(field, "%v; resync: GET /api/v1/revision, read the objects, then stream from that revision", err)
	}
	return p, since, err
}

// nextPage reads the next page of a stream that has started. An error ends
// the stream; when the retention overtook the stream, a comment says so,
// and the client's reconnect (from its last id) is answered 410.
func (s *Server) nextPage(ctx context.Context, w io.Writer, since int64, kinds []string) (store.EventPage, error) {
	p, err := s.Store.ReadEvents(ctx, since, kinds, eventBatch)
	switch {
	case errors.Is(err, store.ErrEventsPruned):
		s.Log.Info("event stream: overtaken by the retention", "since", since)
		fmt.Fprintf(w, ": %v\n\n", err) //nolint:errcheck // the stream ends anyway
	case err != nil && ctx.Err() == nil:
		s.Log.Warn("event stream: read failed", "err", err)
	}
	return p, err
}

// writePage sends a page as SSE messages; *sent is the last id sent. Only
// the last event of a revision carries an id (its revision): a client cut
// off inside a revision resumes (Last-Event-ID) from the revision before
// and gets all of it. When the page reaches past its last event (revisions
// with no events of the kinds asked for), a message with only an id moves
// the client's resume point there, so it never resumes from far back.
func writePage(w io.Writer, p store.EventPage, sent *int64) error {
	for i, e := range p.Events {
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		id := ""
		if i == len(p.Events)-1 || p.Events[i+1].Revision != e.Revision {
			id = "id: " + strconv.FormatInt(e.Revision, 10) + "\n"
			*sent = e.Revision
		}
		if _, err := fmt.Fprintf(w, "%sevent: %s.%s\ndata: %s\n\n", id, e.Kind, e.Action, data); err != nil {
			return err
		}
	}
	if p.Through > *sent {
		*sent = p.Through
		if _, err := fmt.Fprintf(w, "id: %d\n\n", p.Through); err != nil {
			return err
		}
	}
	return nil
}

// PolicyLogKind is the event kind of policy log entries on the stream.
const PolicyLogKind = "policy-log"

// writePolicyLog sends the policy log entries after *after as
// "policy-log" messages without an id: they are live only, not part of
// the resumable event log (GET /policies/{ref}/log reads them back).
func (s *Server) writePolicyLog(ctx context.Context, w gin.ResponseWriter, after *int64) error {
	for {
		entries, err := s.Store.PolicyLogAfter(ctx, *after, eventBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("event stream: policy log read failed", "err", err)
			}
			return err
		}
		for _, e := range entries {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", PolicyLogKind, data); err != nil {
				return err
			}
			*after, _ = strconv.ParseInt(e.Cursor, 10, 64)
		}
		w.Flush()
		if len(entries) < eventBatch {
			return nil
		}
	}
}

// parseSince reads the resume point: ?since=, else the Last-Event-ID
// header; field names the one used ("" for neither).
func parseSince(c *gin.Context) (since int64, field string, err error) {
	raw, ok := c.GetQuery("since")
	field = "since"
	if !ok {
		raw, field = c.GetHeader("Last-Event-ID"), "Last-Event-ID"
		if raw == "" {
			return 0, "", nil
		}
	}
	if raw == "" || strings.TrimLeft(raw, "0123456789") != "" {
		return 0, "", problem.Invalid(field, "%s must be a revision number (decimal digits)", field)
	}
	since, err = strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, "", problem.Invalid(field, "%s is out of range", field)
	}
	return since, field, nil
}

// parseKinds reads ?kinds=, a comma-separated list of event kinds (nil
// when absent: every kind).
func parseKinds(c *gin.Context) ([]string, error) {
	raw, ok := c.GetQueryArray("kinds")
	if !ok {
		return nil, nil
	}
	var kinds []string
	for _, list := range raw {
		for _, k := range strings.Split(list, ",") {
			if !slices.Contains(store.EventKinds, k) && k != PolicyLogKind && k != HostStatusKind {
				return nil, problem.Invalid("kinds", "unknown kind %q: kinds is a comma-separated list of %s, %s, %s",
					k, strings.Join(store.EventKinds, ", "), PolicyLogKind, HostStatusKind)
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	return kinds, nil
}
