package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves Go's profiler on l (SWITCHYARD_DEBUG_LISTEN, a
// loopback address: it asks for no token) until ctx ends, for "where does
// the controller's CPU go" (go tool pprof http://ADDR/debug/pprof/profile).
func serveDebug(ctx context.Context, l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	slog.Info("profiler listening", "url", "http://"+l.Addr().String()+"/debug/pprof/")
	_ = hs.Serve(l)
}
