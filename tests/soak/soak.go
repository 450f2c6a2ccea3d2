package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// config shapes a run.
type config struct {
	// Duration bounds the rounds (each: operations, a fault, operations
	// during it, heal, convergence); Rounds, when set, is their number.
	Duration time.Duration
	Rounds   int
	Hosts    int
	// OpInterval is the steady rate of operations (one per interval, or
	// slower when an operation takes longer: writes wait until realized).
	OpInterval                 time.Duration
	OpsBetween, OpsDuringFault int
	MaxContainers              int
	// Converge bounds how long the invariants may take to hold again
	// after a fault or in quiet times before the state is a violation.
	Converge time.Duration
	Seed     uint64
	// Report, when set, is where the report (markdown) is written.
	Report string
}

// result is what a run saw: the report's content.
type result struct {
	cfg              config
	start, end       time.Time
	loadStart        string
	loadEnd, loadMax string
	ops              map[string]*opStats
	faults           []faultRecord
	steady           []time.Duration // quiet-time convergence, per round
	violations       []string
	passes           int
	probes, probesKO int
	events, reconns  int
	revStart, revEnd int64
	interrupted      bool
	// k is the checker, for a test that runs more passes on the cluster
	// (alive until the test ends).
	k *checker
}

// run brings up the cluster and soaks it; it returns the result (the
// caller fails the test on violations).
func run(t *testing.T, cfg config) *result {
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	res := &result{cfg: cfg, loadStart: loadavg()}
	pg := startPostgres(t)
	// The cluster creates its database on the soak's own server.
	t.Setenv(pgtest.EnvURL, pg.URL())
	c := cluster.New(t, cluster.Options{Hosts: cfg.Hosts, Tunnel: openapi.TunnelGeneve})
	defer c.Lab.DumpOnFailure(t)
	in := &injector{t: t, c: c, pg: pg, standby: c.StartReplica(t)}
	a := newAPI(c.URL)
	in.api = a
	for _, n := range soakNetworks {
		c.Network(t, n.name, n.cidr)
	}
	var hosts []string
	for _, h := range c.Lab.Hosts {
		hosts = append(hosts, h.Name)
	}
	res.revStart = c.Revision(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := watch(ctx, a, res.revStart)
	k := newChecker(c, a, cfg.Seed)
	op := newOperator(a, hosts, cfg.Seed, cfg.MaxContainers)
	op.wait = realizedWait
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	res.start = time.Now()
	deadline := res.start.Add(cfg.Duration)
	res.loadMax = res.loadStart

	// SIGINT or SIGTERM (^C on make soak) ends the run after the current
	// round, with its report and the lab's cleanup.
	stop, unnotify := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer unnotify()
	for round := 0; ; round++ {
		if cfg.Rounds > 0 && round >= cfg.Rounds || cfg.Rounds == 0 && time.Now().After(deadline) {
			break
		}
		if stop.Err() != nil {
			res.interrupted = true
			t.Logf("stopped by a signal after %d rounds", round)
			break
		}
		steps(op, cfg.OpsBetween, cfg.OpInterval)
		d, problems := converge(k, cfg.Converge)
		if problems != nil {
			res.violations = append(res.violations, fmt.Sprintf("round %d, quiet: not converged after %v: %s", round, cfg.Converge, strings.Join(problems, "; ")))
		} else {
			res.steady = append(res.steady, d)
		}

		f := faultRecord{Kind: faultKinds[round%len(faultKinds)], At: time.Now()}
		f.Host = hosts[rng.IntN(len(hosts))]
		// Host faults hit, when there is one, a host with a container that
		// can ping another host's: traffic must keep flowing through them.
		dataPlane := f.Kind == "agent-kill" || f.Kind == "partition" || f.Kind == "ovsdb-restart"
		if c := k.probeable(); dataPlane && len(c) > 0 {
			f.Host = c[rng.IntN(len(c))]
		}
		// Traffic to check under the fault: its containers are left
		// alone by the operations until the heal.
		var pairs []pair
		if dataPlane {
			pairs = k.pairsFrom(f.Host)
			for _, p := range pairs {
				op.pinned[p.a.Name], op.pinned[p.b.Name] = true, true
			}
		}
		// The operations during the fault start first, so that a write
		// is in flight when it hits.
		op.wait = ""
		opsDone := make(chan struct{})
		go func() { defer close(opsDone); steps(op, cfg.OpsDuringFault, cfg.OpInterval) }()
		time.Sleep(cfg.OpInterval / 2)
		skip, detail, heal, err := in.inject(f.Kind, f.Host)
		f.Detail = detail
		if err != nil {
			res.violations = append(res.violations, fmt.Sprintf("round %d: %s on %s: %v", round, f.Kind, f.Host, err))
		}
		if skip == "" {
			f.Host = ""
		}
		k.skip = map[string]bool{skip: true}
		if dataPlane && err == nil {
			// The data plane does not depend on the control plane.
			p := k.probePairs(pairs)
			if p != nil {
				res.violations = append(res.violations, fmt.Sprintf("round %d, %s of %s: %s", round, f.Kind, skip, strings.Join(p, "; ")))
			}
			f.Detail = join(f.Detail, fmt.Sprintf("%d/%d pings from it OK", len(pairs)-len(p), len(pairs)))
		}
		<-opsDone
		clear(op.pinned)
		if dataPlane {
			if h, ok := k.hostByName(skip); ok {
				f.Detail = join(f.Detail, h.Status+" at the heal")
			}
		}
		if heal != nil {
			f.Detail = join(f.Detail, heal())
		}
		f.Active = time.Since(f.At)
		k.skip, op.wait = nil, realizedWait
		healed := time.Now()
		f.Converged, f.Problems = converge(k, cfg.Converge)
		if f.Problems != nil {
			f.Converged = 0
			res.violations = append(res.violations, fmt.Sprintf("round %d: %s %s: not converged %v after the heal: %s",
				round, f.Kind, f.Host, cfg.Converge, strings.Join(f.Problems, "; ")))
		} else {
			f.Converged = time.Since(healed)
		}
		res.faults = append(res.faults, f)
		t.Logf("round %d: %s %s: %s; converged in %v (%d violations so far, load %s)", round, f.Kind, f.Host, f.Detail,
			f.Converged.Round(time.Millisecond), len(res.violations), loadavg())
		if l := loadavg(); load1(l) > load1(res.loadMax) {
			res.loadMax = l
		}
	}

	// The end: everything acknowledged is there, the stream has no gap.
	res.violations = append(res.violations, lostWrites(op)...)
	for _, f := range op.failures {
		res.violations = append(res.violations, "operation failed: "+f)
	}
	res.revEnd = c.Revision(t)
	res.violations = append(res.violations, w.verify(res.revEnd, 60*time.Second)...)
	res.end = time.Now()
	res.loadEnd = loadavg()
	res.ops = op.stats
	res.passes, res.probes, res.probesKO = k.passes, k.probes, k.probesFailed
	res.events, res.reconns = w.stats()
	res.k = k
	return res
}

const realizedWait = "wait=realized&timeout=30s"

// steps does n operations at the steady rate.
func steps(op *operator, n int, interval time.Duration) {
	next := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		op.step()
	}
}

// converge runs checker passes until one is clean and returns how long it
// took; after bound it returns the last pass's problems instead.
func converge(k *checker, bound time.Duration) (time.Duration, []string) {
	start := time.Now()
	for {
		problems := k.pass(true)
		if len(problems) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > bound {
			return 0, problems
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lostWrites compares what the operator was told it created, moved and
// deleted with what the API has: an acknowledged write missing (or an
// object nobody acknowledged) is a violation.
func lostWrites(op *operator) []string {
	var out []string
	cs, err := list[openapi.Container](op.api, "/api/v1/containers")
	if err != nil {
		return []string{err.Error()}
	}
	var have []string
	for _, c := range cs {
		have = append(have, c.Name)
		if h, ok := op.containerHost[c.Name]; ok && h != c.Host {
			out = append(out, fmt.Sprintf("container %s is on %s, moved to %s (acknowledged)", c.Name, c.Host, h))
		}
	}
	out = append(out, diffSets("containers (acknowledged vs API)", op.containers, have)...)
	for _, f := range []*family{op.policies, op.services} {
		objs, err := list[struct {
			Name string `json:"name"`
		}](op.api, f.path)
		if err != nil {
			return append(out, err.Error())
		}
		have = have[:0]
		for _, o := range objs {
			have = append(have, o.Name)
		}
		out = append(out, diffSets(f.kind+" (acknowledged vs API)", f.names, have)...)
	}
	return out
}

// loadavg is the machine's 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// join joins the non-empty parts of a detail with "; ".
func join(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), "; ")
}

// load1 is the 1-minute figure of a loadavg.
func load1(l string) float64 {
	f, _ := strconv.ParseFloat(strings.Fields(l + " 0")[0], 64)
	return f
}
