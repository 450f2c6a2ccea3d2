package pgfail

import (
	"fmt"
	"testing"
	"time"
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
	s := writing(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/switchyard?sslmode=disable&target_session_attrs=read-write",
		primary.Port, standby.Port), 3)
	c := s.c

	crashed := time.Now()
	primary.Stop(t, "immediate")
	// The standby is promoted once the writers have been refused (as a
	// failover manager would after its own timeout).
	waitRefused(t, s.w, 500*time.Millisecond)
	acked, _ := s.w.count()
	promoted := time.Now()
	standby.Promote(t)
	promoteTook := time.Since(promoted)
	firstWrite, ready := waitRecovered(t, c, s.w, acked, promoted)

	// The node layer follows the new primary: a container created now
	// changes h1's program at that write's revision.
	s.w.halt()
	s.followsWrite(t, c)
	s.finish(t, true)
	t.Logf("FIGURES row 2: writes refused for %s in all; crash to promotion %s (the test's failover manager waits for refusals); "+
		"pg_ctl promote took %s; after the promotion started: first retried write acknowledged in %s, /readyz 200 in %s; "+
		"crash to first acknowledged write %s; event stream reconnects %d",
		s.w.refusedFor().Round(time.Millisecond), promoted.Sub(crashed).Round(time.Millisecond), promoteTook.Round(time.Millisecond),
		firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond), (promoted.Sub(crashed) + firstWrite).Round(time.Millisecond),
		s.live.reconnected())
}
