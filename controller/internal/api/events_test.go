package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// bigRevision commits one revision of n events: updates of host h1 and
// network blue, taking turns (seed them first). It returns the revision.
func bigRevision(t *testing.T, e *env, n int) int64 {
	t.Helper()
	var h openapi.Host
	e.must(200, "GET", "/api/v1/hosts/h1", nil).decode(t, &h)
	var nw openapi.Network
	e.must(200, "GET", "/api/v1/networks/blue", nil).decode(t, &nw)
	rev, err := e.ctl.Store.Write(context.Background(), "test", func(tx *store.Tx) error {
		for i := range n {
			var err error
			if i%2 == 0 {
				err = tx.Record("host", openapi.EventUpdated, h.ID, h.Name, "", h)
			} else {
				err = tx.Record("network", openapi.EventUpdated, nw.ID, nw.Name, "", nw)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// eventsAnswer opens the event stream and returns the answer; a stream
// (200) is closed at once, unread.
func eventsAnswer(t *testing.T, e *env, query string, header map[string]string) resp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := doEvents(ctx, e, query, header)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		return resp{Status: res.StatusCode, Header: res.Header}
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{Status: res.StatusCode, Header: res.Header, Body: body}
}

// untilRed reads a stream up to the creation of network red.
func untilRed(s *sseStream) []openapi.Event {
	var evs []openapi.Event
	for {
		ev := s.next()
		evs = append(evs, ev)
		if ev.Kind == "network" && ev.Name == "red" {
			return evs
		}
	}
}

// A revision with more events than the stream reads at once (500) comes
// through whole, on a first read and on a resume with Last-Event-ID; only
// the last event of a revision carries an id. Before, the stream read 500
// events, went on after their revision and lost the other 700.
func TestEventsWholeRevisions(t *testing.T) {
	e := newEnv(t, nil)
	start := e.revision()
	e.seed() // 3 revisions of one event
	big := bigRevision(t, e, 1200)
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "red", "cidr": "10.20.0.0/24"})

	s := openEvents(t, e, fmt.Sprintf("?since=%d", start), nil)
	evs := untilRed(s)
	if len(evs) != 3+1200+1 {
		t.Fatalf("%d events, want %d", len(evs), 3+1200+1)
	}
	// An id on each one-event revision and on the last of the big one.
	if want := map[int]string{0: fmt.Sprint(start + 1), 1: fmt.Sprint(start + 2), 2: fmt.Sprint(start + 3),
		1202: fmt.Sprint(big), 1203: fmt.Sprint(big + 1)}; fmt.Sprint(s.ids) != fmt.Sprint(want) {
		t.Fatalf("ids by event index %v, want %v", s.ids, want)
	}
	for i, ev := range evs[3:1203] {
		if ev.Revision != big {
			t.Fatalf("event %d of the big revision is at %d", i, ev.Revision)
		}
	}
	// A client cut off inside the big revision resumes from its last id.
	resumed := untilRed(openEvents(t, e, "", map[string]string{"Last-Event-ID": fmt.Sprint(big - 1)}))
	if len(resumed) != 1200+1 {
		t.Fatalf("resumed with %d events, want %d", len(resumed), 1200+1)
	}
	// With a kind filter, the big revision's networks, whole.
	nets := untilRed(openEvents(t, e, fmt.Sprintf("?since=%d&kinds=network", start), nil))
	if len(nets) != 1+600+1 {
		t.Fatalf("%d network events, want %d", len(nets), 1+600+1)
	}
}

// A resume point from before the retention gets 410 naming it; from the
// horizon on, or without one, the stream serves what is retained.
func TestEventsPruned(t *testing.T) {
	e := newEnv(t, nil)
	start := e.revision()
	e.seed()
	last := e.revision()
	if n, err := e.ctl.Store.PruneEvents(context.Background(), store.Retention{Revisions: 1}); err != nil || n == 0 {
		t.Fatalf("pruned %d (%v)", n, err)
	}
	e.wantProblem(eventsAnswer(t, e, fmt.Sprintf("?since=%d", start), nil), 410, "since")
	e.wantProblem(eventsAnswer(t, e, "", map[string]string{"Last-Event-ID": fmt.Sprint(last - 2)}), 410, "Last-Event-ID")
	for _, q := range []string{fmt.Sprintf("?since=%d", last-1), ""} {
		if evs := readEvents(t, e, q, nil, 1); evs[0].Revision != last || evs[0].Name != "h2" {
			t.Errorf("events%s: %+v", q, evs)
		}
	}
}

// A filtered stream's resume point follows the log even while nothing
// matches: messages with only an id move it, so a client that reconnects
// after a prune is not sent away with 410 for events it never wanted (and
// the stream does not re-read everything after its first revision on every
// change). Before, the id only ever moved with a matching event.
func TestEventsFilteredResumePoint(t *testing.T) {
	e := newEnv(t, nil)
	s := openEvents(t, e, fmt.Sprintf("?since=%d&kinds=policy", e.revision()), nil)
	e.seed()
	rev := fmt.Sprint(e.revision())
	for s.lastID != rev {
		id, _, data, ok := s.message()
		if !ok || data != "" || id == "" {
			t.Fatalf("stream: id %q data %q (ok %v), want messages with only an id up to %s", id, data, ok, rev)
		}
		s.lastID = id
	}
	if n, err := e.ctl.Store.PruneEvents(context.Background(), store.Retention{Revisions: 1}); err != nil || n == 0 {
		t.Fatalf("pruned %d (%v)", n, err)
	}
	if r := eventsAnswer(t, e, "?kinds=policy", map[string]string{"Last-Event-ID": s.lastID}); r.Status != 200 {
		t.Fatalf("resume from %s after the prune: %d %s", s.lastID, r.Status, r.Body)
	}
}

// Every malformed since, Last-Event-ID and kinds is a 400 naming it.
// Before, kinds=bogus streamed nothing, silently, and since=+1 or an empty
// since were taken.
func TestEventsBadParameters(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	ahead := fmt.Sprint(e.revision() + 1)
	for _, q := range []string{"since=x", "since=-1", "since=%2B1", "since=", "since=1e3", "since=%00",
		"since=99999999999999999999", "since=" + ahead, "since=" + ahead + "&kinds=host"} {
		e.wantProblem(eventsAnswer(t, e, "?"+q, nil), 400, "since")
	}
	for _, v := range []string{"x", "-1", "1 2", ahead} {
		e.wantProblem(eventsAnswer(t, e, "", map[string]string{"Last-Event-ID": v}), 400, "Last-Event-ID")
	}
	for _, k := range []string{"bogus", "container,bogus", "container,", "", "Container", "hosts", "host\x00"} {
		e.wantProblem(eventsAnswer(t, e, "?since=0&kinds="+url.QueryEscape(k), nil), 400, "kinds")
	}
	if evs := readEvents(t, e, "?kinds=host,network,host", nil, 3); evs[2].Name != "h2" {
		t.Fatalf("kinds=host,network: %+v", evs)
	}
}
