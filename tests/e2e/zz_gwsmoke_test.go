package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

func TestZZGatewaySmoke(t *testing.T) {
	c := cluster.New(t, cluster.Options{Hosts: 2, Tunnel: "geneve"})
	c.Network(t, "blue", "10.10.0.0/24")
	c.Container(t, "a", "blue", "h1", nil)
	na := c.Sandbox("h1", "a", "blue")
	h2 := c.Lab.Host("h2")
	h1 := c.Lab.Host("h1")
	// Egress: a -> h2's underlay address, masqueraded by h1.
	res := cluster.Ping(t, na, h2.UnderlayAddr.Addr().String(), 3, 200*time.Millisecond)
	t.Logf("ping a -> h2 underlay: %+v", res)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cmd := range [][]string{{"ip", "route"}, {"ip", "link", "show", "sygw0"}, {"nft", "list", "table", "ip", "switchyard"}, {"conntrack", "-L"}} {
		out, err := lab.RunIn(ctx, h1.Netns, cmd[0], cmd[1:]...)
		t.Logf("h1 %v: %v\n%s", cmd, err, out)
	}
	t.Logf("flows h1:\n%s", h1.OFCtl(t, "dump-flows", "br-int"))
	if res.Received != 3 {
		t.Errorf("egress failed")
	}
	c.Lab.DumpOnFailure(t)
}
