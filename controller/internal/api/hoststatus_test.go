package api_test

import (
	"encoding/json"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// Reports stream as host-status events when they change what the stream
// last said of the host: a new applied revision, a failed port; a report
// that changes nothing (a heartbeat) sends nothing. ?kinds= takes the kind.
func TestHostStatusEvents(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	n1 := e.newToken("node-h1", "node", "h1")
	stream := openEvents(t, e, "?kinds=host-status", nil)
	var c openapi.Container
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c1", "network": "blue", "host": "h1"}).decode(t, &c)
	report := func(st openapi.NodeStatus) {
		t.Helper()
		e.must(204, "POST", "/api/v1/nodes/h1/status", st, withToken(n1))
	}
	next := func() openapi.HostStatus {
		t.Helper()
		for {
			_, name, data, ok := stream.message()
			if !ok {
				t.Fatal("the stream ended")
			}
			if data == "" { // id-only messages of the event log
				continue
			}
			if name != "host-status" {
				t.Fatalf("message %q %s", name, data)
			}
			var hs openapi.HostStatus
			if err := json.Unmarshal([]byte(data), &hs); err != nil {
				t.Fatal(err)
			}
			return hs
		}
	}
	report(openapi.NodeStatus{AppliedRevision: c.Revision, Ports: []openapi.PortStatus{{Name: "p1", ContainerID: c.ID, Up: true}}})
	if hs := next(); hs.Host != "h1" || hs.AppliedRevision != c.Revision || hs.ApplyFailed || len(hs.FailedContainers) != 0 {
		t.Fatalf("first report: %+v", hs)
	}
	// The same state again (a heartbeat), then a failed port: only the
	// second is streamed.
	report(openapi.NodeStatus{AppliedRevision: c.Revision, PortsUnchanged: true, Ports: []openapi.PortStatus{}})
	report(openapi.NodeStatus{AppliedRevision: c.Revision, Ports: []openapi.PortStatus{{Name: "p1", ContainerID: c.ID, Error: "boom"}}})
	if hs := next(); hs.AppliedRevision != c.Revision || len(hs.FailedContainers) != 1 || hs.FailedContainers[0] != c.ID {
		t.Fatalf("after a failed port: %+v", hs)
	}
	e.wantProblem(e.do("GET", "/api/v1/events?kinds=host-statuses", nil), 400, "kinds")
}
