package compile

import (
	"flag"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/golden"
	"github.com/switchyard/switchyard/openapi"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenScenarios are small snapshots whose programs are reviewed by eye.
func goldenScenarios() map[string]*Snapshot {
	blue, green := network("blue", 1), network("green", 2)
	c := func(name string, n openapi.Network, i, k int, h string) openapi.Container {
		return container(name, n.Name, i, k, h)
	}
	db := c("db", blue, 1, 1, "h1")
	db.Netns = "/run/netns/db"
	return map[string]*Snapshot{
		"one-host": {
			Revision:   7,
			Hosts:      []openapi.Host{host("h1", "192.168.1.1", openapi.TunnelGeneve)},
			Networks:   []openapi.Network{blue},
			Containers: []openapi.Container{c("web", blue, 1, 0, "h1"), db},
		},
		"three-hosts": {
			Revision: 8,
			Hosts: []openapi.Host{
				host("h1", "192.168.1.1", openapi.TunnelGeneve),
				host("h2", "192.168.1.2", openapi.TunnelGeneve),
				host("h3", "192.168.1.3", openapi.TunnelGeneve),
			},
			Networks: []openapi.Network{blue, green},
			Containers: []openapi.Container{
				c("a1", blue, 1, 0, "h1"), c("a2", blue, 1, 1, "h2"),
				c("b1", green, 2, 0, "h2"), c("b2", green, 2, 1, "h3"), c("b3", green, 2, 2, "h3"),
			},
		},
		"vxlan": {
			Revision: 9,
			Hosts: []openapi.Host{
				host("h1", "192.168.1.1", openapi.TunnelVXLAN),
				host("h2", "192.168.1.2", openapi.TunnelVXLAN),
				host("h3", "192.168.1.3", openapi.TunnelGeneve),
			},
			Networks: []openapi.Network{blue},
			Containers: []openapi.Container{
				c("a1", blue, 1, 0, "h1"), c("a2", blue, 1, 1, "h2"), c("a3", blue, 1, 2, "h3"),
			},
		},
		"empty-host": {
			Revision: 10,
			Hosts: []openapi.Host{
				host("h1", "192.168.1.1", openapi.TunnelGeneve),
				host("h2", "192.168.1.2", openapi.TunnelGeneve),
			},
			Networks:   []openapi.Network{blue},
			Containers: []openapi.Container{c("a1", blue, 1, 0, "h1"), c("a2", blue, 1, 1, "h1")},
		},
		"moved-before": movedBefore(),
		"blocks":       blocksScenario(),
	}
}

// blocksScenario has IPAM blocks: h1 owns 10.1.0.0/26 (two containers, one
// flow on h2 and h3), h2 10.1.0.64/26; c3 on h3 has an address of h1's
// block (borrowed: its own flow), c4 a MAC that is not derived from its
// address (its own ARP answer and route on every host).
func blocksScenario() *Snapshot {
	blue := network("blue", 1)
	c := func(name string, k int, h, block string) openapi.Container {
		ct := container(name, blue.Name, 1, k, h)
		ct.IPBlock = block
		return ct
	}
	c4 := c("c4", 63, "h2", "10.1.0.64/26")
	c4.MAC = "02:00:00:00:00:04"
	return &Snapshot{
		Revision: 11,
		Hosts:    threeHosts(),
		Networks: []openapi.Network{blue},
		Containers: []openapi.Container{
			c("c1", 0, "h1", "10.1.0.0/26"), c("c2", 1, "h1", "10.1.0.0/26"), c("c5", 62, "h2", "10.1.0.64/26"),
			c("c3", 2, "h3", ""), c4,
		},
	}
}

// threeHosts are h1, h2 and h3 over Geneve.
func threeHosts() []openapi.Host {
	return []openapi.Host{
		host("h1", "192.168.1.1", openapi.TunnelGeneve),
		host("h2", "192.168.1.2", openapi.TunnelGeneve),
		host("h3", "192.168.1.3", openapi.TunnelGeneve),
	}
}

// movedBefore has a1 on h1 and a2 on h2; the "moved" scenario moves a1 to h2.
func movedBefore() *Snapshot {
	blue := network("blue", 1)
	return &Snapshot{
		Revision: 11,
		Hosts:    threeHosts(),
		Networks: []openapi.Network{blue},
		Containers: []openapi.Container{
			container("a1", blue.Name, 1, 0, "h1"), container("a2", blue.Name, 1, 1, "h2"),
			container("a3", blue.Name, 1, 2, "h3"),
		},
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

func TestGolden(t *testing.T) {
	for name, s := range goldenScenarios() {
		t.Run(name, func(t *testing.T) {
			progs := Compile(s)
			checkInvariants(t, s, progs)
			checkGolden(t, name, renderPrograms(progs))
		})
	}
}

// TestGoldenMoved moves a1 from h1 to h2 incrementally: h1 loses its port
// and the network (and its tunnels), h2 gains the port, h3 re-points a1's
// L2 flow at h2's tunnel.
func TestGoldenMoved(t *testing.T) {
	before := movedBefore()
	c := New()
	c.Full(before)
	moved := before.Containers[0]
	moved.Host = "h2"
	ups := c.Apply(12, PutContainer(moved))

	after := *before
	after.Revision = 12
	after.Containers = append([]openapi.Container{moved}, before.Containers[1:]...)
	full := Compile(&after)
	progs := map[string]*openapi.Program{}
	out := ""
	for _, u := range ups {
		progs[u.Host] = mustProgram(t, c, u.Host)
		out += "## update " + u.Host + "\n" + renderDelta(u.Delta)
	}
	for _, h := range c.Hosts() {
		sameProgram(t, "moved", mustProgram(t, c, h), full[h])
	}
	if len(ups) != 3 {
		t.Errorf("move changed %d hosts, want 3", len(ups))
	}
	checkInvariants(t, &after, full)
	checkGolden(t, "moved", out+renderPrograms(progs))
}
