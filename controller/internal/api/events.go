package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
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

// eventBatch bounds one read of the event log.
const eventBatch = 500

// keepAlive is how often an idle stream gets a comment line.
var keepAlive = 15 * time.Second

// events streams changes as server-sent events, from ?since= (or
// Last-Event-ID) onwards, then live.
func (s *Server) events(c *gin.Context) {
	since := int64(0)
	raw := c.Query("since")
	if raw == "" {
		raw = c.GetHeader("Last-Event-ID")
	}
	if raw != "" {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v < 0 {
			fail(c, problem.Invalid("since", "since must be a revision number"))
			return
		}
		since = v
	}
	var kinds []string
	if k := c.Query("kinds"); k != "" {
		kinds = strings.Split(k, ",")
	}
	wake := s.hub.subscribe()
	defer s.hub.unsubscribe(wake)

	w := c.Writer
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	ctx := c.Request.Context()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		// Drain everything after since, in batches.
		for {
			evs, err := s.Store.EventsSince(ctx, since, kinds, eventBatch)
			if err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("event stream: read failed", "err", err)
				}
				return
			}
			for _, e := range evs {
				data, _ := json.Marshal(e)
				if _, err := fmt.Fprintf(w, "id: %d\nevent: %s.%s\ndata: %s\n\n", e.Revision, e.Kind, e.Action, data); err != nil {
					return
				}
				since = e.Revision
			}
			w.Flush()
			if len(evs) < eventBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}
