// Command switchyard is the Switchyard controller: it keeps the intent in
// PostgreSQL, serves the REST API and the node protocol (over HTTPS when
// given a certificate, certs.go; plain HTTP only on loopback unless asked
// for), and computes every host's OpenFlow program. Run any number of
// replicas against one database.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/config"
	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/webui"
)

func main() {
	if err := run(); err != nil {
		slog.Error("switchyard controller stopped", "err", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{ServiceCIDR: cfg.ServiceCIDR, HeartbeatTimeout: cfg.HeartbeatTimeout, DNSDomain: cfg.DNSDomain,
		AcquireTimeout: cfg.DBAcquireTimeout, ConnectTimeout: cfg.DBConnectTimeout})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	generated, err := st.EnsureBootstrapToken(ctx, cfg.AdminToken)
	if err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	if generated != "" {
		// Shown once: only its hash is stored.
		fmt.Fprintf(os.Stderr, "admin token: %s\n", generated)
	}

	go st.PruneEventsEvery(ctx, store.Retention{Age: cfg.EventRetention, Revisions: cfg.EventRetentionRevisions}, time.Minute)
	mgr := nodes.New(st, slog.Default())
	mgr.DNSDomain = cfg.DNSDomain
	go mgr.Run(ctx)
	srv := &api.Server{Store: st, Log: slog.Default(), Realizer: mgr, ReadyChecks: []api.ReadyCheck{mgr.Ready},
		MaxInflightWrites: cfg.MaxInflightWrites, AdmissionWait: cfg.AdmissionWait,
		Nodes: &nodes.Handler{M: mgr, Fail: api.Fail, Decode: api.Decode, Actor: api.Actor}, Console: webui.Files()}
	hs := api.NewHTTPServer(cfg.Listen, srv.Handler(ctx), api.DefaultTimeouts)
	// Requests end with the process: open event streams close at once.
	hs.BaseContext = func(net.Listener) context.Context { return ctx }
	scheme, serve := "http", hs.ListenAndServe
	if cfg.TLSCert != "" {
		// Loaded now so that a bad pair stops the start, not the first
		// handshake; loaded again when the files change (certs.go).
		certs, err := loadCertFiles(cfg.TLSCert, cfg.TLSKey, slog.Default())
		if err != nil {
			return fmt.Errorf("SWITCHYARD_TLS_CERT/SWITCHYARD_TLS_KEY: %w", err)
		}
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.certificate}
		scheme, serve = "https", func() error { return hs.ListenAndServeTLS("", "") }
	}
	errc := make(chan error, 1)
	if cfg.DebugListen != "" {
		// Asked for: a listener that cannot start stops the start.
		l, err := net.Listen("tcp", cfg.DebugListen)
		if err != nil {
			return fmt.Errorf("SWITCHYARD_DEBUG_LISTEN: %w", err)
		}
		go serveDebug(ctx, l)
	}
	go func() { errc <- serve() }()
	slog.Info("switchyard controller listening", "url", scheme+"://"+cfg.Listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	slog.Info("switchyard controller stopped")
	return nil
}
