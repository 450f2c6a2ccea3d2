package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// TCP runs a one-second iperf3 transfer from clientNetns to a server in
// serverNetns at serverIP and fails the test if no data arrives. The client
// starts once the server listens, and its JSON report is checked for
// iperf3's own "error" as well as its exit status.
func (c *Cluster) TCP(t testing.TB, serverNetns, serverIP, clientNetns string) {
	t.Helper()
	srv := c.Lab.StartIPerf3(t, "iperf3-server", serverNetns, serverIP)
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res, err := lab.IPerf3(ctx, clientNetns, serverIP, 1); err != nil {
		t.Fatalf("TCP %s -> %s: %v\n%s", clientNetns, serverIP, err, res.Output)
	}
}
