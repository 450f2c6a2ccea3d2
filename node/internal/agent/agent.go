// Package agent is the node agent's loop: register the host, long-poll its
// program from the controller, apply it (through the ovs applier), report
// the applied revision and port status, heartbeat, and resync on a timer so
// anything changed behind its back is repaired. A failed apply is retried
// with jittered exponential backoff (never in a tight loop); a restart of
// Open vSwitch triggers an immediate restore. Reports go out from their own
// goroutine (newest status wins), so a slow controller never stalls an
// apply. Policy counters and logged connections go with the reports, read
// and received off the apply path (policylog.go); the program's health
// checks run in package health and their verdicts go with the reports too
// (health.go). When the controller is gone the datapath keeps running as
// last applied. It serves Prometheus metrics when configured to, and starts
// and feeds the node-local DNS resolver (dns.go) when given one. It answers
// the controller's read-only jobs (jobs.go: an ofproto/trace of a packet
// through the applier, a probe from a local container's namespace). It must
// not compute flows nor touch OVS or links other than through the applier.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/switchyard/switchyard/node/internal/health"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/openapi/program"
)

// Datapath is what the agent needs of the applier (node/internal/ovs).
type Datapath interface {
	EnsureUnderlay(ctx context.Context, iface string, addr netip.Prefix) error
	NewGeneration(ctx context.Context) (uint16, error)
	// Apply converges the host to prog. change, when not nil, is the
	// delta from the program last applied to prog: with it, the datapath
	// may apply the change alone (the result must be the same).
	Apply(ctx context.Context, prog *openapi.Program, change *openapi.ProgramDelta) (Result, error)
	Observe(ctx context.Context) (Observation, error)
	// Restarts delivers a reason each time the switch restarted (or its
	// database reconnected) and the host must be restored at once.
	Restarts() <-chan string
}

// Result is what one apply reports.
type Result struct {
	Ports    []openapi.PortStatus
	Degraded bool
	Summary  string
	// Flows is how many flows the switch holds after the apply.
	Flows int
}

// Observation is what a resync found.
type Observation struct {
	Ports []openapi.PortStatus
	Drift []string
}

// Config is the agent's configuration.
type Config struct {
	ControllerURL string
	Host          string
	Token         string
	// API, when set, is the client of the controller at ControllerURL
	// with Token (node/main.go builds it with client.NewSecure: TLS
	// settings); nil: client.New(ControllerURL, Token).
	API        *client.Client
	TunnelType string
	// Address is the host's underlay (tunnel endpoint) address.
	Address netip.Addr
	// UnderlayIface and UnderlayPrefix, when set, make the agent build the
	// tunnel endpoint bridge on that interface with that address.
	UnderlayIface  string
	UnderlayPrefix netip.Prefix
	// UnderlayBridge is the tunnel endpoint interface (the bridge's internal
	// port) that OVS learns tunnel next hops on; default br-phy.
	UnderlayBridge string
	PollTimeout    time.Duration // one long-poll, default 30s
	Heartbeat      time.Duration // default 5s
	Resync         time.Duration // default 30s
	// ResyncLull is how long no program must have arrived before a due
	// resync begins (untilLull); default resyncLull.
	ResyncLull time.Duration
	// MetricsListen is the address to serve Prometheus metrics on
	// (/metrics); empty: no metrics server.
	MetricsListen string
	// Observer, when set, supplies the policy counters and logged
	// connections that go with the reports (policylog.go).
	Observer PolicyObserver
	// NetnsPath, when set, is the namespace of a container port (the
	// applier's: health probes run there); unset, only ports with a netns
	// path are probed.
	NetnsPath func(openapi.ContainerPort) string
	// DNS, when set, is the node-local resolver (dns.go).
	DNS Resolver
	// Tracer, when set, runs the controller's switch trace jobs (jobs.go).
	Tracer SwitchTracer
	Log    *slog.Logger
}

func (c *Config) defaults() {
	if c.PollTimeout == 0 {
		c.PollTimeout = 30 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Resync == 0 {
		c.Resync = 30 * time.Second
	}
	if c.ResyncLull == 0 {
		c.ResyncLull = resyncLull
	}
	if c.TunnelType == "" {
		c.TunnelType = openapi.TunnelGeneve
	}
	if c.UnderlayBridge == "" && c.UnderlayIface != "" {
		c.UnderlayBridge = "br-phy"
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Agent runs the loop for one host.
type Agent struct {
	cfg Config
	dp  Datapath
	api *nodeClient
	log *slog.Logger

	m *metrics

	// Owned by Run's goroutine: want is the newest program received, with
	// its content sums so that deltas patch in O(delta); pending says it
	// (or a repair) still has to be applied.
	want    *program.Tracked
	pending bool
	// prog is the program last applied, change the delta from it to want
	// (nil: not known, e.g. after a whole program).
	prog   *openapi.Program
	change *openapi.ProgramDelta

	// appliedPorts are the container ports of the program last applied,
	// for the probes of trace jobs (jobs.go), which run on their own.
	appliedPorts atomic.Pointer[[]openapi.ContainerPort]

	mu     sync.Mutex
	status openapi.NodeStatus
	// specs counts the applies that changed the container ports' specs
	// (status is of the newest); touched maps each container port such an
	// apply added (new or changed) to its count, and wholeAt is the count
	// of the last apply of a whole program (nothing known of what
	// changed): a report lists a touched port again even when its status
	// is the one the controller has, and every port after a whole program
	// (report.go).
	specs   uint64
	touched map[string]uint64
	wholeAt uint64
	// ruleStats is the newest reading of the policy counters; logq holds
	// the logged connections not yet reported (policylog.go).
	ruleStats []openapi.RuleStat
	logq      *logQueue
	// mailbox holds at most one pending report (see report.go).
	mailbox chan struct{}
	// sent is what the last accepted report said of the ports; only the
	// reporter goroutine uses it (report.go).
	sent      portsSent
	sentStats countersSent
	// health runs the program's health checks (health.go).
	health *health.Manager

	// checking cancels the resync's check of the host under way, if any:
	// a program that arrives meanwhile is applied first (the check
	// resumes later). deferred counts the checks given up in a row;
	// deferredSince is when the round's check was first put off (given up,
	// or waiting for a lull), zero when it was not; that is bounded
	// (maxResyncDeferral) so that a stream of changes cannot put the check
	// off for ever; owned by Run's goroutine.
	checking      atomic.Pointer[context.CancelFunc]
	deferred      int
	deferredSince time.Time
	// arrived is set while a received program waits for Run's loop;
	// lastArrival is when Run's loop last took one (untilLull).
	arrived     atomic.Bool
	lastArrival time.Time
}

// maxResyncDeferral is how long resyncs keep giving way to programs that
// arrive during their check; the first one after that runs to its end
// whatever arrives. deferredResync is how soon a resync given up tries
// again. A count would not do: under a steady stream of changes (a change
// every 100 ms on every host in BenchmarkConvergence) every check is cut
// short, so a count of five forced a whole check, and held up the change
// arriving during it, every 40 s on every host (the few slowest samples,
// 80 to 190 ms late); in time, a host under a storm of changes checks for
// drift every few minutes at worst, one with a lull at once.
//
// resyncLull is how long no program must have arrived before a due resync
// begins (untilLull).
const (
	maxResyncDeferral = 3 * time.Minute
	deferredResync    = 2 * time.Second
	resyncLull        = 250 * time.Millisecond
)

// New returns an agent; Run starts it.
func New(cfg Config, dp Datapath) *Agent {
	cfg.defaults()
	m := newMetrics()
	a := &Agent{cfg: cfg, dp: dp, api: newClient(cfg), log: cfg.Log,
		m: m, mailbox: make(chan struct{}, 1), logq: newLogQueue(maxQueuedLog, m.logDropped)}
	a.health = a.newHealth()
	return a
}

// newBackOff is the agent's retry policy for the controller and the
// datapath: exponential from 200 ms to 10 s, each delay spread by up to a
// half either way (so that agents failing together do not retry together),
// and never giving up.
func newBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.RandomizationFactor = 0.5
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// jitter spreads d by up to a fifth either way.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run registers, prepares the datapath and follows the controller until ctx
// ends. It returns only when ctx ends or the datapath cannot be prepared.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.MetricsListen != "" {
		addr, err := a.serveMetrics(ctx, a.cfg.MetricsListen)
		if err != nil {
			return err
		}
		a.log.Info("serving metrics", "address", addr.String())
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	if a.cfg.UnderlayIface != "" {
		if err := a.dp.EnsureUnderlay(ctx, a.cfg.UnderlayIface, a.cfg.UnderlayPrefix); err != nil {
			return fmt.Errorf("underlay: %w", err)
		}
	}
	gen, err := a.dp.NewGeneration(ctx)
	if err != nil {
		return fmt.Errorf("new flow generation: %w", err)
	}
	a.log.Info("agent ready", "host", a.cfg.Host, "generation", gen)
	a.startDNS(ctx)

	go a.reportLoop(ctx)
	go a.jobLoop(ctx)
	defer a.health.Stop()
	if a.cfg.Observer != nil {
		go a.observePolicies(ctx, a.cfg.Observer)
	}
	updates := make(chan *openapi.ProgramUpdate)
	want := make(chan pollFrom, 1)
	go a.pollLoop(ctx, want, updates)
	want <- pollFrom{}

	// Jittered at each beat, so that agents started (or healed) together
	// do not report in step.
	heartbeat := time.NewTimer(jitter(a.cfg.Heartbeat))
	defer heartbeat.Stop()
	// Jittered, so that agents started together do not all check their
	// hosts at the same moment.
	resync := time.NewTimer(jitter(a.cfg.Resync))
	defer resync.Stop()
	r := newRetrier()
	defer r.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case up := <-updates:
			a.arrived.Store(false)
			a.lastArrival = time.Now()
			a.receive(up)
			want <- a.pollFrom()
			a.pending = a.want != nil
			if !r.waiting() {
				a.attempt(ctx, r)
			} // else: the retry timer applies the newest program
		case <-r.due():
			a.attempt(ctx, r)
		case why := <-a.dp.Restarts():
			// The switch lost its flows (or OVSDB its connection): restore
			// at once rather than at the next resync.
			a.m.restarts.Inc()
			a.log.Warn("Open vSwitch restarted; restoring the host now", "why", why)
			a.ensureUnderlay(ctx)
			a.pending = a.want != nil
			r.reset()
			a.attempt(ctx, r)
		case <-heartbeat.C:
			a.poke()
			heartbeat.Reset(jitter(a.cfg.Heartbeat))
		case <-resync.C:
			if wait := a.untilLull(time.Now()); wait > 0 {
				resync.Reset(wait)
				break
			}
			drifted, gaveWay := a.resync(ctx)
			if drifted {
				a.pending = true
				if !r.waiting() {
					a.attempt(ctx, r)
				}
			}
			if gaveWay {
				resync.Reset(jitter(min(deferredResync, a.cfg.Resync)))
			} else {
				resync.Reset(jitter(a.cfg.Resync))
			}
		}
	}
}

// pollFrom is the program the agent has: the controller answers with what
// differs from it.
type pollFrom struct {
	revision int64
	digest   string
}

func (a *Agent) pollFrom() pollFrom {
	if a.want == nil {
		return pollFrom{}
	}
	return pollFrom{a.want.P.Revision, a.want.P.Digest}
}

// retrier spaces out attempts to apply after a failure.
type retrier struct {
	b     *backoff.ExponentialBackOff
	timer *time.Timer
	armed bool
}

func newRetrier() *retrier {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &retrier{b: newBackOff(), timer: t}
}

// waiting reports whether a retry is scheduled.
func (r *retrier) waiting() bool { return r.armed }

// due fires when a scheduled retry is due (never when none is).
func (r *retrier) due() <-chan time.Time {
	if !r.armed {
		return nil
	}
	return r.timer.C
}

// failed schedules the next retry and returns its delay.
func (r *retrier) failed() time.Duration {
	d := r.b.NextBackOff()
	r.timer.Reset(d)
	r.armed = true
	return d
}

// reset forgets past failures and cancels a scheduled retry.
func (r *retrier) reset() {
	r.b.Reset()
	r.timer.Stop()
	r.armed = false
}

func (r *retrier) stop() { r.timer.Stop() }

// register announces the host until the controller accepts it. Nothing
// touches the datapath before it succeeds.
func (a *Agent) register(ctx context.Context) error {
	b := newBackOff()
	reg := openapi.NodeRegistration{Address: a.cfg.Address.String(), TunnelType: a.cfg.TunnelType, AgentVersion: Version()}
	var lastErr string
	for {
		h, err := a.api.register(ctx, reg)
		a.m.connected(err == nil)
		if err == nil {
			a.log.Info("registered", "host", h.Name, "address", h.Address, "tunnel", h.TunnelType)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := b.NextBackOff()
		if err.Error() != lastErr {
			a.log.Error("cannot register with the controller; retrying", "err", err, "in", d)
			lastErr = err.Error()
		}
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// pollLoop long-polls from each program it is given and hands the first
// update back. Errors are logged once per kind and retried with backoff;
// the datapath is left as it is meanwhile.
func (a *Agent) pollLoop(ctx context.Context, want <-chan pollFrom, out chan<- *openapi.ProgramUpdate) {
	b := newBackOff()
	var lastErr string
	for {
		var w pollFrom
		select {
		case <-ctx.Done():
			return
		case w = <-want:
		}
		for {
			up, err := a.api.poll(ctx, w.revision, w.digest, a.cfg.PollTimeout)
			if ctx.Err() != nil {
				return
			}
			a.m.connected(err == nil)
			if err != nil {
				d := b.NextBackOff()
				if err.Error() != lastErr {
					a.log.Error("cannot fetch the program; the datapath stays as it is", "err", err, "retry_in", d)
					lastErr = err.Error()
				}
				if client.StatusOf(err) == http.StatusNotFound {
					_ = a.register(ctx)
				}
				if !sleep(ctx, d) {
					return
				}
				continue
			}
			if lastErr != "" {
				a.log.Info("controller reachable again")
				lastErr = ""
			}
			b.Reset()
			if up == nil {
				continue // nothing changed: poll again
			}
			a.log.Debug("update received", "revision", up.Revision, "full", up.Full)
			a.arrived.Store(true)
			if stop := a.checking.Load(); stop != nil {
				(*stop)() // a resync's check gives way (resync)
			}
			select {
			case out <- up:
			case <-ctx.Done():
				return
			}
			break
		}
	}
}

// receive turns an update into the program to apply (a.want). A delta
// that does not apply drops it, so that the next poll asks for a whole one.
func (a *Agent) receive(up *openapi.ProgramUpdate) {
	switch {
	case up.Full && up.Program != nil:
		a.want = program.Track(up.Program)
		a.change = nil
		// A whole program (after a controller restart, or when this agent
		// fell too far behind) is still applied as the change from the
		// program last applied: diffing in memory is a few milliseconds,
		// and the applier falls back to comparing everything when the
		// switch does not hold what it last installed.
		if last := a.prog; last != nil && last.Digest != "" && last.Host == up.Program.Host && last.Bridge == up.Program.Bridge {
			a.change = program.Diff(last, up.Program)
		}
	case up.Delta != nil && a.want != nil:
		tr, err := a.want.Patch(up.Delta)
		if err != nil {
			a.log.Warn("delta does not apply; asking for the whole program", "err", err)
			a.want, a.change = nil, nil
			return
		}
		tr.P.Revision = up.Revision
		a.change = a.chain(up.Delta)
		a.want = tr
	default:
		a.want, a.change = nil, nil
	}
}

// chain returns the delta from the program last applied to the one d
// (a delta from a.want) leads to, or nil when that is not known: d itself
// when a.want is applied, else d composed onto the pending change.
func (a *Agent) chain(d *openapi.ProgramDelta) *openapi.ProgramDelta {
	switch {
	case a.prog != nil && a.prog.Digest != "" && a.want.P.Digest == a.prog.Digest:
		return d
	case a.change != nil:
		c, err := program.Compose(a.change, d)
		if err != nil {
			return nil
		}
		return c
	}
	return nil
}

// attempt applies the newest program if it is not applied yet; after a
// failure it schedules the next attempt with backoff, after a success it
// forgets past failures.
func (a *Agent) attempt(ctx context.Context, r *retrier) {
	if !a.pending || a.want == nil {
		r.reset()
		return
	}
	if !a.apply(ctx, a.want.P, a.change) {
		d := r.failed()
		a.log.Info("next apply attempt", "in", d.Round(time.Millisecond))
		return
	}
	a.pending = false
	a.change = nil
	r.reset()
}

// apply applies prog and records the outcome for the reporter; it says
// whether it applied.
func (a *Agent) apply(ctx context.Context, prog *openapi.Program, change *openapi.ProgramDelta) bool {
	start := time.Now()
	res, err := a.dp.Apply(ctx, prog, change)
	took := time.Since(start)
	a.m.applyTime.Observe(took.Seconds())
	st := openapi.NodeStatus{AppliedRevision: prog.Revision, Digest: prog.Digest, Ports: withIDs(prog, res.Ports)}
	if change == nil || len(change.AddContainers) > 0 || len(change.RemoveContainers) > 0 {
		a.mu.Lock()
		a.specs++
		if change == nil {
			a.wholeAt = a.specs
		} else if len(change.AddContainers) > 0 {
			if a.touched == nil {
				a.touched = map[string]uint64{}
			}
			for _, c := range change.AddContainers {
				a.touched[c.Name] = a.specs
			}
		}
		a.mu.Unlock()
	}
	if err != nil {
		a.m.applyErrs.Inc()
		a.log.Error("apply failed; will retry", "revision", prog.Revision, "err", err)
		st.Error = err.Error()
		a.mu.Lock()
		st.AppliedRevision = a.status.AppliedRevision
		a.mu.Unlock()
		a.setFailed(st)
		return false
	}
	// A delta warms only the peers it adds: warming every peer on every
	// apply broadcast (hosts-1) ARP requests per host per change, which
	// every switch of the underlay then had to process.
	peers := prog.Tunnels
	if change != nil {
		peers = change.AddTunnels
	}
	warmNeighbors(a.cfg.UnderlayBridge, a.cfg.Address, peers)
	a.log.Info("applied", "revision", prog.Revision, "digest", prog.Digest, "took", took, "summary", res.Summary)
	a.m.flows.Set(float64(res.Flows))
	a.prog = prog
	a.health.Set(prog)
	ports := slices.Clone(prog.Containers)
	a.appliedPorts.Store(&ports)
	a.feedDNS(prog)
	a.setStatus(st)
	return true
}

// withIDs fills in each container port's container id from the program.
func withIDs(prog *openapi.Program, ports []openapi.PortStatus) []openapi.PortStatus {
	ids := make(map[string]string, len(prog.Containers))
	for _, c := range prog.Containers {
		ids[c.Name] = c.ID
	}
	out := make([]openapi.PortStatus, len(ports))
	for i, p := range ports {
		p.ContainerID = ids[p.Name]
		out[i] = p
	}
	return out
}

// ensureUnderlay rebuilds the underlay bridge's flow, which lives in
// ovs-vswitchd only: an OVS restart wipes it (and with it every tunnel).
func (a *Agent) ensureUnderlay(ctx context.Context) {
	if a.cfg.UnderlayIface == "" {
		return
	}
	if err := a.dp.EnsureUnderlay(ctx, a.cfg.UnderlayIface, a.cfg.UnderlayPrefix); err != nil {
		a.log.Warn("underlay", "err", err)
	}
}

// untilLull says how long a due resync waits before it begins: until no
// program arrived for resyncLull. A program that arrives during the check
// cuts it short (it gives way), and what it checked until then is wasted:
// under a stream of changes (one every 60 ms on every host in
// BenchmarkConvergence) the checks tried again every 2 s were all cut
// short, each having spent up to the whole check's CPU (about 85 ms in
// the agent, ovs-ofctl and ovs-vswitchd for 100 containers) in the middle
// of the changes. The wait counts in maxResyncDeferral: past it the check
// begins, and runs to its end, whatever arrives.
func (a *Agent) untilLull(now time.Time) time.Duration {
	quiet := now.Sub(a.lastArrival)
	if quiet >= a.cfg.ResyncLull || (!a.deferredSince.IsZero() && now.Sub(a.deferredSince) >= maxResyncDeferral) {
		return 0
	}
	if a.deferredSince.IsZero() {
		a.deferredSince = now
	}
	a.m.resyncsWaited.Inc()
	return a.cfg.ResyncLull - quiet
}

// resync compares the host with the last applied program; it reports
// whether anything drifted (the caller then re-applies), and whether the
// check gave way to a program that arrived during it (the caller then
// resyncs again soon). The check of a host of 1,000 containers takes
// tens of milliseconds (a dump of its flows); run's loop applies nothing
// meanwhile, so a program that arrives cancels it, for up to
// maxResyncDeferral.
func (a *Agent) resync(ctx context.Context) (drifted, gaveWay bool) {
	prog := a.prog
	if prog == nil {
		return false, false
	}
	if a.deferred == 0 {
		// Once per round: a check that gave way tries again in 2 s, and
		// under a stream of changes would redo the underlay (an OVSDB
		// snapshot, link and OpenFlow reads) and the ARP broadcasts every
		// time.
		a.ensureUnderlay(ctx)
		warmNeighbors(a.cfg.UnderlayBridge, a.cfg.Address, prog.Tunnels)
	}
	t := time.Now()
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.deferredSince.IsZero() || time.Since(a.deferredSince) < maxResyncDeferral {
		a.checking.Store(&cancel)
		if a.arrived.Load() {
			cancel() // it came just before
		}
	}
	obs, err := a.dp.Observe(octx)
	a.checking.Store(nil)
	if err != nil && octx.Err() != nil && ctx.Err() == nil {
		if a.deferredSince.IsZero() {
			a.deferredSince = t
		}
		a.deferred++
		a.m.resyncsDeferred.Inc()
		a.log.Debug("resync: gave way to a new program", "after", time.Since(t), "in_a_row", a.deferred)
		return false, true
	}
	a.deferred, a.deferredSince = 0, time.Time{}
	if err != nil {
		a.log.Warn("resync: observe failed", "err", err)
		return false, false
	}
	a.log.Debug("resync: host observed", "took", time.Since(t), "drift", len(obs.Drift))
	if len(obs.Drift) == 0 {
		a.mu.Lock()
		a.status.Ports = withIDs(prog, obs.Ports)
		ports := a.status.Ports
		a.mu.Unlock()
		a.m.setPorts(ports)
		return false, false
	}
	a.m.repairs.Inc()
	a.log.Warn("resync: the host drifted from its program; repairing", "drift", obs.Drift)
	return true, false
}
