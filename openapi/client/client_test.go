package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"type":"x","title":"Unauthorized","status":401,"detail":"bad token"}`))
			return
		}
		_, _ = w.Write([]byte(`{"name":"h1","status":"Ready"}`))
	}))
	defer srv.Close()
	var h openapi.Host
	if code, err := New(srv.URL+"/", "tok").Do(context.Background(), "GET", "/api/v1/hosts/h1", nil, &h); err != nil || code != 200 || h.Name != "h1" {
		t.Fatalf("good call: %d %v %+v", code, err, h)
	}
	code, err := New(srv.URL, "nope").Do(context.Background(), "GET", "/x", nil, &h)
	if code != 401 || StatusOf(err) != 401 || err.(*Error).Problem.Detail != "bad token" {
		t.Fatalf("bad call: %d %v", code, err)
	}
	if StatusOf(context.Canceled) != 0 {
		t.Fatal("StatusOf of a plain error")
	}
}

// A write refused by admission control (429 overloaded: it did not run) is
// sent again after its Retry-After; other 429s (a rate limit) come back at
// once, and so does a refusal when the context ends during the wait.
func TestDoRetriesOverloaded(t *testing.T) {
	var calls atomic.Int32
	var refusals atomic.Int32
	var slug atomic.Value
	refusals.Store(2)
	slug.Store("overloaded")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if b, _ := io.ReadAll(r.Body); string(b) != `{"name":"n1"}` {
			t.Errorf("request %d body %q", n, b)
		}
		if n <= refusals.Load() {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"type":"https://switchyard.dev/problems/%s","title":"Too many writes","status":429}`, slug.Load())
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"name":"n1"}`)
	}))
	defer srv.Close()
	c := New(srv.URL, "t")
	var out struct{ Name string }
	start := time.Now()
	code, err := c.Do(context.Background(), "POST", "/api/v1/networks", map[string]string{"name": "n1"}, &out)
	if code != 201 || err != nil || out.Name != "n1" || calls.Load() != 3 {
		t.Fatalf("after two refusals: %d %v %+v, %d requests", code, err, out, calls.Load())
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("retried after %s, before the two Retry-After seconds", d)
	}

	calls.Store(0)
	slug.Store("rate-limited")
	if code, err := c.Do(context.Background(), "POST", "/api/v1/networks", map[string]string{"name": "n1"}, nil); code != 429 || StatusOf(err) != 429 || calls.Load() != 1 {
		t.Fatalf("rate limit: %d %v, %d requests", code, err, calls.Load())
	}

	calls.Store(0)
	slug.Store("overloaded")
	refusals.Store(100)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if code, _ := c.Do(ctx, "POST", "/api/v1/networks", map[string]string{"name": "n1"}, nil); code != 429 || calls.Load() != 2 {
		t.Fatalf("context ended while waiting: %d, %d requests", code, calls.Load())
	}
}
