package nodes_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/nodes"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/controller/internal/testenv"
)

// Measured phases of BenchmarkFanout: a run of changes, a controller
// restart, replicas.

// converge waits until m has reached the store and every agent has its
// host's program; it returns the programs' digests.
func converge(ctx context.Context, b testing.TB, fl *fleet, m *nodes.Manager) (map[string]string, error) {
	want, err := nodes.Digests(ctx, m)
	if err != nil {
		return nil, err
	}
	fl.waitDigests(b, want)
	return want, nil
}

// changeStats are the figures of a run of changes.
type changeStats struct {
	lat     []time.Duration
	cpu, pg time.Duration
}

// measure runs change while more says so, timing each, and takes the
// process's and the database backends' CPU over the run.
func measure(ctx context.Context, b testing.TB, ctl *testenv.Controller, more func() bool, change func()) changeStats {
	var s changeStats
	pg0 := pgCPU(ctx, b, ctl.Store)
	t0 := cpuTime()
	for more() {
		start := time.Now()
		change()
		s.lat = append(s.lat, time.Since(start))
	}
	s.cpu = cpuTime() - t0
	s.pg = sinceCPU(pg0, pgCPU(ctx, b, ctl.Store))
	return s
}

func (s changeStats) report(b *testing.B, prefix string) {
	if len(s.lat) == 0 {
		return
	}
	slices.Sort(s.lat)
	pct := func(p float64) float64 { return float64(s.lat[int(p*float64(len(s.lat)-1))].Microseconds()) / 1000 }
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(len(s.lat)) }
	b.ReportMetric(pct(0.5), prefix+"p50-ms")
	b.ReportMetric(pct(0.99), prefix+"p99-ms")
	b.ReportMetric(per(s.cpu), prefix+"cpu-ms/change")
	b.ReportMetric(per(s.pg), prefix+"pg-cpu-ms/change")
}

// phases restarts the controller under a running fleet.
type phases struct {
	b     *testing.B
	ctx   context.Context
	dbURL string
	fl    *fleet
	live  []*testenv.Controller
}

// resync are the figures of a restart: from the new replicas' start, the
// time until the first has loaded the intent and reached the store, and
// until every host has acknowledged its current program to them; what the
// agents got meanwhile, and how often they had to retry.
type resync struct {
	loaded, acked         time.Duration
	full, deltas, retries int64
}

func (r resync) report(b *testing.B, prefix string) {
	b.ReportMetric(r.loaded.Seconds(), prefix+"-load-s")
	b.ReportMetric(r.acked.Seconds(), prefix+"-resync-s")
	b.ReportMetric(float64(r.full), prefix+"-full")
	b.ReportMetric(float64(r.deltas), prefix+"-deltas")
	b.ReportMetric(float64(r.retries), prefix+"-retries")
}

// restart stops the live replicas, runs down (if not nil) on the store of
// the first while none is running, starts n new replicas on the same
// database and points the agents at them (host i at replica i%n), and
// waits until every agent has its program and every host has acknowledged
// it.
func (p *phases) restart(n int, down func(*store.Store)) resync {
	b, fl := p.b, p.fl
	fl.tolerant.Store(true)
	defer fl.tolerant.Store(false)
	for _, c := range p.live {
		fl.kill(c.URL)
		c.Close()
	}
	if down != nil {
		down(p.live[0].Store) // the store outlives its replica's server
	}
	full, deltas, retries := fl.full.Load(), fl.deltas.Load(), fl.reconnects.Load()
	start := time.Now()
	p.live = p.live[:0]
	var urls []string
	for i := 0; i < n; i++ {
		c := testenv.Start(b, p.dbURL, nil)
		p.live = append(p.live, c)
		urls = append(urls, c.URL)
	}
	fl.setURLs(urls...)
	m := p.live[0].Server.Realizer.(*nodes.Manager)
	want, err := nodes.Digests(p.ctx, m)
	if err != nil {
		b.Fatal(err)
	}
	var r resync
	r.loaded = time.Since(start)
	rev, err := p.live[0].Store.Revision(p.ctx)
	if err != nil {
		b.Fatal(err)
	}
	// Right after a load every host counts as touched at its revision:
	// this waits for an acknowledgement of every host's current program.
	for _, c := range p.live {
		if err := c.Server.Realizer.(*nodes.Manager).WaitRealized(p.ctx, rev, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	r.acked = time.Since(start)
	fl.waitDigests(b, want)
	fl.check(b)
	r.full, r.deltas, r.retries = fl.full.Load()-full, fl.deltas.Load()-deltas, fl.reconnects.Load()-retries
	return r
}

// pgCPU is the CPU time used so far by each PostgreSQL backend serving the
// store's database (from /proc/<pid>/schedstat, so the server must run on
// this machine; nothing when it cannot be read).
func pgCPU(ctx context.Context, b testing.TB, st *store.Store) map[int]time.Duration {
	rows, err := st.Pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		s, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(s)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			out[pid] = time.Duration(ns)
		}
	}
	return out
}

// sinceCPU is the CPU the backends of after used since before (a backend
// that started since counts whole; one that ended is lost).
func sinceCPU(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid]
	}
	return d
}
