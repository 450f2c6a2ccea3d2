package link

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// testEnv is a private "host" namespace plus a unique sandbox prefix, all
// removed when the test ends.
type testEnv struct {
	id     string
	host   string // netns name of the host
	prefix string
	m      *Manager
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (CI=true)")
	}
	t.Skip("needs root")
}

func newEnv(t *testing.T) *testEnv { return newEnvB(t) }

func newEnvB(t testing.TB) *testEnv {
	t.Helper()
	needRoot(t)
	b := make([]byte, 3)
	rand.Read(b)
	e := &testEnv{id: hex.EncodeToString(b)}
	e.host = "sylt-" + e.id + "-host"
	e.prefix = "sylt-" + e.id + "-sb-"
	t.Cleanup(func() {
		// Sandboxes first (their veths die with them), then the host.
		names, _ := listNamedNetns(DefaultNetnsDir, "sylt-"+e.id+"-")
		for _, n := range names {
			if err := deleteNamedNetns(filepath.Join(DefaultNetnsDir, n)); err != nil {
				t.Errorf("cleanup %s: %v", n, err)
			}
		}
	})
	if err := prepareNetnsDir(DefaultNetnsDir); err != nil {
		t.Fatal(err)
	}
	if err := createNamedNetns(filepath.Join(DefaultNetnsDir, e.host)); err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{HostNetns: filepath.Join(DefaultNetnsDir, e.host), SandboxPrefix: e.prefix, TxOffloadOff: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e.m = m
	return e
}

// in runs a command inside the namespace name.
func in(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func port(name, sandbox, ip, mac string) openapi.ContainerPort {
	return openapi.ContainerPort{
		Name: name, Container: sandbox, ID: "id-" + sandbox, Sandbox: sandbox,
		IP: ip, PrefixLen: 24, MAC: mac, Gateway: "10.77.0.1", MTU: 1400,
	}
}

func mustEnsure(t *testing.T, m *Manager, p openapi.ContainerPort) []string {
	t.Helper()
	d, err := m.Ensure(p)
	if err != nil {
		t.Fatalf("Ensure(%s): %v (diffs %v)", p.Name, err, d)
	}
	return d
}

func TestEnsureCreatesAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	p := port("vtest"+e.id[:4], "c1", "10.77.0.2", "02:00:00:00:00:02")
	d := mustEnsure(t, e.m, p)
	if !slices.Contains(d, CreatedVeth+p.Name) {
		t.Fatalf("first Ensure: %v", d)
	}
	if d := mustEnsure(t, e.m, p); len(d) != 0 {
		t.Fatalf("second Ensure changed %v", d)
	}
	if d, err := e.m.Check(p); err != nil || len(d) != 0 {
		t.Fatalf("Check: %v %v", d, err)
	}
	sb := e.prefix + "c1"
	out := in(t, sb, "ip", "-o", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, "10.77.0.2/24") {
		t.Fatalf("eth0 addresses: %s", out)
	}
	out = in(t, sb, "ip", "link", "show", "dev", "eth0")
	if !strings.Contains(out, "02:00:00:00:00:02") || !strings.Contains(out, "mtu 1400") {
		t.Fatalf("eth0: %s", out)
	}
	if out := in(t, sb, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.77.0.1 dev eth0") {
		t.Fatalf("route: %s", out)
	}
	for _, where := range [][]string{{sb, "eth0"}, {e.host, p.Name}} {
		if out := in(t, where[0], "ethtool", "-k", where[1]); !strings.Contains(out, "tx-checksumming: off") {
			t.Fatalf("%s offload: %s", where[1], out)
		}
	}
	// The host end is up and promiscuous (as ovs-vswitchd would make it
	// when it adds the port).
	if out := in(t, e.host, "ip", "-o", "link", "show", "dev", p.Name); !strings.Contains(out, "PROMISC") || !strings.Contains(out, ",UP") {
		t.Fatalf("host end flags: %s", out)
	}
	// IPv6 stays off the air: neither end has a link-local address (no
	// DAD, router solicitation or MLD into the switch), and lo keeps ::1.
	for _, where := range [][]string{{sb, "eth0"}, {e.host, p.Name}} {
		if out := in(t, where[0], "ip", "-6", "-o", "addr", "show", "dev", where[1]); strings.TrimSpace(out) != "" {
			t.Fatalf("%s has IPv6 addresses: %s", where[1], out)
		}
	}
	// The host end has IPv6 off: not even the multicast route ff00::/8,
	// whose coming and going would be route notifications for the host's
	// ovs-vswitchd.
	if out := in(t, e.host, "ip", "-6", "-o", "route", "show", "table", "all", "dev", p.Name); strings.TrimSpace(out) != "" {
		t.Fatalf("host end %s has IPv6 routes: %s", p.Name, out)
	}
	if out := in(t, e.host, "cat", "/proc/sys/net/ipv6/conf/"+p.Name+"/disable_ipv6"); strings.TrimSpace(out) != "1" {
		t.Fatalf("host end %s: disable_ipv6 %q, want 1", p.Name, out)
	}
	if out := in(t, sb, "ip", "-6", "-o", "addr", "show", "dev", "lo"); !strings.Contains(out, "::1/128") {
		t.Fatalf("lo lost ::1: %q", out)
	}
	// The host can reach the container through the veth.
	in(t, e.host, "ip", "addr", "add", "10.77.0.1/24", "dev", p.Name)
	in(t, e.host, "ping", "-c1", "-W2", "10.77.0.2")
	if states, err := e.m.States(); err != nil || !states[p.Name] {
		t.Fatalf("States: %v %v", states[p.Name], err)
	}
	if up, found, err := e.m.State(p.Name); err != nil || !found || !up {
		t.Fatalf("State(%s): up %v found %v %v", p.Name, up, found, err)
	}
	in(t, e.host, "ip", "link", "set", p.Name, "down")
	if up, found, err := e.m.State(p.Name); err != nil || !found || up {
		t.Fatalf("State(%s) when down: up %v found %v %v", p.Name, up, found, err)
	}
	if up, found, err := e.m.State("nosuch" + e.id[:4]); err != nil || found || up {
		t.Fatalf("State of a missing link: up %v found %v %v", up, found, err)
	}
}

func TestEnsureRepairs(t *testing.T) {
	e := newEnv(t)
	p := port("vrep"+e.id[:4], "c1", "10.77.0.3", "02:00:00:00:00:03")
	mustEnsure(t, e.m, p)
	sb := e.prefix + "c1"
	breakages := []struct {
		name string
		cmd  []string
		ns   string
	}{
		{"mac", []string{"ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"}, sb},
		{"mtu", []string{"ip", "link", "set", "eth0", "mtu", "1300"}, sb},
		{"addr", []string{"ip", "addr", "flush", "dev", "eth0"}, sb},
		{"extra addr", []string{"ip", "addr", "add", "10.9.9.9/24", "dev", "eth0"}, sb},
		{"down", []string{"ip", "link", "set", p.Name, "down"}, e.host},
		{"offload", []string{"ethtool", "-K", "eth0", "tx", "on"}, sb},
		{"peer gone", []string{"ip", "link", "del", "eth0"}, sb},
		{"host end gone", []string{"ip", "link", "del", p.Name}, e.host},
	}
	for _, b := range breakages {
		in(t, b.ns, b.cmd...)
		d, err := e.m.Check(p)
		if err != nil || len(d) == 0 {
			t.Fatalf("%s: Check found nothing (%v)", b.name, err)
		}
		mustEnsure(t, e.m, p)
		if d, err := e.m.Check(p); err != nil || len(d) != 0 {
			t.Fatalf("%s: after Ensure, Check: %v %v", b.name, d, err)
		}
	}
	// A wrong program value (new MAC, MTU, address) is applied in place.
	p.MAC, p.MTU, p.IP = "02:00:00:00:00:33", 1450, "10.77.0.33"
	d := mustEnsure(t, e.m, p)
	if slices.Contains(d, CreatedVeth+p.Name) || len(d) == 0 {
		t.Fatalf("in-place change: %v", d)
	}
	if out := in(t, sb, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.77.0.33/24") || strings.Contains(out, "10.77.0.3/") {
		t.Fatalf("addresses: %s", out)
	}
}

func TestMissingNetnsPathFails(t *testing.T) {
	e := newEnv(t)
	p := port("vmis"+e.id[:4], "c1", "10.77.0.4", "02:00:00:00:00:04")
	p.Netns = "/run/netns/sylt-" + e.id + "-does-not-exist"
	_, err := e.m.Ensure(p)
	if err == nil || !strings.Contains(err.Error(), "does-not-exist") {
		t.Fatalf("Ensure with missing netns: %v", err)
	}
	if _, err := os.Stat(p.Netns); !os.IsNotExist(err) {
		t.Fatalf("Ensure created the user's netns path: %v", err)
	}
}

func TestUserNetnsAndPrune(t *testing.T) {
	e := newEnv(t)
	user := filepath.Join(DefaultNetnsDir, "sylt-"+e.id+"-user")
	if err := createNamedNetns(user); err != nil {
		t.Fatal(err)
	}
	pu := port("vusr"+e.id[:4], "u1", "10.77.0.5", "02:00:00:00:00:05")
	pu.Netns, pu.Sandbox = user, ""
	pm := port("vman"+e.id[:4], "m1", "10.77.0.6", "02:00:00:00:00:06")
	mustEnsure(t, e.m, pu)
	mustEnsure(t, e.m, pm)
	// A foreign veth without our alias must survive Prune.
	in(t, e.host, "ip", "link", "add", "foreign0", "type", "veth", "peer", "name", "foreign1")

	deleted, err := e.m.Prune(map[string]bool{}, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	want := []string{"sandbox " + e.prefix + "m1", "veth " + pm.Name, "veth " + pu.Name}
	if !slices.Equal(deleted, want) {
		t.Fatalf("Prune deleted %v, want %v", deleted, want)
	}
	if ok, err := isNetns(user); err != nil || !ok {
		t.Fatalf("user netns touched: %v %v", ok, err)
	}
	if out := in(t, e.host, "ip", "-o", "link", "show"); !strings.Contains(out, "foreign0") || strings.Contains(out, pm.Name) {
		t.Fatalf("host links after prune: %s", out)
	}
	if deleted, err := e.m.Prune(nil, nil); err != nil || len(deleted) != 0 {
		t.Fatalf("second Prune: %v %v", deleted, err)
	}
}
