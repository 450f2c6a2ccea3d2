package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// tight are timeouts short enough for a test to outlast them.
var tight = api.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond, Idle: 300 * time.Millisecond}

// timedEnv serves a controller with the server NewHTTPServer builds.
func timedEnv(t *testing.T, tm api.Timeouts) *env {
	st := testenv.Store(t, testenv.DatabaseURL(t), store.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mgr := nodes.New(st, nil)
	go mgr.Run(ctx)
	srv := &api.Server{Store: st, Realizer: mgr, Nodes: &nodes.Handler{M: mgr, Fail: api.Fail, Decode: api.Decode, Actor: api.Actor}}
	hs := api.NewHTTPServer("", srv.Handler(ctx), tm)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { hs.Close() })
	return &env{t: t, ctl: &testenv.Controller{URL: "http://" + ln.Addr().String(), Store: st, Server: srv},
		http: testenv.Client(nil), token: testenv.AdminToken}
}

// A client that never finishes its request is cut off; one that idles is
// too.
func TestServerCutsSlowClients(t *testing.T) {
	e := timedEnv(t, tight)
	addr := strings.TrimPrefix(e.ctl.URL, "http://")
	for name, partial := range map[string]string{
		"headers never end": "GET /healthz HTTP/1.1\r\nHost: x\r\n",
		"body never ends":   "POST /api/v1/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
		"idle keep-alive":   "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, partial); err != nil {
				t.Fatal(err)
			}
			// The server closes the connection; the deadline only keeps a
			// broken server from hanging the test.
			conn.SetReadDeadline(time.Now().Add(time.Minute)) //nolint:errcheck // test
			_, err = io.Copy(io.Discard, conn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the server kept the connection open")
			}
		})
	}
}

// The event stream and the node long-poll outlive the write timeout: they
// lift it.
func TestStreamsOutliveTheWriteTimeout(t *testing.T) {
	e := timedEnv(t, tight)
	req, _ := http.NewRequest("GET", e.ctl.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("events: %d", res.StatusCode)
	}
	// Outlast the write deadline, then make an event.
	time.Sleep(3 * tight.Write)
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "late", "cidr": "10.70.0.0/24"})
	sc := bufio.NewScanner(res.Body)
	found := false
	for !found && sc.Scan() {
		found = sc.Text() == "event: network.created"
	}
	if !found {
		t.Fatalf("the stream ended before the event: %v", sc.Err())
	}

	// A long-poll that lasts longer than the write timeout answers 204.
	e.must(201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"})
	// The node layer learns of the host from the event log: until then, 404.
	code, up := 404, (*openapi.ProgramUpdate)(nil)
	for code == 404 {
		code, up = e.poll(e.token, "h1", "", 5*time.Second)
	}
	if up == nil || up.Program == nil {
		t.Fatalf("first poll: %d %+v", code, up)
	}
	code, _ = e.poll(e.token, "h1", up.Program.Digest, 4*tight.Write)
	if code != 204 {
		t.Fatalf("long-poll past the write timeout: %d", code)
	}
}
