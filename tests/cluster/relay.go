package cluster

import "github.com/switchyard/switchyard/tests/lab"

// relay is the lab's relay (lab.Relay, started by Lab.Expose) that carries
// the agents' connections from the underlay to the controller on loopback.
type relay struct{ *lab.Relay }

// setBackend points new agent connections at another controller address.
func (r *relay) setBackend(b string) { r.SetBackend(b) }
