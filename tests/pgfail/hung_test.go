package pgfail

import (
	"testing"
	"time"
)

// A hung database (every PostgreSQL process stopped with SIGSTOP: it
// accepts TCP connections but never answers, like a host that vanished
// without a reset): writes and reads answer 503 in bounded time, /readyz
// 503, /healthz 200; resumed, the retried writes go through by themselves.
// A write caught inside its transaction by the freeze answers once its
// statement's client-side deadline (6 s) passes, or its group's wait for
// the revision lock (8 s: a write that the freeze caught there took 20 s,
// until the thaw, before that wait was bounded), so the writers' bound is
// the request deadline; writes and reads sent once the controller refuses
// answer within answerBound.
const hungBound = 12 * time.Second

func TestPostgresHung(t *testing.T) {
	pg := Primary(t, "hung")
	pg.Exec(t, "postgres", "CREATE DATABASE switchyard")
	s := writing(t, pg.URL("switchyard"), 2)
	s.bound = hungBound
	c := s.c

	pg.Freeze(t)
	frozen := time.Now()
	refused := waitRefused(t, s.w, 3*time.Second)
	got := map[string]answer{
		"write":   c.call("POST", "/api/v1/networks", map[string]any{"name": "n2", "cidr": "10.2.0.0/16"}),
		"read":    c.call("GET", "/api/v1/containers", nil),
		"/readyz": c.call("GET", "/readyz", nil),
	}
	for what, a := range got {
		if err := a.problem503(); err != nil && what != "/readyz" || a.Status != 503 || a.Took > answerBound {
			t.Errorf("%s while hung: %d after %s (%v): %s", what, a.Status, a.Took, a.Err, a.Body)
		}
	}
	if a := c.call("GET", "/healthz", nil); a.Status != 200 {
		t.Errorf("/healthz while hung: %d", a.Status)
	}
	acked, _ := s.w.count()
	back := time.Now()
	pg.Thaw(t)
	firstWrite, ready := waitRecovered(t, c, s.w, acked, back)
	s.finish(t, false)
	t.Logf("FIGURES hung: first 503 %s after the freeze; while hung: write 503 in %s, read 503 in %s, /readyz 503 in %s; "+
		"resumed: first retried write acknowledged in %s, /readyz 200 in %s",
		refused.Sub(frozen).Round(time.Millisecond), got["write"].Took.Round(time.Millisecond), got["read"].Took.Round(time.Millisecond),
		got["/readyz"].Took.Round(time.Millisecond), firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond))
}
