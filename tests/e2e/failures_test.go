package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// failures is the cluster of the failure scenarios: only h1's agent runs at
// first, with container a on network blue.
type failures struct {
	*cluster.Cluster
	a openapi.Container
}

// TestFailureModes: agents that cannot reach or authenticate with the
// controller stay off the datapath and keep retrying; a container on a host
// whose agent is down waits as pending and comes up with the agent; a bad
// netns path fails only its own container; a container may live in a netns
// the user owns, which outlives it.
func TestFailureModes(t *testing.T) {
	f := &failures{Cluster: cluster.New(t, cluster.Options{Hosts: 3, NoAgents: true})}
	defer f.Lab.DumpOnFailure(t)
	f.StartAgent(t, "h1")
	f.WaitHost(t, "h1", openapi.HostReady, 30*time.Second)
	f.Network(t, "blue", "10.10.0.0/24")
	f.a = f.Container(t, "a", "blue", "h1", nil)

	t.Run("agent kept out", f.agentKeptOut)
	if !t.Run("agent not running", f.agentNotRunning) {
		return
	}
	// Started here, not in a subtest: a process lives as long as the test
	// that started it.
	f.StartAgent(t, "h2")
	if !t.Run("agent started", f.agentStarted) {
		return
	}
	t.Run("missing netns", f.missingNetns)
	t.Run("existing netns", f.existingNetns)
}

// agentKeptOut: h3's agent with a bad token, another host's token, or a
// controller URL where nothing listens: it says why in its log, keeps
// running (retrying), and neither registers nor creates any bridge.
func (f *failures) agentKeptOut(t *testing.T) {
	h2Token := ""
	for _, kv := range f.AgentEnv("h2") {
		if v, ok := strings.CutPrefix(kv, "SWITCHYARD_NODE_TOKEN="); ok {
			h2Token = v
		}
	}
	dead := "http://" + net.JoinHostPort(f.Lab.Subnet.Addr().Next().String(), "1")
	for _, tc := range []struct {
		name string
		env  string
		log  []string // what the log must say (case-insensitive)
	}{
		{"wrong token", "SWITCHYARD_NODE_TOKEN=sy_not_a_real_token", []string{"401", "token"}},
		{"token of another host", "SWITCHYARD_NODE_TOKEN=" + h2Token, []string{"403", "token"}},
		{"controller unreachable", "SWITCHYARD_CONTROLLER_URL=" + dead, []string{"unreachable", dead, "retrying"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := f.StartAgent(t, "h3", tc.env)
			defer p.Stop()
			f.WaitLog(t, p, 20*time.Second, tc.log...)
			// A lower bound, not a race: it must still be there, retrying.
			time.Sleep(3 * time.Second)
			if p.Exited() {
				t.Errorf("the agent gave up:\n%s", p.Log())
			}
			if br := f.Bridges(t, "h3"); len(br) != 0 {
				t.Errorf("the agent touched the datapath: bridges %v", br)
			}
			if code, _ := f.Do("GET", "/api/v1/hosts/h3", nil, nil); code != 404 {
				t.Errorf("GET host h3: %d, want 404 (never registered)", code)
			}
		})
	}
}

// agentNotRunning: a container placed on h2, known but without an agent, is
// accepted and pending, and a realized wait for it times out naming h2.
func (f *failures) agentNotRunning(t *testing.T) {
	h2 := f.Lab.Host("h2")
	f.MustDo(t, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h2", "address": h2.UnderlayAddr.Addr().String(), "tunnelType": f.Tunnel}, nil)
	var p openapi.Container
	f.MustDo(t, 201, "POST", "/api/v1/containers", map[string]any{"name": "p", "network": "blue", "host": "h2"}, &p)
	if p.Status != openapi.ContainerPending {
		t.Errorf("created on a host without agent: status %q, want pending", p.Status)
	}
	code, err := f.Do("POST", "/api/v1/containers?wait=realized&timeout=2s", map[string]any{"name": "p2", "network": "blue", "host": "h2"}, nil)
	if code != 504 || err == nil || !strings.Contains(err.Error(), `"h2"`) {
		t.Errorf("realized wait on a host without agent: %d %v, want 504 naming h2", code, err)
	}
	if got := f.GetContainer(t, "p"); got.Status != openapi.ContainerPending {
		t.Errorf("p: status %q, want pending", got.Status)
	}
	if h := f.GetHost(t, "h2"); h.Status != openapi.HostNotReady {
		t.Errorf("h2 without agent: %s, want NotReady", h.Status)
	}
}

// agentStarted: once h2's agent runs, h2 is Ready and its pending
// containers run and are reachable.
func (f *failures) agentStarted(t *testing.T) {
	p := f.GetContainer(t, "p")
	f.WaitHost(t, "h2", openapi.HostReady, 30*time.Second)
	for _, name := range []string{"p", "p2"} {
		f.WaitContainer(t, name, openapi.ContainerRunning, 30*time.Second)
	}
	f.Reach(t, f.Sandbox("h1", "a", "blue"), p.IP)
	f.Reach(t, f.Sandbox("h2", "p", "blue"), f.a.IP)
}

// missingNetns: a container whose netns path does not exist fails with a
// detail that says so, has no port, and nothing else on h1 is disturbed.
func (f *failures) missingNetns(t *testing.T) {
	path := filepath.Join(lab.NetnsDir, f.Lab.Prefix()+"no-such-netns")
	// The realized wait says that h1 applied the change degraded.
	code, err := f.Do("POST", "/api/v1/containers?wait=realized&timeout=30s", map[string]any{"name": "bad", "network": "blue", "host": "h1", "netns": path}, nil)
	if code != 502 || err == nil || !strings.Contains(err.Error(), `"degraded"`) || !strings.Contains(err.Error(), `"h1"`) {
		t.Errorf("realized wait for a container whose port fails: %d %v, want 502 naming h1 degraded", code, err)
	}
	bad := f.GetContainer(t, "bad")
	got := f.WaitContainer(t, "bad", openapi.ContainerFailed, 20*time.Second)
	if !strings.Contains(got.StatusDetail, path) || !strings.Contains(strings.ToLower(got.StatusDetail), "no such file") {
		t.Errorf("failed container's detail %q does not say that %s does not exist", got.StatusDetail, path)
	}
	if ports := f.ContainerPorts(t, "h1", bad.ID); len(ports) != 0 {
		t.Errorf("failed container has OVS ports %v", ports)
	}
	if cluster.NetnsExists(filepath.Base(path)) {
		t.Errorf("the agent created the missing netns %s", path)
	}
	// Others on h1 keep working, old and new.
	na := f.Sandbox("h1", "a", "blue")
	b := f.Container(t, "b", "blue", "h1", nil)
	f.WaitContainer(t, "b", openapi.ContainerRunning, 20*time.Second)
	for _, ip := range []string{b.IP, f.GetContainer(t, "p").IP, "10.10.0.1"} {
		f.Reach(t, na, ip)
	}
	if got := f.GetContainer(t, "a"); got.Status != openapi.ContainerRunning {
		t.Errorf("a next to a failed container: %s (%s)", got.Status, got.StatusDetail)
	}
	f.MustDo(t, 204, "DELETE", "/api/v1/containers/bad?wait=realized&timeout=30s", nil, nil)
}

// existingNetns: a container attached to a namespace the user made works
// like any other; deleting it removes its eth0 but leaves the namespace.
func (f *failures) existingNetns(t *testing.T) {
	ns := f.Lab.NewNetns(t, "user1")
	u := f.Container(t, "u", "blue", "h1", map[string]any{"netns": filepath.Join(lab.NetnsDir, ns)})
	f.WaitContainer(t, "u", openapi.ContainerRunning, 20*time.Second)
	if addr := cluster.IP(t, ns, "-br", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(addr, u.IP+"/24") {
		t.Errorf("eth0 in the user's netns: %q, want %s/24", addr, u.IP)
	}
	if cluster.NetnsExists(f.Sandbox("h1", "u", "blue")) {
		t.Errorf("a managed sandbox was made for a container with its own netns")
	}
	f.Reach(t, ns, f.a.IP)
	f.Reach(t, f.Sandbox("h1", "a", "blue"), u.IP)
	f.Reach(t, ns, f.GetContainer(t, "p").IP)
	ports := f.ContainerPorts(t, "h1", u.ID)
	f.MustDo(t, 204, "DELETE", "/api/v1/containers/u?wait=realized&timeout=30s", nil, nil)
	if !cluster.NetnsExists(ns) {
		t.Fatalf("deleting the container deleted the user's netns %s", ns)
	}
	if cluster.LinkExists(ns, "eth0") {
		t.Errorf("eth0 is still in the user's netns after the delete")
	}
	if left := f.ContainerPorts(t, "h1", u.ID); len(left) != 0 || len(ports) != 1 {
		t.Errorf("u's OVS ports: %v before the delete, %v after", ports, left)
	}
	if out := cluster.IP(t, ns, "-br", "link"); !strings.Contains(out, "lo") {
		t.Errorf("the user's netns lost lo: %q", out)
	}
}
