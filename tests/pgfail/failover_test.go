package pgfail

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// Matrix row 2: a primary and a synchronous streaming standby; the
// controller has both in a multi-host URL with
// target_session_attrs=read-write. The primary crashes (stop -m immediate)
// while clients write, the standby is promoted: the controller reconnects
// by itself, the clients' retried writes go through, no acknowledged write
// is lost, the event stream continues without a gap or a duplicate, and the
// node programs follow the new primary's revisions.
func TestPostgresFailover(t *testing.T) {
	primary := Primary(t, "primary")
	standby := Standby(t, "standby", primary)
	// Synchronous replication: a commit is acknowledged once the standby
	// has it, so a crash of the primary loses nothing acknowledged.
	primary.Exec(t, "postgres", "ALTER SYSTEM SET synchronous_standby_names = '*'", "SELECT pg_reload_conf()")
	eventually(t, 30*time.Second, "the standby streams synchronously", func() error {
		v, err := primary.Query(t, "postgres", "SELECT string_agg(sync_state, ',') FROM pg_stat_replication")
		if err != nil || v != "sync" {
			return fmt.Errorf("sync_state %q: %v", v, err)
		}
		return nil
	})
	primary.Exec(t, "postgres", "CREATE DATABASE switchyard")
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/switchyard?sslmode=disable&target_session_attrs=read-write",
		primary.Port, standby.Port)
	ctl := StartController(t, url)
	c := newAPI(ctl.URL)
	c.must(t, 201, "POST", "/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.1.0.0/16"}, nil)
	c.must(t, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live := follow(ctx, c, 0)

	w := startWriters(c, 3, "n1", "h1")
	defer w.halt()
	eventually(t, 30*time.Second, "writes before the failover", func() error {
		if n, _ := w.count(); n < 15 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})

	crashed := time.Now()
	primary.Stop(t, "immediate")
	acked, _ := w.count()
	// The standby is promoted once the writers have been refused (as a
	// failover manager would after its own timeout).
	eventually(t, 30*time.Second, "the writers are refused", func() error {
		if d := w.refusedFor(); d < 500*time.Millisecond {
			return fmt.Errorf("refused for %s", d)
		}
		return nil
	})
	promoted := time.Now()
	standby.Promote(t)
	promoteTook := time.Since(promoted)

	eventually(t, 30*time.Second, "a write on the new primary", func() error {
		if n, _ := w.count(); n <= acked {
			return fmt.Errorf("no write acknowledged since the crash")
		}
		return nil
	})
	firstWrite := time.Since(promoted)
	eventually(t, 30*time.Second, "/readyz on the new primary", func() error {
		if a := c.call("GET", "/readyz", nil); a.Status != 200 {
			return fmt.Errorf("%d %s", a.Status, a.Body)
		}
		return nil
	})
	ready := time.Since(promoted)
	eventually(t, 30*time.Second, "writes on the new primary", func() error {
		if n, _ := w.count(); n < acked+15 {
			return fmt.Errorf("%d acknowledged since", n-acked)
		}
		return nil
	})
	w.halt()
	w.check(t, answerBound)
	checkAcked(t, c, w)

	// The node layer follows the new primary: a container created now
	// changes h1's program at that write's revision.
	var last openapi.Container
	c.must(t, 201, "POST", "/api/v1/containers", map[string]any{"name": "after", "network": "n1", "host": "h1"}, &last)
	eventually(t, 30*time.Second, "h1's program reaches the last write", func() error {
		var h openapi.Host
		c.must(t, 200, "GET", "/api/v1/hosts/h1", nil, &h)
		if h.ProgramRevision != last.Revision {
			return fmt.Errorf("program at revision %d, last write %d", h.ProgramRevision, last.Revision)
		}
		return nil
	})
	var rev struct {
		Revision int64 `json:"revision"`
	}
	c.must(t, 200, "GET", "/api/v1/revision", nil, &rev)
	sameEvents(t, live.through(t, rev.Revision), readEvents(t, c, 0, rev.Revision))
	t.Logf("FIGURES row 2: writes refused for %s in all; crash to promotion %s (the test's failover manager waits for refusals); "+
		"pg_ctl promote took %s; after the promotion started: first retried write acknowledged in %s, /readyz 200 in %s; "+
		"crash to first acknowledged write %s; event stream reconnects %d",
		w.refusedFor().Round(time.Millisecond), promoted.Sub(crashed).Round(time.Millisecond), promoteTook.Round(time.Millisecond),
		firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond), (promoted.Sub(crashed) + firstWrite).Round(time.Millisecond),
		live.reconnected())
}
