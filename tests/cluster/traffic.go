package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// TCP runs a one-second iperf3 transfer from clientNetns to a server in
// serverNetns at serverIP and fails the test if no data arrives.
func (c *Cluster) TCP(t testing.TB, serverNetns, serverIP, clientNetns string) {
	t.Helper()
	srv := c.Lab.Start(t, lab.ProcSpec{Name: "iperf3-server", Netns: serverNetns, Path: "iperf3", Args: []string{"-s", "-1", "-B", serverIP}})
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out string
	var err error
	for i := 0; i < 20; i++ {
		out, err = lab.RunIn(ctx, clientNetns, "iperf3", "-c", serverIP, "-t", "1", "-f", "m")
		if err == nil || !strings.Contains(out, "Connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond) // the server is still starting
	}
	if err != nil || !strings.Contains(out, "receiver") {
		t.Fatalf("TCP %s -> %s: %v\n%s", clientNetns, serverIP, err, out)
	}
}
