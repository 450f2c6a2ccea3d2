package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// poll long-polls host's program as a node token would.
func (e *env) poll(tok, host, digest string, timeout time.Duration) (int, *openapi.ProgramUpdate) {
	e.t.Helper()
	r := e.do("GET", fmt.Sprintf("/api/v1/nodes/%s/program?digest=%s&timeout=%s", host, digest, timeout), nil, withToken(tok))
	if r.Status != 200 {
		return r.Status, nil
	}
	var up openapi.ProgramUpdate
	r.decode(e.t, &up)
	return r.Status, &up
}

// The node protocol without a datapath: register, fetch, report, realize.
func TestNodeProtocol(t *testing.T) {
	e := newEnv(t, nil)
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "blue", "cidr": "10.10.0.0/24"})
	n1 := e.newToken("node-h1", "node", "h1")
	n2 := e.newToken("node-h2", "node", "h2")

	// A node token reaches only its own host, and only the node protocol.
	e.wantProblem(e.do("POST", "/api/v1/nodes/h2/register", map[string]any{"address": "192.168.200.12"}, withToken(n1)), 403, "")
	e.wantProblem(e.do("POST", "/api/v1/nodes/h1/register", map[string]any{"address": "nope"}, withToken(n1)), 400, "address")
	var h openapi.Host
	e.must(200, "POST", "/api/v1/nodes/h1/register", map[string]any{"address": "192.168.200.11", "tunnelType": "geneve"}, withToken(n1)).decode(t, &h)
	e.must(200, "POST", "/api/v1/nodes/h2/register", map[string]any{"address": "192.168.200.12", "tunnelType": "vxlan"}, withToken(n2))
	if h.Name != "h1" || h.Status != openapi.HostNotReady {
		t.Fatalf("registered %+v", h)
	}

	// A fresh agent gets the whole program.
	code, up := e.poll(n1, "h1", "", 5*time.Second)
	if code != 200 || !up.Full || up.Program == nil || up.Program.Host != "h1" {
		t.Fatalf("first poll: %d %+v", code, up)
	}
	d1 := up.Program.Digest
	// Nothing changed: the poll times out with 204.
	if code, _ := e.poll(n1, "h1", d1, 200*time.Millisecond); code != 204 {
		t.Fatalf("idle poll: %d", code)
	}

	// A container on h1 changes h1's program: the waiting poll gets a delta.
	got := make(chan *openapi.ProgramUpdate, 1)
	go func() { _, u := e.poll(n1, "h1", d1, 10*time.Second); got <- u }()
	var c openapi.Container
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web", "network": "blue", "host": "h1"}).decode(t, &c)
	up = <-got
	if up == nil || up.Full || up.Delta == nil || up.Delta.FromDigest != d1 || len(up.Delta.AddContainers) != 1 || up.Revision != c.Revision {
		t.Fatalf("delta: %+v", up)
	}
	d2 := up.Delta.Digest

	// h2 has no container of blue: a change on h1 alone does not wake it.
	_, up2 := e.poll(n2, "h2", "", 5*time.Second)
	h2digest := up2.Program.Digest
	woke := make(chan int, 1)
	go func() { code, _ := e.poll(n2, "h2", h2digest, 700*time.Millisecond); woke <- code }()
	time.Sleep(100 * time.Millisecond)
	e.must(200, "PATCH", "/api/v1/containers/web", map[string]any{"labels": map[string]string{"v": "1"}})
	if code := <-woke; code != 204 {
		t.Fatalf("h2 woke for an unrelated change: %d", code)
	}

	// Not acknowledged: ?wait=realized times out with the hosts behind.
	r := e.do("POST", "/api/v1/containers?wait=realized&timeout=300ms", map[string]any{"name": "db", "network": "blue", "host": "h1"})
	p := e.wantProblem(r, 504, "")
	if hosts, _ := p["hosts"].([]any); len(hosts) != 1 || hosts[0] != "h1" {
		t.Fatalf("504 hosts: %v", p)
	}
	var db openapi.Container
	e.must(200, "GET", "/api/v1/containers/db", nil).decode(t, &db)
	if db.Status != openapi.ContainerPending {
		t.Fatalf("unacknowledged container is %s", db.Status)
	}

	// The agent reports: the host is Ready, the containers running or failed.
	_, up = e.poll(n1, "h1", d2, 5*time.Second)
	prog := up.Program
	if up.Delta != nil {
		_, full := e.poll(n1, "h1", "", time.Second)
		prog = full.Program
	}
	var ports []openapi.PortStatus
	for _, cp := range prog.Containers {
		ps := openapi.PortStatus{Name: cp.Name, Container: cp.Container, ContainerID: cp.ID, OFPort: 5, Up: true}
		if cp.Container == "db" {
			ps.Up, ps.Error = false, "netns /nope does not exist"
		}
		ports = append(ports, ps)
	}
	e.must(204, "POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{AppliedRevision: prog.Revision, Digest: prog.Digest, Ports: ports}, withToken(n1))
	e.must(200, "GET", "/api/v1/hosts/h1", nil).decode(t, &h)
	if h.Status != openapi.HostReady || h.AppliedRevision != prog.Revision || h.LastSeen == nil || !h.Realized || h.ProgramRevision != prog.Revision {
		t.Fatalf("host after report: %+v", h)
	}
	e.must(200, "GET", "/api/v1/containers/web", nil).decode(t, &c)
	e.must(200, "GET", "/api/v1/containers/db", nil).decode(t, &db)
	if c.Status != openapi.ContainerRunning || db.Status != openapi.ContainerFailed || db.StatusDetail == "" {
		t.Fatalf("statuses: web %s, db %s (%s)", c.Status, db.Status, db.StatusDetail)
	}
	// Now realized: a label change on h1's container waits for h1's ack,
	// which an agent goroutine gives.
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		_, u := e.poll(n1, "h1", prog.Digest, 5*time.Second)
		if u != nil {
			e.do("POST", "/api/v1/nodes/h1/status", openapi.NodeStatus{AppliedRevision: u.Revision, Ports: []openapi.PortStatus{}}, withToken(n1))
		}
	}()
	e.must(201, "POST", "/api/v1/containers?wait=realized&timeout=5s", map[string]any{"name": "api", "network": "blue", "host": "h1"})
	// The wait may return as soon as the report is recorded, before the
	// report's own answer reaches the agent: let that answer arrive before
	// the test (and its server) ends.
	<-acked
	// Reports from an unknown host are refused.
	e.wantProblem(e.do("POST", "/api/v1/nodes/h9/status", openapi.NodeStatus{Ports: []openapi.PortStatus{}}), 404, "")
}
