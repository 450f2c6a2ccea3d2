package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/lab"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// AdminToken is the bootstrap admin token of every cluster's controller.
const AdminToken = "sy_e2e_admin_token"

// Options shape a cluster.
type Options struct {
	Hosts  int    // default 3
	Tunnel string // geneve (default) or vxlan
	// NoAgents leaves the agents unstarted (StartAgent starts one).
	NoAgents bool
	// AgentEnv is added to every agent's environment.
	AgentEnv []string
	// Management: the agents reach the controller over a management
	// network outside OVS (lab.Options.Management).
	Management bool
}

// Cluster is a running Switchyard in a lab.
type Cluster struct {
	Lab    *lab.Lab
	Bin    Binaries
	DB     string
	URL    string // the controller, for the test (loopback)
	Tunnel string
	// AgentURL is the controller as the agents see it (over the underlay).
	AgentURL   string
	Controller *lab.Proc
	Agents     map[string]*lab.Proc
	tokens     map[string]string
	relay      *relay
	opts       Options
	http       *http.Client
}

// New brings up the whole cluster: lab, database, controller, agents, and
// waits until every host is Ready.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Hosts == 0 {
		o.Hosts = 3
	}
	if o.Tunnel == "" {
		o.Tunnel = openapi.TunnelGeneve
	}
	bin := Build(t)
	db := pgtest.DatabaseURL(t)
	l := lab.New(t, lab.Options{Hosts: o.Hosts, Tunnel: o.Tunnel, Management: o.Management})
	c := &Cluster{Lab: l, Bin: bin, DB: db, Tunnel: o.Tunnel, Agents: map[string]*lab.Proc{}, tokens: map[string]string{},
		opts: o, http: &http.Client{Timeout: 60 * time.Second}}
	c.StartController(t)
	// The underlay's first address is where agents find the controller.
	c.relay = &relay{l.Expose(t, strings.TrimPrefix(c.URL, "http://"))}
	c.AgentURL = "http://" + c.relay.Addr()
	for _, h := range l.Hosts {
		var tok openapi.Token
		c.MustDo(t, 201, "POST", "/api/v1/tokens", map[string]any{"name": "node-" + h.Name, "role": "node", "host": h.Name}, &tok)
		c.tokens[h.Name] = tok.Secret
		if !o.NoAgents {
			c.StartAgent(t, h.Name)
		}
	}
	if !o.NoAgents {
		c.WaitReady(t, 30*time.Second)
	}
	return c
}

// FreePort asks the kernel for a free loopback port.
func FreePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartController starts (or starts again) the controller on loopback and
// waits until it is ready. A restart keeps its port.
func (c *Cluster) StartController(t testing.TB) {
	t.Helper()
	if c.URL == "" {
		c.URL = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	}
	c.Controller = c.launchController(t, "controller", c.URL)
}

// launchController starts a controller process on the cluster's database,
// listening at url (http://127.0.0.1:PORT), and waits until it is ready.
func (c *Cluster) launchController(t testing.TB, name, url string) *lab.Proc {
	t.Helper()
	env := []string{
		"SWITCHYARD_DATABASE_URL=" + c.DB,
		"SWITCHYARD_LISTEN=" + strings.TrimPrefix(url, "http://"),
		"SWITCHYARD_ADMIN_TOKEN=" + AdminToken,
		"SWITCHYARD_HEARTBEAT_TIMEOUT=5s",
	}
	if d := os.Getenv("SWITCHYARD_DEBUG_LISTEN"); d != "" && name == "controller" {
		// The profiler, for a benchmark's lab held to be looked at (one
		// address: the first controller only).
		env = append(env, "SWITCHYARD_DEBUG_LISTEN="+d)
	}
	p := c.Lab.Start(t, lab.ProcSpec{Name: name, Path: c.Bin.Controller, Env: env})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := c.http.Get(url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("%s not ready: %v (log %s)", name, err, p.LogPath())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// AgentEnv is the environment of host's agent.
func (c *Cluster) AgentEnv(host string) []string {
	return append(c.Lab.Host(host).AgentEnv(c.AgentURL, c.tokens[host]), c.opts.AgentEnv...)
}

// StartAgent starts host's agent inside the host's namespace.
func (c *Cluster) StartAgent(t testing.TB, host string, extraEnv ...string) *lab.Proc {
	t.Helper()
	h := c.Lab.Host(host)
	p := c.Lab.Start(t, lab.ProcSpec{Name: "agent-" + host, Netns: h.Netns, Path: c.Bin.Agent,
		Env: append(c.AgentEnv(host), extraEnv...)})
	c.Agents[host] = p
	return p
}

// SandboxPrefix is the prefix of host's managed sandbox namespaces: the lab
// hosts share one kernel, so each gets its own.
func (c *Cluster) SandboxPrefix(host string) string { return c.Lab.SandboxPrefix(host) }

// Sandbox is the namespace of a managed container on host.
func (c *Cluster) Sandbox(host, container, network string) string {
	return c.Lab.Sandbox(host, container, network)
}

// WaitReady waits until every host reports Ready.
func (c *Cluster) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.Eventually(t, timeout, func() error {
		var l openapi.List[openapi.Host]
		if code, err := c.Do("GET", "/api/v1/hosts", nil, &l); err != nil || code != 200 {
			return fmt.Errorf("list hosts: %d %v", code, err)
		}
		if len(l.Items) < len(c.Lab.Hosts) {
			return fmt.Errorf("%d hosts registered", len(l.Items))
		}
		for _, h := range l.Items {
			if h.Status != openapi.HostReady {
				return fmt.Errorf("host %s is %s", h.Name, h.Status)
			}
		}
		return nil
	})
}

// Eventually retries f until it returns nil, failing the test at timeout.
func (c *Cluster) Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	Eventually(t, timeout, f)
}

// Eventually retries f every 100 ms until it returns nil, failing the test
// at timeout.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Do calls the REST API as admin; out, when not nil, receives the JSON answer.
func (c *Cluster) Do(method, path string, body, out any) (int, error) {
	return c.DoAt(c.URL, method, path, body, out)
}

// DoAt is Do against the controller at base (another replica).
func (c *Cluster) DoAt(base, method, path string, body, out any) (int, error) {
	api := client.Client{Base: base, Token: AdminToken, HTTP: c.http}
	code, err := api.Do(context.Background(), method, path, body, out)
	if err != nil {
		return code, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return code, nil
}

// MustDo is Do, failing the test unless the status is want.
func (c *Cluster) MustDo(t testing.TB, want int, method, path string, body, out any) {
	t.Helper()
	code, err := c.Do(method, path, body, out)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, err)
	}
}

// Container creates a container and waits until it is realized everywhere.
func (c *Cluster) Container(t testing.TB, name, network, host string, extra map[string]any) openapi.Container {
	t.Helper()
	body := map[string]any{"name": name, "network": network, "host": host}
	for k, v := range extra {
		body[k] = v
	}
	var out openapi.Container
	c.MustDo(t, 201, "POST", "/api/v1/containers?wait=realized&timeout=30s", body, &out)
	return out
}

// Network creates a network.
func (c *Cluster) Network(t testing.TB, name, cidr string) openapi.Network {
	t.Helper()
	var out openapi.Network
	c.MustDo(t, 201, "POST", "/api/v1/networks", map[string]any{"name": name, "cidr": cidr}, &out)
	return out
}

// Ping pings dst from a container's namespace and returns the result.
func Ping(t testing.TB, netns, dst string, count int, interval time.Duration) lab.PingResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*interval+10*time.Second)
	defer cancel()
	r, _ := lab.Ping(ctx, netns, dst, count, interval)
	return r
}

// Flows returns br-int's flows on host, one per line, without statistics.
func (c *Cluster) Flows(t testing.TB, host string) []string {
	t.Helper()
	out := c.Lab.Host(host).OFCtl(t, "dump-flows", "br-int", "--no-stats")
	var flows []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "OFPST_FLOW") && !strings.HasPrefix(line, "NXST_FLOW") {
			flows = append(flows, line)
		}
	}
	return flows
}

// Ports lists br-int's ports on host.
func (c *Cluster) Ports(t testing.TB, host string) []string {
	t.Helper()
	return strings.Fields(c.Lab.Host(host).VSCtl(t, "list-ports", "br-int"))
}

// Itoa is strconv.Itoa, for building names.
func Itoa(i int) string { return strconv.Itoa(i) }
