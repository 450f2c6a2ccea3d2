// Package testenv gives integration tests a real PostgreSQL database of their
// own and a running controller API on loopback. Tests only: it must never be
// imported by a binary.
package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// AdminToken is the bootstrap admin token of every test controller.
const AdminToken = "sy_test_admin_token"

// DatabaseURL creates a fresh database for the test (see pgtest).
func DatabaseURL(t testing.TB) string { return pgtest.DatabaseURL(t) }

// Store opens a migrated store on dbURL, closed when the test ends.
func Store(t testing.TB, dbURL string, opts store.Options) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureBootstrapToken(ctx, AdminToken); err != nil {
		t.Fatal(err)
	}
	return st
}

// Controller is one controller replica served on loopback.
type Controller struct {
	URL    string
	Store  *store.Store
	Server *api.Server
	http   *httptest.Server
	cancel context.CancelFunc
}

// Close stops the replica (also done when the test ends).
func (c *Controller) Close() {
	c.cancel()
	c.http.CloseClientConnections()
	c.http.Close()
}

// Start serves a controller replica on dbURL. configure, when not nil, may
// set more of the server (Realizer, Nodes) before it starts.
func Start(t testing.TB, dbURL string, configure func(*api.Server)) *Controller {
	t.Helper()
	st := Store(t, dbURL, store.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	mgr := nodes.New(st, nil)
	go mgr.Run(ctx)
	srv := &api.Server{Store: st, Realizer: mgr, ReadyChecks: []api.ReadyCheck{mgr.Ready},
		Nodes: &nodes.Handler{M: mgr, Fail: api.Fail, Decode: api.Decode, Actor: api.Actor}}
	if configure != nil {
		configure(srv)
	}
	h := httptest.NewUnstartedServer(srv.Handler(ctx))
	h.Config.BaseContext = nil
	h.Start()
	c := &Controller{URL: h.URL, Store: st, Server: srv, http: h, cancel: cancel}
	t.Cleanup(c.Close)
	return c
}

// Client returns an HTTP client; wrap, when not nil, wraps its transport
// (the spec validator does).
func Client(wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	var rt http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if wrap != nil {
		rt = wrap(rt)
	}
	return &http.Client{Transport: rt, Timeout: 60 * time.Second}
}
