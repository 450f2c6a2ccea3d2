package console

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// adminToken is the bootstrap admin token of the test controller.
const adminToken = "sy_console_admin_token"

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// TestMain removes the controller binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// controllerBinary builds ./controller (with the console embedded) once.
func controllerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-console-bin-")
		if err != nil {
			buildErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "switchyard"), "./controller")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./controller: %v\n%s", err, out)
			return
		}
		binary = filepath.Join(dir, "switchyard")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// server is a controller process on loopback with its own database.
type server struct {
	URL   string
	admin *client.Client
	db    string
	addr  string
	stop  func() // kills the running controller (also done when the test ends)
}

// startServer runs the controller binary on a fresh database until the
// test ends and waits until /readyz answers 200.
func startServer(t testing.TB) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{URL: "http://" + addr, admin: client.New("http://"+addr, adminToken), db: pgtest.DatabaseURL(t), addr: addr}
	s.start(t)
	return s
}

// start runs the controller (again, on the same address and database).
func (s *server) start(t testing.TB) {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "controller-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(controllerBinary(t))
	cmd.Env = append(os.Environ(), "SWITCHYARD_DATABASE_URL="+s.db, "SWITCHYARD_LISTEN="+s.addr,
		"SWITCHYARD_ADMIN_TOKEN="+adminToken, "SWITCHYARD_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // killed at the end
	s.stop = func() {
		cmd.Process.Kill() //nolint:errcheck // may have exited
		<-exited
		logf.Close()
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := s.admin.HTTP.Get(s.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("controller exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends an API request with token (openapi/client); out, when not nil,
// gets the JSON answer. It returns the status.
func (s *server) do(ctx context.Context, token, method, path string, body, out any) (int, error) {
	c := s.admin
	if token != adminToken {
		c = &client.Client{Base: s.URL, Token: token, HTTP: s.admin.HTTP}
	}
	return c.Do(ctx, method, path, body, out)
}

// must sends an admin request and fails the test unless it succeeds.
func (s *server) must(t testing.TB, method, path string, body, out any) {
	t.Helper()
	if _, err := s.do(context.Background(), adminToken, method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// agents simulates the node agents of hosts: each registers its host,
// long-polls its program (always whole) and reports it applied with every
// container port up. No OVS: what the console shows of realization and
// container status is then real controller state.
func (s *server) agents(t testing.TB, hosts ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i, h := range hosts {
		var tok openapi.Token
		s.must(t, "POST", "/api/v1/tokens", map[string]any{"name": "node-" + strings.ReplaceAll(h, ".", "-"), "role": "node", "host": h}, &tok)
		addr := fmt.Sprintf("192.168.%d.%d", 100+i/250, 1+i%250)
		if _, err := s.do(ctx, tok.Secret, "POST", "/api/v1/nodes/"+h+"/register", openapi.NodeRegistration{Address: addr, TunnelType: "geneve", AgentVersion: "sim-agent 1.0"}, nil); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.agent(ctx, h, tok.Secret)
		}()
	}
}

func (s *server) agent(ctx context.Context, host, token string) {
	digest := ""
	report := func(rev int64, p *openapi.Program) {
		st := openapi.NodeStatus{AppliedRevision: rev, Digest: digest, Ports: []openapi.PortStatus{}}
		if p != nil {
			for i, c := range p.Containers {
				st.Ports = append(st.Ports, openapi.PortStatus{Name: c.Name, Container: c.Container, ContainerID: c.ID, OFPort: i + 1, Up: true})
			}
		}
		s.do(ctx, token, "POST", "/api/v1/nodes/"+host+"/status", st, nil) //nolint:errcheck // the next poll reports again
	}
	var last *openapi.Program
	var rev int64
	for ctx.Err() == nil {
		var upd openapi.ProgramUpdate
		code, err := s.do(ctx, token, "GET", "/api/v1/nodes/"+host+"/program?timeout=5s&digest="+url.QueryEscape(digest), nil, &upd)
		switch {
		case err != nil:
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		case code == http.StatusNoContent: // a heartbeat
		case upd.Program == nil:
			// A delta: ask again for the whole program (no digest).
			digest = ""
			continue
		default:
			last, rev, digest = upd.Program, upd.Revision, upd.Program.Digest
		}
		report(rev, last)
	}
}
