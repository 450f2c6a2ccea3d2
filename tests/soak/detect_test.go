package soak

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// checkerDetects proves the checker is not blind: with host's agent
// stopped (SIGSTOP, so that it repairs nothing), each kind of damage made
// by hand is reported by a pass over that host; then the damage is undone,
// the agent continued, and the cluster must converge again.
func checkerDetects(t *testing.T, k *checker, host string) {
	t.Helper()
	c := k.c
	agent := c.Agents[host]
	if err := syscall.Kill(agent.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP agent %s: %v", host, err)
	}
	continued := false
	cont := func() {
		if !continued {
			continued = true
			_ = syscall.Kill(agent.Pid(), syscall.SIGCONT)
		}
	}
	defer cont()
	h := c.Lab.Host(host)
	sh := func(cmd string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := h.Run(ctx, "sh", "-c", cmd); err != nil {
			t.Fatalf("%s: %s: %v %s", host, cmd, err, out)
		}
	}
	leakNS := c.SandboxPrefix(host) + "soakleak.red"
	for _, tc := range []struct {
		name, damage, undo, want string
	}{
		{"extra flow", "ovs-ofctl -O OpenFlow15 add-flow br-int 'table=200,priority=7,cookie=0x1234,actions=drop'",
			"ovs-ofctl -O OpenFlow15 del-flows br-int 'table=200,cookie=0x1234/-1'", "flows differ from the program"},
		{"leaked OVS port", fmt.Sprintf("ovs-vsctl --db=%s add-port br-int soakleak0 -- set Interface soakleak0 type=internal", h.DB),
			fmt.Sprintf("ovs-vsctl --db=%s del-port br-int soakleak0", h.DB), "OVS ports: extra soakleak0"},
		{"leaked namespace", "ip netns add " + leakNS, "ip netns delete " + leakNS, "sandbox namespaces: extra " + leakNS},
		{"leaked NAT rule", "nft add table ip switchyard && nft add chain ip switchyard soakleak && nft add rule ip switchyard soakleak tcp dport 4444 accept",
			"nft delete chain ip switchyard soakleak", "NAT ports: extra 4444"},
	} {
		sh(tc.damage)
		var got []string
		if hs, ok := k.hostByName(host); ok {
			got = k.host(hs)
		}
		sh(tc.undo)
		if !strings.Contains(strings.Join(got, "\n"), tc.want) {
			t.Errorf("%s: the checker did not see it (want %q): %q", tc.name, tc.want, got)
		}
	}
	// A flow of the program deleted by hand: missing.
	sh("ovs-ofctl -O OpenFlow15 del-flows br-int table=0")
	hs, _ := k.hostByName(host)
	if got := k.host(hs); !strings.Contains(strings.Join(got, "\n"), "flows differ from the program") {
		t.Errorf("flows of table 0 deleted: the checker did not see it: %q", got)
	}
	cont()
	// The agent's resync restores table 0; all holds again.
	if _, problems := converge(k, 60*time.Second); problems != nil {
		t.Errorf("after the damage was undone and the agent continued: %q", problems)
	}
}
