package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestServeDebug: the profiler answers on its listener and stops with ctx.
func TestServeDebug(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { serveDebug(ctx, l); close(done) }()
	res, err := http.Get("http://" + l.Addr().String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("cmdline: %d %q", res.StatusCode, body)
	}
	cancel()
	<-done
	if _, err := http.Get("http://" + l.Addr().String() + "/debug/pprof/cmdline"); err == nil {
		t.Fatal("still served after ctx ended")
	}
}
