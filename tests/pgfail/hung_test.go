package pgfail

import (
	"testing"
	"time"
)

// A hung database (every PostgreSQL process stopped with SIGSTOP: it
// accepts TCP connections but never answers, like a host that vanished
// without a reset): writes and reads answer 503 in bounded time, /readyz
// 503, /healthz 200; resumed, the retried writes go through by themselves.
func TestPostgresHung(t *testing.T) {
	pg := Primary(t, "hung")
	pg.Exec(t, "postgres", "CREATE DATABASE switchyard")
	ctl := StartController(t, pg.URL("switchyard"))
	c := newAPI(ctl.URL)
	c.must(t, 201, "POST", "/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.1.0.0/16"}, nil)
	c.must(t, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}, nil)
	w := startWriters(c, 2, "n1", "h1")
	defer w.halt()
	waitAcked(t, w, 10)

	pg.Freeze(t)
	frozen := time.Now()
	refused := waitRefused(t, w, 3*time.Second)
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
	acked, _ := w.count()
	back := time.Now()
	pg.Thaw(t)
	firstWrite, ready := waitRecovered(t, c, w, acked, back)
	w.halt()
	w.check(t, answerBound)
	checkAcked(t, c, w)
	t.Logf("FIGURES hung: first 503 %s after the freeze; while hung: write 503 in %s, read 503 in %s, /readyz 503 in %s; "+
		"resumed: first retried write acknowledged in %s, /readyz 200 in %s",
		refused.Sub(frozen).Round(time.Millisecond), got["write"].Took.Round(time.Millisecond), got["read"].Took.Round(time.Millisecond),
		got["/readyz"].Took.Round(time.Millisecond), firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond))
}
