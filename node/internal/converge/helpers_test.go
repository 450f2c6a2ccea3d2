package converge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/testprog"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// Test programs and probes are package testprog's; here, the host under
// test and the calls the tests make on it.

type ctr = testprog.Ctr

const testVNI = testprog.VNI

var (
	program      = testprog.Program
	tunnelName   = testprog.TunnelName
	arpResponder = testprog.ARPResponder
	newLab       = testprog.NewLab
	flowsOn      = testprog.FlowsOn
	groupsOn     = testprog.GroupsOn
	lines        = testprog.Lines
	remoteFlows  = testprog.RemoteFlows
)

// sandboxPrefix is the managed-sandbox prefix of a lab host: it carries the
// lab's prefix, so the lab deletes leftovers, and the host's name, so that
// hosts (sharing one /run/netns) never prune each other's sandboxes.
func sandboxPrefix(l *lab.Lab, h *lab.Host) string { return l.Prefix() + h.Name + "-" }

// newHost connects a Host to a lab host, as the agent inside the
// host's namespace would.
func newHost(t testing.TB, l *lab.Lab, h *lab.Host, mods ...func(*Options)) *Host {
	t.Helper()
	var o Options
	for _, m := range mods {
		m(&o)
	}
	return newHostWith(t, l, h, o)
}

// newHostWith is newHost with opts (the lab's fields are set here).
func newHostWith(t testing.TB, l *lab.Lab, h *lab.Host, opts Options) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.DB, opts.RunDir, opts.Datapath = h.DB, h.Dir, "netdev"
	opts.HostNetns, opts.SandboxPrefix = "/run/netns/"+h.Netns, sandboxPrefix(l, h)
	a, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// genHost is a Host for a one-host lab's h1, with its generation.
func genHost(t *testing.T) (*lab.Host, *Host) {
	t.Helper()
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	if _, err := a.NewGeneration(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h, a
}

// seal sets p.Digest to a hash of p's content, as the controller does.
func seal(p *openapi.Program) *openapi.Program {
	p.Digest = ""
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	p.Digest = hex.EncodeToString(sum[:8])
	return p
}

func apply(t testing.TB, a *Host, p *openapi.Program) ApplyResult {
	t.Helper()
	seal(p)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := a.Apply(ctx, p)
	if err != nil {
		t.Fatalf("Apply rev %d: %v", p.Revision, err)
	}
	return res
}

func observe(t testing.TB, a *Host) Observed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := a.Observe(ctx)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return o
}

func sandbox(l *lab.Lab, h *lab.Host, c ctr) string { return sandboxPrefix(l, h) + c.Name() }

func ping(t *testing.T, from string, to ctr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := lab.Ping(ctx, from, to.IP(), 3, 100*time.Millisecond)
	if err != nil || r.Received == 0 {
		t.Fatalf("ping %s from %s: %v\n%s", to.IP(), from, err, r.Output)
	}
}

// flows dumps br-int's flows without statistics, sorted, with port names.
func flows(t testing.TB, h *lab.Host) []string {
	t.Helper()
	return flowsOn(t, h, "br-int")
}

// ports lists br-int's ports, sorted.
func ports(t testing.TB, h *lab.Host) []string {
	t.Helper()
	out := strings.Fields(h.VSCtl(t, "list-ports", "br-int"))
	slices.Sort(out)
	return out
}

func ofports(res ApplyResult) map[string]int {
	m := map[string]int{}
	for _, p := range res.Ports {
		m[p.Name] = p.OFPort
	}
	return m
}

func portErrors(res ApplyResult) map[string]string {
	m := map[string]string{}
	for _, p := range res.Ports {
		if p.Error != "" {
			m[p.Name] = p.Error
		}
	}
	return m
}
