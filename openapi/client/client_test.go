package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

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
