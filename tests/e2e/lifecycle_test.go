package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// lifecycle is the cluster the lifecycle scenarios share: network blue with
// a and b on h1, c on h2, d on h3. Subtests run in order and change it.
type lifecycle struct {
	*cluster.Cluster
	ct map[string]openapi.Container // as last created or moved
}

// sandbox is the managed namespace of container name on its current host.
func (l *lifecycle) sandbox(name string) string {
	return l.Sandbox(l.ct[name].Host, name, l.ct[name].Network)
}

// reach fails the test unless a ping from container from reaches ip.
func (l *lifecycle) reach(t *testing.T, from, ip string) {
	t.Helper()
	if res := cluster.Ping(t, l.sandbox(from), ip, 3, 200*time.Millisecond); res.Received == 0 {
		t.Errorf("ping %s -> %s: %+v", from, ip, res)
	}
}

// noFlowsNaming fails the test if a flow on any host still names a term or
// a port that is gone.
func (l *lifecycle) noFlowsNaming(t *testing.T, terms ...cluster.FlowTerm) {
	t.Helper()
	for _, h := range l.Lab.Hosts {
		if bad := append(l.DanglingFlows(t, h.Name), cluster.FlowsNaming(l.Flows(t, h.Name), terms...)...); len(bad) > 0 {
			t.Errorf("%s still has flows naming what is gone:\n%s", h.Name, strings.Join(bad, "\n"))
		}
	}
}

// Containers are created, checked for realization, moved, deleted; spoofed
// traffic never gets through; a host is deleted. Every scenario checks
// packets and switch state, not only API answers. The move also runs over
// VXLAN.
func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		tunnel string
		all    bool // false: realization and move only
	}{{openapi.TunnelGeneve, true}, {openapi.TunnelVXLAN, false}} {
		t.Run(tc.tunnel, func(t *testing.T) {
			l := &lifecycle{Cluster: cluster.New(t, cluster.Options{Hosts: 3, Tunnel: tc.tunnel}), ct: map[string]openapi.Container{}}
			defer l.Lab.DumpOnFailure(t)
			l.Network(t, "blue", "10.10.0.0/24")
			for _, p := range []struct{ name, host string }{{"a", "h1"}, {"b", "h1"}, {"c", "h2"}, {"d", "h3"}} {
				l.ct[p.name] = l.Container(t, p.name, "blue", p.host, nil)
			}
			if !t.Run("realized", l.realized) {
				return
			}
			if tc.all {
				t.Run("ipam blocks", l.blocks)
				t.Run("spoof ip", l.spoofIP)
				t.Run("spoof mac", l.spoofMAC)
			}
			if !t.Run("move", l.move) || !tc.all {
				return
			}
			t.Run("delete", l.delete)
			t.Run("delete host", l.deleteHost)
		})
	}
}

// realized: after creates with ?wait=realized every container is running,
// its host has applied its revision, its port is in OVS and its sandbox's
// eth0 carries its address and MAC.
func (l *lifecycle) realized(t *testing.T) {
	var last int64
	for _, name := range []string{"a", "b", "c", "d"} {
		created := l.ct[name]
		last = max(last, created.Revision)
		got := l.GetContainer(t, name)
		if got.Status != openapi.ContainerRunning {
			t.Errorf("container %s right after a realized create: status %q (%s), want running", name, got.Status, got.StatusDetail)
		}
		if h := l.GetHost(t, got.Host); h.AppliedRevision < created.Revision {
			t.Errorf("host %s applied revision %d, container %s has revision %d", h.Name, h.AppliedRevision, name, created.Revision)
		}
		if ports := l.ContainerPorts(t, got.Host, got.ID); len(ports) != 1 {
			t.Errorf("container %s: OVS ports on %s: %v, want one", name, got.Host, ports)
		}
		link := cluster.IP(t, l.sandbox(name), "-br", "link", "show", "dev", "eth0")
		addr := cluster.IP(t, l.sandbox(name), "-br", "-4", "addr", "show", "dev", "eth0")
		if !strings.Contains(link, got.MAC) || !strings.Contains(addr, got.IP+"/24") {
			t.Errorf("container %s: eth0 is %q %q, want mac %s ip %s/24", name, link, addr, got.MAC, got.IP)
		}
	}
	// Every host has a container on blue, so every host's program changed
	// with the last create (its resolver knows every name).
	for _, h := range l.Lab.Hosts {
		if got := l.GetHost(t, h.Name); got.AppliedRevision < last || got.Status != openapi.HostReady {
			t.Errorf("host %s: %s, applied revision %d, want Ready and >= %d", h.Name, got.Status, got.AppliedRevision, last)
		}
	}
}

// spoofIP: a sends from an address that is not its own (another
// container's, an unused one of the network): the packets leave a but none
// reaches the target, while a's own address keeps working.
func (l *lifecycle) spoofIP(t *testing.T) {
	a, c := l.ct["a"], l.ct["c"]
	na, nc := l.sandbox("a"), l.sandbox("c")
	l.reach(t, "a", c.IP) // warms a's neighbor entry for c
	for _, spoofed := range []string{l.ct["d"].IP, "10.10.0.200"} {
		// On lo, where the agent's resync (which removes foreign addresses
		// from eth0) leaves it: packets still leave by eth0.
		cluster.IP(t, na, "addr", "add", spoofed+"/32", "dev", "lo")
		sent := l.Capture(t, na, "eth0", "icmp and src host "+spoofed)
		got := l.Capture(t, nc, "eth0", "icmp")
		if cluster.PingFrom(t, na, spoofed, c.IP, 3) {
			t.Errorf("a got a reply from c for a ping from spoofed %s", spoofed)
		}
		sent.WaitFor(t, 10*time.Second, " "+spoofed+" > "+c.IP)
		cluster.IP(t, na, "addr", "del", spoofed+"/32", "dev", "lo")
		// a's own ping, sent last, marks the end of what c may have seen.
		l.reach(t, "a", c.IP)
		got.WaitFor(t, 10*time.Second, " "+a.IP+" > "+c.IP)
		if bad := cluster.Matching(got.Packets(), " "+spoofed+" > "); len(bad) > 0 {
			t.Errorf("spoofed packets from %s reached c:\n%s", spoofed, strings.Join(bad, "\n"))
		}
		sent.Packets()
	}
}

// spoofMAC: a takes b's MAC; its frames leave a but are dropped at its port
// (never seen at c), while b and the others are unaffected; with its MAC
// back (by hand or by the agent's resync) a works again.
func (l *lifecycle) spoofMAC(t *testing.T) {
	a, b, c := l.ct["a"], l.ct["b"], l.ct["c"]
	na, nc := l.sandbox("a"), l.sandbox("c")
	l.reach(t, "a", c.IP)
	sent := l.Capture(t, na, "eth0", "ether src "+b.MAC)
	got := l.Capture(t, nc, "eth0", "icmp or arp")
	// The agent may restore the MAC at its next resync: try until one ping
	// ran entirely with the spoofed MAC.
	tested := false
	for i := 0; i < 5 && !tested; i++ {
		cluster.IP(t, na, "link", "set", "dev", "eth0", "address", b.MAC)
		// A MAC change flushes the neighbor table, and a's ARP requests
		// (with b's MAC) are dropped too: pin c's MAC so ICMP leaves as well.
		cluster.IP(t, na, "neigh", "replace", c.IP, "lladdr", c.MAC, "dev", "eth0", "nud", "permanent")
		res := cluster.Ping(t, na, c.IP, 2, 200*time.Millisecond)
		if !strings.Contains(cluster.IP(t, na, "-br", "link", "show", "dev", "eth0"), b.MAC) {
			continue // restored during the ping
		}
		tested = true
		if res.Received != 0 {
			t.Errorf("a with b's MAC reached c: %+v", res)
		}
		sent.WaitFor(t, 10*time.Second, b.MAC+" > ", " "+a.IP+" > "+c.IP)
		l.reach(t, "b", c.IP)
		l.reach(t, "d", b.IP)
		l.reach(t, "c", b.IP)
	}
	if !tested {
		t.Errorf("the agent restored a's MAC during every ping: could not test")
	}
	cluster.IP(t, na, "link", "set", "dev", "eth0", "address", a.MAC)
	_, _ = lab.RunIn(context.Background(), na, "ip", "neigh", "del", c.IP, "dev", "eth0")
	l.Reach(t, na, c.IP)
	got.WaitFor(t, 10*time.Second, a.MAC+" > ", " "+a.IP+" > "+c.IP)
	// b's own frames carry b's MAC too: look for a's address.
	var bad []string
	for _, from := range []string{" " + a.IP + " > ", "tell " + a.IP + ","} {
		bad = append(bad, cluster.Matching(cluster.Matching(got.Packets(), b.MAC+" > "), from)...)
	}
	if len(bad) > 0 {
		t.Errorf("frames of a with b's MAC reached c:\n%s", strings.Join(bad, "\n"))
	}
	sent.Packets()
}

// move: c goes from h2 to h3 and keeps its IP and MAC; a reaches it there
// by ping and TCP; nothing of it is left on h2.
func (l *lifecycle) move(t *testing.T) {
	old := l.ct["c"]
	oldNetns := l.sandbox("c")
	oldPorts := l.ContainerPorts(t, "h2", old.ID)
	if len(oldPorts) != 1 {
		t.Fatalf("c's ports on h2 before the move: %v", oldPorts)
	}
	var moved openapi.Container
	l.MustDo(t, 200, "POST", "/api/v1/containers/c/move?wait=realized&timeout=30s", map[string]any{"host": "h3"}, &moved)
	if moved.Host != "h3" || moved.IP != old.IP || moved.MAC != old.MAC || moved.ID != old.ID {
		t.Fatalf("moved c: host %s ip %s mac %s id %s, want h3 %s %s %s", moved.Host, moved.IP, moved.MAC, moved.ID, old.IP, old.MAC, old.ID)
	}
	l.ct["c"] = moved
	if ports := l.ContainerPorts(t, "h2", old.ID); len(ports) != 0 {
		t.Errorf("c's port still on h2: %v", ports)
	}
	if cluster.LinkExists(l.Lab.Host("h2").Netns, oldPorts[0]) {
		t.Errorf("c's veth %s still on h2", oldPorts[0])
	}
	if cluster.NetnsExists(oldNetns) {
		t.Errorf("c's old sandbox %s still exists", oldNetns)
	}
	if ports := l.ContainerPorts(t, "h3", old.ID); len(ports) != 1 {
		t.Errorf("c's ports on h3: %v, want one", ports)
	}
	if link := cluster.IP(t, l.sandbox("c"), "-br", "link", "show", "dev", "eth0"); !strings.Contains(link, old.MAC) {
		t.Errorf("c's eth0 on h3: %q, want mac %s", link, old.MAC)
	}
	l.WaitContainer(t, "c", openapi.ContainerRunning, 10*time.Second)
	l.reach(t, "a", old.IP)
	l.reach(t, "c", l.ct["b"].IP)
	l.TCP(t, l.sandbox("c"), old.IP, l.sandbox("a"))
}

// delete: b is deleted; its port, veth, sandbox and every flow naming its
// IP or MAC are gone on every host; its address is free for the next
// container, which gets the same MAC and is reachable.
func (l *lifecycle) delete(t *testing.T) {
	b := l.ct["b"]
	netns := l.sandbox("b")
	ports := l.ContainerPorts(t, "h1", b.ID)
	if len(ports) != 1 {
		t.Fatalf("b's ports before the delete: %v", ports)
	}
	l.MustDo(t, 204, "DELETE", "/api/v1/containers/b?wait=realized&timeout=30s", nil, nil)
	delete(l.ct, "b")
	l.MustDo(t, 404, "GET", "/api/v1/containers/b", nil, nil)
	if left := l.ContainerPorts(t, "h1", b.ID); len(left) != 0 {
		t.Errorf("b's port still in OVS: %v", left)
	}
	if cluster.LinkExists(l.Lab.Host("h1").Netns, ports[0]) {
		t.Errorf("b's veth %s still on h1", ports[0])
	}
	if cluster.NetnsExists(netns) {
		t.Errorf("b's sandbox %s still exists", netns)
	}
	l.noFlowsNaming(t, cluster.IPTerm(b.IP), cluster.MACTerm(b.MAC))
	if res := cluster.Ping(t, l.sandbox("a"), b.IP, 2, 200*time.Millisecond); res.Received != 0 {
		t.Errorf("deleted b still answers: %+v", res)
	}
	// The address is free again: a new container may take it.
	e := l.Container(t, "e", "blue", "h2", map[string]any{"ip": b.IP})
	l.ct["e"] = e
	if e.IP != b.IP || e.MAC != b.MAC {
		t.Errorf("e took ip %s mac %s, want b's %s %s", e.IP, e.MAC, b.IP, b.MAC)
	}
	l.reach(t, "a", e.IP)
	l.reach(t, "e", l.ct["c"].IP)
}

// deleteHost: h3 cannot go while it has containers; emptied, its agent
// stopped and deleted, the tunnels towards it and every flow naming them or
// its address disappear on the other hosts, which keep working.
func (l *lifecycle) deleteHost(t *testing.T) {
	h3 := l.Lab.Host("h3")
	for _, h := range []string{"h1", "h2"} {
		if tun := l.TunnelPorts(t, h, "h3"); len(tun) != 1 {
			t.Fatalf("%s: tunnel ports towards h3: %v, want one", h, tun)
		}
	}
	if code, err := l.Do("DELETE", "/api/v1/hosts/h3", nil, nil); code != 409 {
		t.Errorf("deleting h3 with containers: %d %v, want 409", code, err)
	}
	l.MustDo(t, 200, "POST", "/api/v1/containers/c/move?wait=realized&timeout=30s", map[string]any{"host": "h2"}, nil)
	l.ct["c"] = l.GetContainer(t, "c")
	l.MustDo(t, 204, "DELETE", "/api/v1/containers/d?wait=realized&timeout=30s", nil, nil)
	delete(l.ct, "d")
	l.Agents["h3"].Stop()
	l.MustDo(t, 204, "DELETE", "/api/v1/hosts/h3?wait=realized&timeout=30s", nil, nil)
	l.MustDo(t, 404, "GET", "/api/v1/hosts/h3", nil, nil)
	for _, h := range []string{"h1", "h2"} {
		if tun := l.TunnelPorts(t, h, "h3"); len(tun) != 0 {
			t.Errorf("%s: tunnel ports towards deleted h3: %v", h, tun)
		}
		bad := append(l.DanglingFlows(t, h), cluster.FlowsNaming(l.Flows(t, h), cluster.IPTerm(h3.UnderlayAddr.Addr().String()))...)
		if len(bad) > 0 {
			t.Errorf("%s still has flows naming h3 or its tunnel:\n%s", h, strings.Join(bad, "\n"))
		}
	}
	l.reach(t, "a", l.ct["c"].IP)
	l.reach(t, "e", l.ct["a"].IP)
}
