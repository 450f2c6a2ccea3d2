package pgfail

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// Matrix row 1, the datapath: with PostgreSQL stopped for longer than the
// hosts' heartbeat timeout, a ping between containers on two hosts (Geneve)
// loses nothing, the flows stay as they were, and when PostgreSQL returns
// no host is turned NotReady (the agents' reports could not land while it
// was down: they get one heartbeat timeout to report again), and a new
// container is realized.
func TestPostgresDownTrafficFlows(t *testing.T) {
	pg := Primary(t, "lab")
	// The cluster makes its database on this test's server, not the
	// suite's.
	t.Setenv(pgtest.EnvURL, pg.URL("postgres"))
	c := cluster.New(t, cluster.Options{Hosts: 2})
	c.Network(t, "n1", "10.1.0.0/24")
	c.Container(t, "a", "n1", "h1", nil)
	b := c.Container(t, "b", "n1", "h2", nil)
	rev := c.Revision(t)
	flows := map[string][]string{}
	for _, h := range []string{"h1", "h2"} {
		flows[h] = sorted(c.Flows(t, h))
	}
	ctl := &api{base: c.URL, token: cluster.AdminToken, http: newAPI(c.URL).http}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := follow(ctx, ctl, rev)

	// The heartbeat timeout of the cluster's controller is 5 s: the
	// outage lasts 7.
	const count, interval, outage = 120, 100 * time.Millisecond, 7 * time.Second
	pctx, pcancel := context.WithTimeout(context.Background(), count*interval+time.Minute)
	defer pcancel()
	done := make(chan lab.PingResult, 1)
	go func() {
		r, _ := lab.Ping(pctx, c.Sandbox("h1", "a", "n1"), b.IP, count, interval)
		done <- r
	}()
	pg.Stop(t, "fast")
	eventually(t, 30*time.Second, "an outage of "+outage.String(), func() error {
		if a := ctl.call("GET", "/readyz", nil); a.Status != 503 {
			return fmt.Errorf("/readyz %d while PostgreSQL is down", a.Status)
		}
		return nil
	})
	down := time.Now()
	eventually(t, outage+30*time.Second, "the outage lasts", func() error {
		if a := ctl.call("GET", "/readyz", nil); a.Status != 503 {
			t.Errorf("/readyz %d while PostgreSQL is down", a.Status)
		}
		if d := time.Since(down); d < outage {
			return fmt.Errorf("down for %s", d)
		}
		return nil
	})
	pg.Start(t)
	back := time.Now()
	ready := eventually(t, 30*time.Second, "/readyz", func() error {
		if a := ctl.call("GET", "/readyz", nil); a.Status != 200 {
			return fmt.Errorf("%d %s", a.Status, a.Body)
		}
		return nil
	})
	select {
	case r := <-done:
		t.Fatalf("the ping ended before PostgreSQL was back: %+v", r)
	default:
	}
	for _, h := range []string{"h1", "h2"} {
		if after := sorted(c.Flows(t, h)); !slices.Equal(flows[h], after) {
			t.Errorf("%s's flows changed across the outage: %d before, %d after", h, len(flows[h]), len(after))
		}
	}
	// A change after the outage is realized on the hosts.
	c.Container(t, "c", "n1", "h2", nil)
	realized := time.Since(back)
	r := <-done
	if r.Sent != count || r.Received != r.Sent {
		t.Errorf("ping across the outage: %d sent, %d received:\n%s", r.Sent, r.Received, r.Output)
	}
	// Hosts stayed Ready: no host event since the outage says otherwise
	// (the sweep had a heartbeat timeout to wait for reports).
	for _, e := range events.through(t, c.Revision(t)) {
		if e.Kind == "host" && strings.Contains(string(e.Object), `"status":"`+openapi.HostNotReady+`"`) {
			t.Errorf("host %s turned NotReady at revision %d after the outage", e.Name, e.Revision)
		}
	}
	t.Logf("FIGURES row 1 (lab, 2 hosts, geneve): PostgreSQL down %s; ping every %s: %d/%d received; "+
		"/readyz 200 %s after the restart; a new container realized %s after the restart",
		outage, interval, r.Received, r.Sent, ready.Round(time.Millisecond), realized.Round(time.Millisecond))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
