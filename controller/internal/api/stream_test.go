package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

func TestETagIfMatch(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	r := e.must(200, "GET", "/api/v1/networks/blue", nil)
	tag := r.Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	r2 := e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"mtu": 1300}, withHeader("If-Match", tag))
	e.wantProblem(e.do("PATCH", "/api/v1/networks/blue", map[string]any{"mtu": 1200}, withHeader("If-Match", tag)), 412, "If-Match")
	e.wantProblem(e.do("PUT", "/api/v1/networks/blue", map[string]any{"name": "blue", "cidr": "10.10.0.0/24"}, withHeader("If-Match", tag)), 412, "If-Match")
	e.wantProblem(e.do("DELETE", "/api/v1/networks/blue", nil, withHeader("If-Match", tag)), 412, "If-Match")
	e.wantProblem(e.do("DELETE", "/api/v1/networks/blue", nil, withHeader("If-Match", `"garbage"`)), 412, "If-Match")
	e.must(200, "PUT", "/api/v1/networks/blue", map[string]any{"name": "blue", "cidr": "10.10.0.0/24", "mtu": 1400}, withHeader("If-Match", r2.Header.Get("ETag")))
	var n openapi.Network
	e.must(200, "GET", "/api/v1/networks/blue", nil).decode(t, &n)
	if n.MTU != 1400 {
		t.Fatalf("mtu %d after the refused writes", n.MTU)
	}
}

func TestPaginationAndSelectors(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for i := 0; i < 25; i++ {
		labels := map[string]string{"app": "web", "idx": fmt.Sprint(i)}
		switch {
		case i%5 == 0:
			labels = map[string]string{"app": "db", "tier": "be"}
		case i%5 == 1:
			labels["legacy"] = "yes"
		}
		e.must(201, "POST", "/api/v1/containers", map[string]any{"name": fmt.Sprintf("c%02d", i), "network": "blue", "host": []string{"h1", "h2"}[i%2], "labels": labels})
	}
	// Pages of 10 walk all 25 in name order, with no repeats.
	var names []string
	cont := ""
	for pages := 0; ; pages++ {
		var l openapi.List[openapi.Container]
		e.must(200, "GET", "/api/v1/containers?limit=10&continue="+cont, nil).decode(t, &l)
		for _, c := range l.Items {
			names = append(names, c.Name)
		}
		if l.Continue == "" {
			if pages != 2 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		cont = l.Continue
	}
	if len(names) != 25 || names[0] != "c00" || names[24] != "c24" {
		t.Fatalf("paged names: %v", names)
	}
	count := func(q string) int {
		var l openapi.List[openapi.Container]
		e.must(200, "GET", "/api/v1/containers?limit=1000&"+q, nil).decode(t, &l)
		return len(l.Items)
	}
	for q, want := range map[string]int{
		"selector=app%3Dweb":                      20,
		"selector=app%3Dweb,!legacy":              15,
		"selector=tier+in+(be,fe)":                5,
		"selector=tier!%3Dbe":                     20,
		"selector=app+notin+(db)":                 20,
		"selector=legacy":                         5,
		"selector=idx%3E20":                       4,
		"host=h1":                                 13,
		"host=h2&selector=app%3Ddb":               2,
		"network=blue&selector=app%3Dweb,idx%3D3": 1,
		"network=other":                           0,
	} {
		if got := count(q); got != want {
			t.Errorf("%s: %d containers, want %d", q, got, want)
		}
	}
}

// sseStream is an open event stream.
type sseStream struct {
	t      *testing.T
	body   io.ReadCloser
	sc     *bufio.Scanner
	cancel context.CancelFunc
	// ids are the SSE ids seen, by the index of their event; lastID is
	// the last id seen, with an event or alone.
	ids    map[int]string
	lastID string
	n      int
}

// doEvents sends GET /api/v1/events with the query and headers, as e's user.
func doEvents(ctx context.Context, e *env, query string, header map[string]string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ctl.URL+"/api/v1/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return e.http.Do(req)
}

// openEvents opens an event stream and returns once it answered 200; the
// stream is subscribed to changes by then.
func openEvents(t *testing.T, e *env, query string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, err := doEvents(ctx, e, query, header)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		res.Body.Close()
		cancel()
		t.Fatalf("events%s: %d %s", query, res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	s := &sseStream{t: t, body: res.Body, sc: sc, cancel: cancel, ids: map[int]string{}}
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.body.Close()
}

// next reads the next event. An id, when the message has one, must be the
// event's revision. Messages with only an id are recorded in lastID.
func (s *sseStream) next() openapi.Event {
	s.t.Helper()
	for {
		id, name, data, ok := s.message()
		if !ok {
			s.t.Fatalf("the stream ended after %d events: %v", s.n, s.sc.Err())
		}
		if id != "" {
			s.lastID = id
		}
		if data == "" {
			continue
		}
		var ev openapi.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			s.t.Fatal(err)
		}
		if (id != "" && id != fmt.Sprint(ev.Revision)) || name != ev.Kind+"."+ev.Action {
			s.t.Fatalf("SSE id %q event %q for %+v", id, name, ev)
		}
		if id != "" {
			s.ids[s.n] = id
		}
		s.n++
		return ev
	}
}

// message reads one SSE message (comments are skipped); ok is false at the
// end of the stream.
func (s *sseStream) message() (id, name, data string, ok bool) {
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if id != "" || data != "" {
				return id, name, data, true
			}
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
	return "", "", "", false
}

// readEvents reads n events from a stream.
func readEvents(t *testing.T, e *env, query string, header map[string]string, n int) []openapi.Event {
	t.Helper()
	s := openEvents(t, e, query, header)
	defer s.close()
	out := make([]openapi.Event, n)
	for i := range out {
		out[i] = s.next()
	}
	return out
}

func TestEventsResume(t *testing.T) {
	e := newEnv(t, nil)
	start := e.revision()
	e.seed() // 3 events
	all := readEvents(t, e, fmt.Sprintf("?since=%d", start), nil, 3)
	if all[0].Kind != "network" || all[1].Kind != "host" || all[0].Action != "created" || all[0].Name != "blue" {
		t.Fatalf("events: %+v", all)
	}
	// Resume after the first: exactly the rest, by query or by Last-Event-ID.
	rest := readEvents(t, e, fmt.Sprintf("?since=%d", all[0].Revision), nil, 2)
	if rest[0].Revision != all[1].Revision || rest[1].Revision != all[2].Revision {
		t.Fatalf("resume: %+v", rest)
	}
	rest = readEvents(t, e, "", map[string]string{"Last-Event-ID": fmt.Sprint(all[1].Revision)}, 1)
	if rest[0].Revision != all[2].Revision {
		t.Fatalf("Last-Event-ID resume: %+v", rest)
	}
	// Live: a stream opened now sees a write made after it opened, and a
	// kind filter drops the others.
	s := openEvents(t, e, fmt.Sprintf("?since=%d&kinds=container", all[2].Revision), nil)
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "red", "cidr": "10.20.0.0/24"})
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "a", "network": "blue", "host": "h1"})
	e.must(204, "DELETE", "/api/v1/containers/a", nil)
	live := []openapi.Event{s.next(), s.next()}
	if live[0].Kind != "container" || live[0].Action != "created" || live[1].Action != "deleted" || live[0].Network != "blue" {
		t.Fatalf("live: %+v", live)
	}
	var obj openapi.Container
	if err := json.Unmarshal(live[0].Object, &obj); err != nil || obj.IP == "" {
		t.Fatalf("event object: %s", live[0].Object)
	}
	e.wantProblem(e.do("GET", "/api/v1/events?since=x", nil), 400, "since")
}
