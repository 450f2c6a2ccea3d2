package cniserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/cniproto"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// fakeController is the container API as a node token of host h1 sees it,
// in memory: addresses 10.10.0.2 and up on network blue (10.10.0.0/24).
type fakeController struct {
	mu         sync.Mutex
	containers map[string]openapi.Container // by name
	next       int
	local      *fakeLocal
	// status, when set, is what the next create answers instead.
	failCreate int
	// failDelete: deletes of these names answer this status.
	failDelete map[string]int
	// down: every request's connection is closed unanswered.
	down  bool
	calls []string
}

type fakeLocal struct {
	mu    sync.Mutex
	ports map[string]openapi.ContainerPort
	ready error
	ovsUp bool
}

func (l *fakeLocal) Port(id string) (openapi.ContainerPort, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.ports[id]
	return p, ok
}
func (l *fakeLocal) Ready() error { return l.ready }
func (l *fakeLocal) CheckPort(_ context.Context, p openapi.ContainerPort) ([]string, error) {
	if !l.ovsUp {
		return []string{"OVS port " + p.Name + " is down"}, nil
	}
	return nil, nil
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(openapi.Problem{Title: http.StatusText(status), Status: status, Detail: detail})
}

func (f *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	name := strings.TrimPrefix(r.URL.Path, "/api/v1/containers/")
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v1/containers":
		var l openapi.List[openapi.Container]
		sel := r.URL.Query().Get("selector")
		for _, c := range f.containers {
			if k, v, _ := strings.Cut(sel, "="); sel == "" || c.Labels[k] == v {
				l.Items = append(l.Items, c)
			}
		}
		_ = json.NewEncoder(w).Encode(l)
	case r.Method == "POST":
		var c openapi.Container
		_ = json.NewDecoder(r.Body).Decode(&c)
		if f.failCreate != 0 {
			problem(w, f.failCreate, "injected")
			f.failCreate = 0
			return
		}
		if _, ok := f.containers[c.Name]; ok {
			problem(w, 409, "name taken")
			return
		}
		if c.IP == "" {
			f.next++
			c.IP = fmt.Sprintf("10.10.0.%d", 1+f.next)
		}
		for _, o := range f.containers {
			if o.IP == c.IP {
				problem(w, 409, "address taken")
				return
			}
		}
		c.ID = "id-" + c.Name + "-" + c.IP
		c.Status = openapi.ContainerRunning
		c.DNS = &openapi.ContainerDNS{Nameservers: []string{"10.10.0.1"}, Search: []string{"blue.switchyard.local"}}
		f.containers[c.Name] = c
		f.local.mu.Lock()
		f.local.ports[c.ID] = openapi.ContainerPort{Name: "sy" + c.Name, ID: c.ID, IP: c.IP, PrefixLen: 24,
			MAC: "02:00:0a:0a:00:02", Gateway: "10.10.0.1", MTU: 1400}
		f.local.mu.Unlock()
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(c)
	case r.Method == "GET":
		c, ok := f.containers[name]
		if !ok {
			problem(w, 404, "no container "+name)
			return
		}
		_ = json.NewEncoder(w).Encode(c)
	case r.Method == "DELETE" && f.failDelete[name] != 0:
		problem(w, f.failDelete[name], "injected")
	case r.Method == "DELETE":
		if _, ok := f.containers[name]; !ok {
			problem(w, 404, "no container "+name)
			return
		}
		delete(f.containers, name)
		w.WriteHeader(204)
	}
}

type env struct {
	t    *testing.T
	ctl  *fakeController
	http *httptest.Server
	srv  *Server
	sock string
}

// newEnv starts a server on a socket in a temporary directory, talking to
// a fake controller.
func newEnv(t *testing.T, stateDir string) *env {
	t.Helper()
	local := &fakeLocal{ports: map[string]openapi.ContainerPort{}, ovsUp: true}
	ctl := &fakeController{containers: map[string]openapi.Container{}, local: local}
	hs := httptest.NewServer(ctl)
	t.Cleanup(hs.Close)
	sock := filepath.Join(t.TempDir(), "run", "cni.sock")
	srv, err := New(Config{Socket: sock, StateDir: stateDir, Host: "h1", API: client.New(hs.URL, "tok"), Local: local,
		RetryEvery: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{t: t, ctl: ctl, http: hs, srv: srv, sock: sock}
}

// call sends req over the socket, as the plugin does.
func (e *env) call(req cniproto.Request) cniproto.Response {
	e.t.Helper()
	res, err := cniproto.Call(context.Background(), e.sock, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// setDown makes the controller answer nothing (or again).
func (e *env) setDown(down bool) {
	e.ctl.mu.Lock()
	e.ctl.down = down
	e.ctl.mu.Unlock()
}

// eventually waits until f holds (the server's retries are timed).
func (e *env) eventually(what string, f func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			e.t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) has(name string) bool {
	e.ctl.mu.Lock()
	defer e.ctl.mu.Unlock()
	_, ok := e.ctl.containers[name]
	return ok
}

func addReq(id string) cniproto.Request {
	return cniproto.Request{Command: cniproto.Add, ContainerID: id, Netns: "/run/netns/" + id, IfName: "eth0",
		Config: "sy-blue", Network: "blue", Labels: map[string]string{"app": "web"}}
}

func with(r cniproto.Request, cmd string) cniproto.Request {
	r.Command = cmd
	return r
}

func wantCode(t *testing.T, res cniproto.Response, code uint, substr string) {
	t.Helper()
	if res.Error == nil {
		t.Fatalf("no error, want code %d (result %+v)", code, res.Result)
	}
	if res.Error.Code != code || !strings.Contains(res.Error.Error(), substr) {
		t.Fatalf("error %d %q, want code %d containing %q", res.Error.Code, res.Error.Error(), code, substr)
	}
}
