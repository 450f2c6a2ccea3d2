package cluster

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/tests/lab"
)

// Replica is one more controller process on the cluster's database, on its
// own loopback port: replicas share nothing but PostgreSQL.
type Replica struct {
	URL  string // http://127.0.0.1:PORT, for the test
	Proc *lab.Proc
}

// StartReplica starts another controller on the cluster's database and
// waits until it is ready. The agents keep talking to the controller they
// have (through the relay) until SwitchTo.
func (c *Cluster) StartReplica(t testing.TB) *Replica {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	return &Replica{URL: url, Proc: c.launchController(t, "replica", url)}
}

// Do calls the REST API of replica r as admin (see Cluster.Do).
func (r *Replica) Do(c *Cluster, method, path string, body, out any) (int, error) {
	return c.DoAt(r.URL, method, path, body, out)
}

// SwitchTo makes r the cluster's controller: the relay hands the agents'
// new connections to r (connections already open stay with the old
// controller until they break, e.g. when it dies), Do and the helpers built
// on it talk to r, c.Controller is r's process, and StartController starts
// a controller on r's port.
func (c *Cluster) SwitchTo(r *Replica) {
	c.relay.setBackend(strings.TrimPrefix(r.URL, "http://"))
	c.URL, c.Controller = r.URL, r.Proc
}
