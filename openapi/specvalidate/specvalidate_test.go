package specvalidate

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

const (
	goodHost = `{"id":"6f1c2d1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f","revision":7,"createdAt":"2026-01-02T03:04:05Z",
		"updatedAt":"2026-01-02T03:04:05.123456Z","name":"host-a","address":"192.0.2.10","tunnelType":"geneve",
		"labels":{"rack":"r1"},"status":"Ready","lastSeen":"2026-01-02T03:04:06Z","appliedRevision":7,"realized":true}`
	problem404 = `{"type":"https://switchyard.dev/problems/not-found","title":"Not found","status":404,"detail":"no host x"}`
)

// canned is the answer the test server gives.
type canned struct {
	status      int
	contentType string
	etag        string
	body        string
}

type exchange struct {
	name   string
	method string
	path   string
	body   string
	answer canned
	// wantErr is a substring every expected failure contains; empty means valid.
	wantErr string
}

var exchanges = []exchange{
	{name: "valid host", method: "GET", path: "/api/v1/hosts/host-a",
		answer: canned{200, "application/json; charset=utf-8", `"r7"`, goodHost}},
	{name: "missing ETag", method: "GET", path: "/api/v1/hosts/host-a",
		answer: canned{200, "application/json", "", goodHost}, wantErr: `"ETag" missing`},
	{name: "missing required property", method: "GET", path: "/api/v1/hosts/host-a",
		answer:  canned{200, "application/json", `"r7"`, strings.Replace(goodHost, `"status":"Ready",`, "", 1)},
		wantErr: "status"},
	{name: "bad address format", method: "GET", path: "/api/v1/hosts/host-a",
		answer:  canned{200, "application/json", `"r7"`, strings.Replace(goodHost, "192.0.2.10", "not-an-ip", 1)},
		wantErr: "address"},
	{name: "bad enum", method: "GET", path: "/api/v1/hosts/host-a",
		answer:  canned{200, "application/json", `"r7"`, strings.Replace(goodHost, `"Ready"`, `"ready"`, 1)},
		wantErr: "status"},
	{name: "null labels", method: "GET", path: "/api/v1/hosts/host-a",
		answer:  canned{200, "application/json", `"r7"`, strings.Replace(goodHost, `{"rack":"r1"}`, "null", 1)},
		wantErr: "labels"},
	{name: "valid list", method: "GET", path: "/api/v1/hosts?limit=10",
		answer: canned{200, "application/json", "", `{"items":[` + goodHost + `],"continue":"abc"}`}},
	{name: "list items null", method: "GET", path: "/api/v1/hosts",
		answer: canned{200, "application/json", "", `{"items":null}`}, wantErr: "items"},
	{name: "valid problem", method: "GET", path: "/api/v1/hosts/x",
		answer: canned{404, "application/problem+json", "", problem404}},
	{name: "problem as plain JSON", method: "GET", path: "/api/v1/hosts/x",
		answer: canned{404, "application/json", "", problem404}, wantErr: "Content-Type"},
	{name: "undocumented status", method: "GET", path: "/api/v1/hosts/x",
		answer: canned{418, "application/problem+json", "", problem404}, wantErr: "undocumented status 418"},
	{name: "undocumented route", method: "GET", path: "/api/v1/bogus",
		answer: canned{200, "application/json", "", `{}`}, wantErr: "undocumented route"},
	{name: "undocumented method", method: "PATCH", path: "/api/v1/tokens/t1",
		answer: canned{200, "application/json", "", `{}`}, wantErr: "undocumented method"},
	{name: "wait timeout with hosts", method: "DELETE", path: "/api/v1/containers/web?wait=realized&timeout=1s",
		answer: canned{504, "application/problem+json", "", `{"type":"https://switchyard.dev/problems/timeout","title":"Timed out","status":504,"hosts":["host-b"]}`}},
	{name: "wait timeout without hosts", method: "DELETE", path: "/api/v1/containers/web?wait=realized",
		answer:  canned{504, "application/problem+json", "", `{"type":"https://switchyard.dev/problems/timeout","title":"Timed out","status":504}`},
		wantErr: "hosts"},
	{name: "create echoes the request body", method: "POST", path: "/api/v1/tokens",
		body:   `{"name":"ci","role":"viewer"}`,
		answer: canned{201, "application/json", "", `{"id":"6f1c2d1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f","name":"ci","role":"viewer","secret":"s3cr3t","createdAt":"2026-01-02T03:04:05Z"}`}},
	{name: "no content", method: "GET", path: "/api/v1/nodes/host-a/program?revision=3&digest=abc&timeout=1s",
		answer: canned{204, "", "", ""}},
	{name: "health", method: "GET", path: "/healthz",
		answer: canned{200, "text/plain; charset=utf-8", "", "ok\n"}},
	{name: "event stream", method: "GET", path: "/api/v1/events?since=3",
		answer: canned{200, "text/event-stream", "", "id: 4\nevent: host.updated\ndata: {}\n\n"}},
	{name: "event stream as JSON", method: "GET", path: "/api/v1/events",
		answer: canned{200, "application/json", "", "[]"}, wantErr: "Content-Type"},
}

func TestTransportChecksEveryAnswer(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range exchanges {
		t.Run(x.name, func(t *testing.T) {
			var gotBody []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotBody, _ = io.ReadAll(r.Body)
				if x.answer.contentType != "" {
					w.Header().Set("Content-Type", x.answer.contentType)
				}
				if x.answer.etag != "" {
					w.Header().Set("ETag", x.answer.etag)
				}
				w.WriteHeader(x.answer.status)
				io.WriteString(w, x.answer.body)
			}))
			t.Cleanup(srv.Close)

			rec := &recorder{TB: t}
			client := &http.Client{Transport: v.Transport(rec, nil)}
			req, err := http.NewRequest(x.method, srv.URL+x.path, strings.NewReader(x.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != x.answer.body {
				t.Errorf("client got body %q, server sent %q", body, x.answer.body)
			}
			if string(gotBody) != x.body {
				t.Errorf("server got request body %q, client sent %q", gotBody, x.body)
			}

			fails := rec.failures()
			switch {
			case x.wantErr == "" && len(fails) > 0:
				t.Errorf("valid exchange reported: %v", fails)
			case x.wantErr != "" && len(fails) != 1:
				t.Errorf("want one failure containing %q, got %v", x.wantErr, fails)
			case x.wantErr != "" && !strings.Contains(cause(fails[0]), x.wantErr):
				t.Errorf("failure %q does not mention %q", fails[0], x.wantErr)
			}
		})
	}
}

// cause is a Check failure without the quoted request and response.
func cause(failure string) string {
	before, _, _ := strings.Cut(failure, "\nrequest: ")
	return before
}

// TestStreamIsNotBuffered checks that an event stream reaches the client
// while the server is still writing it.
func TestStreamIsNotBuffered(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "id: 1\nevent: host.created\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	rec := &recorder{TB: t}
	client := &http.Client{Transport: v.Transport(rec, nil)}
	resp, err := client.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make([]byte, len("id: 1\n"))
	if _, err := io.ReadFull(resp.Body, line); err != nil || !bytes.Equal(line, []byte("id: 1\n")) {
		t.Errorf("first line %q, %v", line, err)
	}
	if f := rec.failures(); len(f) > 0 {
		t.Errorf("valid stream reported: %v", f)
	}
}

// TestCheckDirect uses Check without the transport, as a server-side test would.
func TestCheckDirect(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/revision", nil)
	resp := &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"application/json"}}}

	rec := &recorder{TB: t}
	v.Check(rec, req, nil, resp, []byte(`{"revision":12}`))
	if f := rec.failures(); len(f) > 0 {
		t.Errorf("valid answer reported: %v", f)
	}
	v.Check(rec, req, nil, resp, []byte(`{"revision":"12"}`))
	if f := rec.failures(); len(f) != 1 {
		t.Errorf("want one failure for a string revision, got %v", f)
	}

	// A net/http server drops the body of a 204; other servers might not.
	del := httptest.NewRequest("DELETE", "/api/v1/tokens/t1", nil)
	noContent := &http.Response{StatusCode: 204, Status: "204 No Content", Header: http.Header{"Content-Type": {"application/json"}}}
	if err := v.Validate(del, noContent, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "documented without a body") {
		t.Errorf("body on a 204: got %v", err)
	}
}
