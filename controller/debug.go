package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux, served by serveDebug only
	"time"
)

// serveDebug serves Go's profiler on l (SWITCHYARD_DEBUG_LISTEN, a
// loopback address: it asks for no token) until ctx ends, for "where does
// the controller's CPU go" (go tool pprof http://ADDR/debug/pprof/profile).
// The API never serves http.DefaultServeMux: only this listener does.
func serveDebug(ctx context.Context, l net.Listener) {
	hs := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	slog.Info("profiler listening", "url", "http://"+l.Addr().String()+"/debug/pprof/")
	_ = hs.Serve(l)
}
