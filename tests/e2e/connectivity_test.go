package e2e

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/cluster"
)

// Containers on one host and across hosts reach each other by ping and TCP,
// over Geneve and over VXLAN; networks are isolated from each other; the
// gateway answers on every host.
func TestConnectivity(t *testing.T) {
	for _, tunnel := range []string{"geneve", "vxlan"} {
		t.Run(tunnel, func(t *testing.T) {
			c := cluster.New(t, cluster.Options{Hosts: 3, Tunnel: tunnel})
			c.Network(t, "blue", "10.10.0.0/24")
			c.Network(t, "red", "10.20.0.0/24")
			a := c.Container(t, "a", "blue", "h1", nil)
			b := c.Container(t, "b", "blue", "h1", nil)
			cc := c.Container(t, "c", "blue", "h2", nil)
			d := c.Container(t, "d", "blue", "h3", nil)
			r := c.Container(t, "r", "red", "h2", nil)
			na := c.Sandbox("h1", "a", "blue")
			for _, dst := range []struct{ what, ip string }{
				{"same host", b.IP}, {"h2", cc.IP}, {"h3", d.IP}, {"gateway", "10.10.0.1"},
			} {
				if res := cluster.Ping(t, na, dst.ip, 3, 200*time.Millisecond); res.Received != 3 {
					t.Errorf("ping a -> %s (%s): %+v", dst.what, dst.ip, res)
				}
			}
			if res := cluster.Ping(t, na, r.IP, 2, 200*time.Millisecond); res.Received != 0 {
				t.Errorf("a (blue) reached r (red): %+v", res)
			}
			nd := c.Sandbox("h3", "d", "blue")
			if res := cluster.Ping(t, nd, a.IP, 3, 200*time.Millisecond); res.Received != 3 {
				t.Errorf("ping d -> a: %+v", res)
			}
			// TCP across hosts and on one host.
			c.TCP(t, c.Sandbox("h2", "c", "blue"), cc.IP, na)
			c.TCP(t, c.Sandbox("h1", "b", "blue"), b.IP, na)
			c.Lab.DumpOnFailure(t)
		})
	}
}
