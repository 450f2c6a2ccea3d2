package main

import (
	"bufio"
	"context"
	"io"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// background runs syctl until ctx ends; its stdout comes line by line.
func (l *lab) background(ctx context.Context, args ...string) (lines <-chan string, done <-chan result) {
	return l.backgroundErr(ctx, &syncBuffer{}, args...)
}

// backgroundErr is background with stderr written to errb.
func (l *lab) backgroundErr(ctx context.Context, errb *syncBuffer, args ...string) (lines <-chan string, done <-chan result) {
	pr, pw := io.Pipe()
	out := make(chan string, 100)
	res := make(chan result, 1)
	env := map[string]string{}
	for k, v := range l.env {
		env[k] = v
	}
	go func() {
		code := run(ctx, args, strings.NewReader(""), pw, errb, func(k string) string { return env[k] })
		pw.Close()
		res <- result{err: errb.String(), code: code}
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out <- sc.Text()
		}
		close(out)
	}()
	return out, res
}

// next reads lines until one contains want.
func next(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no line with %q", want)
		}
	}
}

func TestWatch(t *testing.T) {
	l := newLab(t, true)
	ctx, cancel := context.WithCancel(t.Context())
	lines, done := l.background(ctx, "get", "containers", "--watch", "-l", "app=web")
	// The list first, then the changes the selector picks.
	next(t, lines, "NAME")
	next(t, lines, "web2")
	l.ok("create", "container", "web3", "network=blue", "host=h2", "labels.app=web")
	l.ok("create", "container", "db9", "network=red", "host=h2", "labels.app=db")
	l.ok("delete", "container", "web1")
	if line := next(t, lines, "web3"); !strings.HasPrefix(line, "CREATED ") {
		t.Fatalf("watch line: %q", line)
	}
	if line := next(t, lines, "web1"); !strings.HasPrefix(line, "DELETED ") {
		t.Fatalf("watch line: %q (db9 is not app=web)", line)
	}
	cancel()
	if r := <-done; r.code != 0 {
		t.Fatalf("watch ended with %+v", r)
	}

	// -o name and one object by name.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	lines, _ = l.background(ctx, "get", "service", "web", "-w", "-o", "name")
	next(t, lines, "service/web")
	l.ok("apply", "-f", "-", "--dry-run") // nothing
	r := l.runIn(t.Context(), "kind: service\nname: web\nnetwork: blue\nlabels: {stack: lab, v: \"2\"}\n", "apply", "-f", "-")
	if r.code != 0 {
		t.Fatalf("apply: %+v", r)
	}
	if line := next(t, lines, "service/web "); line != "service/web updated" {
		t.Fatalf("watch -o name: %q", line)
	}
}

func TestEvents(t *testing.T) {
	l := newLab(t, true)
	golden(t, "events.txt", l.ok("events", "--kinds", "network,service"))
	got := l.ok("events", "--since", "8", "-o", "json")
	if n := len(lines(got)); n != 2 || !strings.Contains(got, `"name":"web"`) {
		t.Fatalf("events since 8: %s", got)
	}
	golden(t, "audit.txt", l.ok("audit", "--kind", "container"))
}

// fakeAgent acknowledges host's current program as an agent would: every
// container port up.
func fakeAgent(t *testing.T, l *lab, host string) {
	t.Helper()
	admin := client.New(l.url, testenv.AdminToken)
	var tok openapi.Token
	if _, err := admin.Do(t.Context(), "POST", "/api/v1/tokens", map[string]string{"name": "node-" + host, "role": openapi.RoleNode, "host": host}, &tok); err != nil {
		t.Fatal(err)
	}
	node := client.New(l.url, tok.Secret)
	var up openapi.ProgramUpdate
	if _, err := node.Do(t.Context(), "GET", "/api/v1/nodes/"+host+"/program?revision=0&timeout=5s", nil, &up); err != nil {
		t.Fatal(err)
	}
	ports := []openapi.PortStatus{}
	for _, cp := range up.Program.Containers {
		ports = append(ports, openapi.PortStatus{Name: cp.Name, Container: cp.Container, ContainerID: cp.ID, OFPort: 5, Up: true})
	}
	st := openapi.NodeStatus{AppliedRevision: up.Program.Revision, Digest: up.Program.Digest, Ports: ports}
	if _, err := node.Do(t.Context(), "POST", "/api/v1/nodes/"+host+"/status", st, nil); err != nil {
		t.Fatal(err)
	}
}

func TestWait(t *testing.T) {
	l := newLab(t, true)
	// Not realized: no agent acknowledged h1's program.
	l.fail(1, `^error: timed out after 300ms waiting for container/web1 to be realized$`,
		"wait", "container", "web1", "--for=realized", "--timeout=300ms")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, done := l.background(ctx, "wait", "container", "web1", "--for=realized", "--timeout=30s")
	fakeAgent(t, l, "h1")
	if r := <-done; r.code != 0 {
		t.Fatalf("wait after the agent's report: %+v", r)
	}
	golden(t, "describe-container-realized.txt", l.ok("describe", "container", "web1"))
	// deleted
	_, done = l.background(ctx, "wait", "container", "db1", "--for=deleted")
	l.ok("delete", "container", "db1")
	if r := <-done; r.code != 0 {
		t.Fatalf("wait --for=deleted: %+v", r)
	}
}

// TestWatchResumes: a watch whose stream breaks resumes after the last
// revision it saw, missing nothing.
func TestWatchResumes(t *testing.T) {
	l := newLab(t, true)
	target, err := url.Parse(l.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()
	l.env["SWITCHYARD_URL"] = proxy.URL
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr syncBuffer
	lines, _ := l.backgroundErr(ctx, &stderr, "get", "networks", "-w", "-o", "name")
	next(t, lines, "network/red")
	l.ok("create", "network", "green", "cidr=10.30.0.0/24")
	next(t, lines, "network/green created")
	proxy.CloseClientConnections()
	l.env["SWITCHYARD_URL"] = l.url // the next writes go straight
	l.ok("create", "network", "pink", "cidr=10.40.0.0/24")
	if line := next(t, lines, "network/pink"); line != "network/pink created" {
		t.Fatalf("after the stream broke: %q", line)
	}
	if !strings.Contains(stderr.String(), "event stream lost") {
		t.Fatalf("stderr: %q", stderr.String())
	}
}

// syncBuffer is a strings.Builder safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEventsFollowAndWriteWait(t *testing.T) {
	l := newLab(t, true)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	lines, _ := l.background(ctx, "events", "--follow", "--kinds", "network", "-o", "json")
	next(t, lines, `"name":"red"`)
	l.ok("create", "network", "green", "cidr=10.30.0.0/24")
	next(t, lines, `"name":"green"`)
	// --wait on a write: h1 has no agent, so the wait times out with a 504
	// naming it, on one line.
	l.fail(1, `^error: create container/web9: timed out: .* \(hosts h1,h2, the change is committed, HTTP 504\)$`,
		"create", "container", "web9", "network=blue", "host=h1", "--wait", "--timeout=300ms")
	l.ok("get", "container", "web9")
}
