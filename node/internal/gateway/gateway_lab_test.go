package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// TestEnsureInNetns realizes a gateway in a scratch namespace (veths
// stand for the gateway port and the underlay): routes, forwarding,
// the egress IP and the NAT table; then finds and repairs drift (table
// deleted, a route deleted, a foreign address left alone), and removes it
// all for a nil gateway.
func TestEnsureInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft missing (deploy/local/deps.sh installs nftables)")
		}
		t.Skip("nft missing")
	}
	name := fmt.Sprintf("sygwtest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	for _, args := range [][]string{
		{"link", "add", openapi.GatewayPortName, "type", "veth", "peer", "name", "gwpeer"},
		{"link", "add", "ul", "type", "veth", "peer", "name", "ulpeer"},
		{"link", "set", "ul", "up"},
		{"addr", "add", "192.168.50.11/24", "dev", "ul"},
		{"addr", "add", "192.168.50.99/32", "dev", "ul"}, // not ours: stays
	} {
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	g := &openapi.Gateway{MAC: "0a:59:c0:a8:32:0b", Address: "192.168.50.11",
		Routes:    []openapi.GatewayRoute{{Dst: "10.1.0.0/16"}, {Dst: "10.96.0.5/32", Via: "10.1.0.1"}},
		NAT:       []openapi.NATRule{{Kind: openapi.NATPublish, Owner: "container/c1", Protocol: "TCP", HostPort: 18080, ToIP: "10.1.0.5", ToPort: 80}, {Kind: openapi.NATEgress, Owner: "network/blue", Source: "10.1.0.0/16"}},
		EgressIPs: []string{"192.168.50.200"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := func(fn func() error) {
		t.Helper()
		if err := link.InNetnsPath("/run/netns/"+name, fn); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
		return string(out)
	}
	var m *Manager
	in(func() error {
		var err error
		if m, err = New("ul"); err != nil {
			return err
		}
		m.ProcSys = t.TempDir() // the namespace's own sysctls are not at stake here
		if err := os.MkdirAll(m.ProcSys+"/net/ipv4", 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(m.ProcSys+"/net/ipv4/ip_forward", []byte("0\n"), 0o644); err != nil {
			return err
		}
		changes, err := m.Ensure(ctx, g, false)
		t.Logf("first Ensure: %v", changes)
		return err
	})
	if b, _ := os.ReadFile(m.ProcSys + "/net/ipv4/ip_forward"); string(b) != "1\n" {
		t.Errorf("ip_forward %q", b)
	}
	routes := run("ip", "route", "show", "dev", openapi.GatewayPortName)
	if !strings.Contains(routes, "10.1.0.0/16") || !strings.Contains(routes, "10.96.0.5 via 10.1.0.1") {
		t.Errorf("routes:\n%s", routes)
	}
	if l := run("ip", "link", "show", openapi.GatewayPortName); !strings.Contains(l, g.MAC) || !strings.Contains(l, "UP") {
		t.Errorf("gateway link:\n%s", l)
	}
	if a := run("ip", "addr", "show", "ul"); !strings.Contains(a, "192.168.50.200/32") || !strings.Contains(a, "ul:sy") {
		t.Errorf("egress IP:\n%s", a)
	}
	if nft := run("nft", "list", "table", "ip", "switchyard"); !strings.Contains(nft, "dnat to 10.1.0.5:80") {
		t.Errorf("table:\n%s", nft)
	}
	// Unchanged: nothing to do, nothing drifted.
	in(func() error {
		if d := m.Drift(ctx, g); len(d) > 0 {
			t.Errorf("drift right after Ensure: %v", d)
		}
		c, err := m.Ensure(ctx, g, false)
		if len(c) > 0 {
			t.Errorf("second Ensure changed %v", c)
		}
		return err
	})
	// Drift: the table and a route go; Drift says so; a full Ensure repairs.
	run("nft", "delete", "table", "ip", "switchyard")
	run("ip", "route", "del", "10.1.0.0/16", "dev", openapi.GatewayPortName)
	in(func() error {
		d := m.Drift(ctx, g)
		if len(d) < 2 {
			t.Errorf("drift not seen: %v", d)
		}
		_, err := m.Ensure(ctx, g, true)
		if d := m.Drift(ctx, g); len(d) > 0 {
			t.Errorf("drift after repair: %v", d)
		}
		return err
	})
	// Gone: table, routes and our egress IP go; the foreign address stays.
	in(func() error {
		_, err := m.Ensure(ctx, nil, false)
		return err
	})
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "table", "ip", "switchyard").CombinedOutput(); err == nil {
		t.Errorf("table still there:\n%s", out)
	}
	a := run("ip", "addr", "show", "ul")
	if strings.Contains(a, "192.168.50.200") || !strings.Contains(a, "192.168.50.99/32") {
		t.Errorf("addresses after removal:\n%s", a)
	}
}
