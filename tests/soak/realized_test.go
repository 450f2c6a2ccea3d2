package soak

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// TestRealizedAfterChangeAndBack is the soak's finding: while h2 is cut
// from the controller, its program changes (a container created on it) and
// changes back (deleted); after the heal the agent, which still has the
// first program, must report the new program revision, so that the API
// shows h2 realized. It failed while the controller's long-poll waited for
// a digest change that never came (controller/internal/nodes
// TestProgramBackToKnownDigest).
func TestRealizedAfterChangeAndBack(t *testing.T) {
	pg := startPostgres(t)
	t.Setenv(pgtest.EnvURL, pg.URL())
	c := cluster.New(t, cluster.Options{Hosts: 2, Tunnel: openapi.TunnelGeneve})
	defer c.Lab.DumpOnFailure(t)
	a := newAPI(c.URL)
	in := &injector{t: t, c: c, api: a, pg: pg}
	k := newChecker(c, a, 1)
	c.Network(t, "red", "10.61.0.0/24")
	c.Container(t, "a", "red", "h2", nil)

	from := len(c.Agents["h2"].Log())
	_, _, heal, err := in.partition("h2")
	if err != nil {
		t.Fatal(err)
	}
	c.MustDo(t, 201, "POST", "/api/v1/containers", map[string]any{"name": "b", "network": "red", "host": "h2"}, nil)
	c.MustDo(t, 204, "DELETE", "/api/v1/containers/b", nil, nil)
	// The poll that was open when the partition began has failed: the
	// answer with b in it never reaches the agent (a shorter partition
	// may let TCP deliver it after the heal, and then all is well).
	c.Eventually(t, 90*time.Second, func() error {
		if !strings.Contains(c.Agents["h2"].Log()[from:], "cannot fetch the program") {
			return fmt.Errorf("h2's agent has not lost its poll yet")
		}
		return nil
	})
	if d := heal(); d != "" {
		t.Fatal(d)
	}
	c.WaitHost(t, "h2", openapi.HostReady, 30*time.Second)
	var h openapi.Host
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, _ = k.hostByName("h2")
		if h.Realized || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if problems := k.host(h); len(problems) > 0 {
		t.Errorf("h2 differs from its program: %q", problems)
	}
	if !h.Realized {
		t.Errorf("h2 is Ready, its datapath equals its program, yet 30 s after the heal it shows realized=false (applied r%d, program r%d)",
			h.AppliedRevision, h.ProgramRevision)
	}
}
