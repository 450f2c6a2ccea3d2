// Package nodes is the controller's side of the node protocol. It keeps the
// compiler in step with the intent (a full load at start, then every
// committed revision's events, in order), holds each host's current program
// digest and a bounded history of its deltas (an agent up to maxDeltas
// changes behind gets them composed into one delta), wakes only the long-polls of hosts whose program changed, takes the agents'
// reports (refusing revisions no controller sent; their health verdicts go
// to the store, which writes only changes) and answers ?wait=realized
// with each touched host's state. A host's readiness reaches the compiler
// like any host change: the store flips it in a write with a host event
// (a report of a NotReady host, a sweep past the heartbeat timeout), fed
// to the compiler as PutHost in revision order on every replica. When the compiler may have left the intent
// (an event it cannot read, a compiler failure) it says so (Healthy, metrics)
// and recompiles from scratch instead of carrying on. For traces it hands
// out its compiler's intent and programs (TraceEnv) and read-only jobs to
// the agents polling it (jobs.go). It must not compute flows itself (that is the compiler's job) nor write intent, and it must
// never call the compiler without recovering from its failures, nor hold its
// lock without a deferred unlock.
package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// maxDeltas is how many changes behind an agent may be and still get a
// delta (the deltas of its host's last changes, composed into one); an agent
// further behind gets the whole program.
const maxDeltas = 64

// maxDeltaBytes bounds the size (program.Size) of the deltas kept per host:
// the oldest are dropped first. A burst of small changes fits many times
// over; a few huge ones (a network on a large host) fall back to a full
// program sooner, which is then about as cheap.
const maxDeltaBytes = 1 << 20

// histLen is how many past programs per host are kept for realization,
// report checks and deltas. Older history is summed up by hostEntry.known.
const histLen = maxDeltas + 1

// ctrsLen is how many past revisions' changed containers are kept.
const ctrsLen = 4096

// progRev is one program a host had: the revision at which it became the
// host's program, its digest, and the delta that led to it from the program
// before (nil when unknown: after a load or recompile, or dropped to bound
// the history's size).
type progRev struct {
	rev    int64
	digest string
	delta  *openapi.ProgramDelta
	size   int // program.Size(delta)
}

// hostEntry is what the manager knows of one host's program, and who waits
// for it. Whole programs are built by the compiler on demand: an agent up to
// maxDeltas changes behind gets the deltas since its program, composed.
type hostEntry struct {
	digest string
	rev    int64 // the revision at which the program last changed
	// hist are the host's programs, oldest first (the last is the current
	// one). Every change of the program at or after revision known is in
	// hist; of the changes before known nothing is known. The deltas kept
	// in hist form a suffix of it and sum up to deltaBytes.
	hist       []progRev
	deltaBytes int
	known      int64
	// changed is closed (and replaced) when the program changes.
	changed chan struct{}
}

// Manager keeps every host's program current. Safe for concurrent use.
type Manager struct {
	st  *store.Store
	log *slog.Logger

	mu    sync.Mutex
	comp  *compile.Compiler
	rev   int64 // the revision the compiler is at
	hosts map[string]*hostEntry
	ready bool
	// diverged is set when the compiler may no longer match the store (an
	// event it could not read, a compiler failure); Run reloads everything.
	diverged error
	// progress is closed (and replaced) whenever rev moves or an ack arrives.
	progress chan struct{}
	acks     map[string]ack
	// ctrsAt lists the containers each recent revision changed (ctrsRevs
	// orders them), to tell whether a failed port concerns a change.
	ctrsAt   map[int64][]string
	ctrsRevs []int64
	// hostsAt lists the hosts whose program changed at each recent
	// revision (hostsRevs orders them, at most ctrsLen), so that a wait
	// for a revision looks at those hosts only. It is exact for revisions
	// after hostsFrom (the last load, the newest evicted revision, and
	// hosts whose history no longer reaches back: see touched).
	hostsAt   map[int64][]string
	hostsRevs []int64
	hostsFrom int64

	// kick asks the run loop to catch up with the event log.
	kick chan struct{}

	// maxDeltas and maxDeltaBytes bound each host's kept deltas (tests
	// and benchmarks lower them).
	maxDeltas, maxDeltaBytes int

	// DNSDomain is the domain of container and service names
	// (SWITCHYARD_DNS_DOMAIN); set it before Run. Empty: DefaultDNSDomain.
	DNSDomain string

	metrics *metrics
	// jobs are the read-only jobs (traces, probes) for the agents polling
	// this replica (jobs.go).
	jobs Jobs
	// programOf builds a host's whole program; tests replace it to inject
	// compiler failures.
	programOf func(c *compile.Compiler, host string) (*openapi.Program, error)
}

// DefaultDNSDomain is the DNS domain when none is configured.
const DefaultDNSDomain = "switchyard.local"

func (m *Manager) dnsDomain() string {
	if m.DNSDomain == "" {
		return DefaultDNSDomain
	}
	return m.DNSDomain
}

// New returns a manager; Run starts it.
func New(st *store.Store, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{st: st, log: log, hosts: map[string]*hostEntry{}, progress: make(chan struct{}),
		acks: map[string]ack{}, ctrsAt: map[int64][]string{}, hostsAt: map[int64][]string{}, kick: make(chan struct{}, 1), programOf: (*compile.Compiler).Program,
		maxDeltas: maxDeltas, maxDeltaBytes: maxDeltaBytes}
	m.metrics = newMetrics(m)
	return m
}

// Run loads the intent, then follows every committed revision until ctx ends.
// When the compiler diverged from the store, it loads everything again.
func (m *Manager) Run(ctx context.Context) {
	go m.st.Listen(ctx, store.NotifyChannel, func(string) { m.poke() })
	go m.st.Listen(ctx, store.StatusChannel, m.onStatus)
	if !m.reload(ctx, "start") {
		return
	}
	tick := time.NewTicker(2 * time.Second) // safety net for a lost notification
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-tick.C:
		}
		if m.divergence() != nil {
			if !m.reload(ctx, "diverged") {
				return
			}
		}
		if err := m.catchUp(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("nodes: catch up", "err", err)
		}
	}
}

// reload loads the whole intent, retrying with jittered exponential backoff
// until it succeeds; false when ctx ended first.
func (m *Manager) reload(ctx context.Context, why string) bool {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	err := backoff.Retry(func() error {
		err := m.load(ctx, why)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("nodes: load intent", "why", why, "err", err)
		}
		return err
	}, backoff.WithContext(b, ctx))
	return err == nil
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// revision is the revision the compiler is at.
func (m *Manager) revision() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

func (m *Manager) divergence() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.diverged
}

// load compiles everything from one consistent read; why labels it in the
// reload metrics.
func (m *Manager) load(ctx context.Context, why string) error {
	in, err := m.st.LoadIntent(ctx)
	if err != nil {
		return err
	}
	acks, err := m.st.HostAcks(ctx)
	if err != nil {
		return err
	}
	comp := compile.New()
	start := time.Now()
	progs, err := safely(func() (map[string]*openapi.Program, error) {
		return comp.Full(&compile.Snapshot{Revision: in.Revision, Hosts: in.Hosts, Networks: in.Networks,
			Containers: in.Containers, Services: in.Services, Policies: in.Policies,
			EndpointHealth: in.EndpointHealth, DNSDomain: m.dnsDomain()}), nil
	})
	if err != nil {
		return err
	}
	m.log.Info("nodes: compiled all hosts", "revision", in.Revision, "hosts", len(progs), "containers", len(in.Containers), "took", time.Since(start))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.comp, m.rev, m.diverged = comp, in.Revision, nil
	clear(m.hostsAt)
	m.hostsRevs, m.hostsFrom = nil, in.Revision
	m.mergeAcks(acks)
	for name := range m.hosts {
		if progs[name] == nil {
			m.removeHost(name)
		}
	}
	for name, p := range progs {
		m.setProgram(name, in.Revision, p.Digest, nil)
		// What changed while this replica was not following is unknown.
		e := m.hosts[name]
		e.hist, e.deltaBytes, e.known = []progRev{{rev: in.Revision, digest: e.digest}}, 0, in.Revision
	}
	m.ready = true
	m.metrics.reloads.WithLabelValues(why).Inc()
	m.advance()
	return nil
}

// catchUp applies every event after the compiler's revision.
func (m *Manager) catchUp(ctx context.Context) error {
	for {
		from := m.revision()
		evs, err := m.st.EventsSince(ctx, from, nil, 1000)
		if errors.Is(err, store.ErrEventsPruned) {
			// The log no longer reaches back to our revision: start over
			// from a snapshot of the intent.
			m.log.Warn("nodes: events pruned past the compiled revision; reloading the intent", "revision", from)
			return m.load(ctx, "pruned")
		}
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		if err := m.applyEvents(evs); err != nil {
			return err
		}
		if len(evs) < 1000 {
			return nil
		}
	}
}

// applyEvents feeds events to the compiler, one revision at a time, and
// publishes the programs that changed. An event it cannot read, or a
// compiler failure, marks the compiler diverged: it stops, and Run reloads
// everything from the store.
func (m *Manager) applyEvents(evs []openapi.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.advance()
	if m.diverged != nil || !m.ready {
		return m.diverged
	}
	for i := 0; i < len(evs); {
		rev := evs[i].Revision
		var changes []compile.Change
		var ctrs []string
		for ; i < len(evs) && evs[i].Revision == rev; i++ {
			if evs[i].Revision <= m.rev {
				continue
			}
			if evs[i].Kind == "container" {
				ctrs = append(ctrs, evs[i].ID)
			}
			ch, err := toChange(evs[i])
			if err != nil {
				return m.diverge(fmt.Errorf("unreadable event at revision %d (%s %s): %w", rev, evs[i].Kind, evs[i].Action, err))
			}
			changes = append(changes, ch)
		}
		if rev <= m.rev {
			continue
		}
		ups, err := safely(func() ([]compile.HostUpdate, error) { return m.comp.Apply(rev, changes...), nil })
		if err != nil {
			return m.diverge(fmt.Errorf("compiling revision %d: %w", rev, err))
		}
		for _, u := range ups {
			if u.Removed {
				m.removeHost(u.Host)
				continue
			}
			m.setProgram(u.Host, rev, u.Digest, u.Delta)
		}
		m.noteContainers(rev, ctrs)
		m.rev = rev
	}
	return nil
}

// diverge marks the compiler as no longer following the store, and asks Run
// to reload. Callers hold mu.
func (m *Manager) diverge(err error) error {
	m.log.Error("nodes: compiler diverged from the store; reloading", "err", err)
	m.diverged = err
	m.poke()
	return err
}

// safely runs f, turning a panic into an error.
func safely[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compiler panic: %v", r)
		}
	}()
	return f()
}

// toChange turns an event into a compiler change.
func toChange(e openapi.Event) (compile.Change, error) {
	del := e.Action == openapi.EventDeleted
	switch e.Kind {
	case "host":
		if del {
			return compile.DeleteHost(e.Name), nil
		}
		var h openapi.Host
		err := json.Unmarshal(e.Object, &h)
		return compile.PutHost(h), err
	case "network":
		if del {
			return compile.DeleteNetwork(e.Name), nil
		}
		var n openapi.Network
		err := json.Unmarshal(e.Object, &n)
		return compile.PutNetwork(n), err
	case "container":
		if del {
			return compile.DeleteContainer(e.ID), nil
		}
		var c openapi.Container
		err := json.Unmarshal(e.Object, &c)
		return compile.PutContainer(c), err
	case "service":
		if del {
			return compile.DeleteService(e.ID), nil
		}
		var s openapi.Service
		err := json.Unmarshal(e.Object, &s)
		return compile.PutService(s), err
	case "policy":
		if del {
			return compile.DeletePolicy(e.ID), nil
		}
		var p openapi.Policy
		err := json.Unmarshal(e.Object, &p)
		return compile.PutPolicy(p), err
	case store.EndpointKind:
		var h openapi.EndpointHealth
		if err := json.Unmarshal(e.Object, &h); err != nil {
			return compile.Change{}, err
		}
		if del {
			return compile.DeleteEndpointHealth(h.Service, h.Container), nil
		}
		return compile.PutEndpointHealth(h), nil
	}
	return compile.Change{}, fmt.Errorf("unknown kind %q", e.Kind)
}

// setProgram records host's new program digest, and the delta that leads
// to it (nil: unknown), and wakes its long-polls when it differs from the
// one before. Callers hold mu.
func (m *Manager) setProgram(host string, rev int64, digest string, delta *openapi.ProgramDelta) {
	e := m.hosts[host]
	if e == nil {
		e = &hostEntry{changed: make(chan struct{})}
		m.hosts[host] = e
	}
	if e.digest == digest {
		return
	}
	if delta != nil && delta.FromDigest != e.digest {
		delta = nil // not from the program we had: useless
	}
	if len(e.hist) == 0 || e.hist[len(e.hist)-1].rev != rev {
		m.noteHost(rev, host)
	}
	pr := progRev{rev: rev, digest: digest, delta: delta}
	if delta == nil {
		// No delta leads across this change: the older ones are useless.
		e.dropDeltas(len(e.hist))
	} else {
		pr.size = program.Size(delta)
	}
	e.digest, e.rev = digest, rev
	e.hist = append(e.hist, pr)
	e.deltaBytes += pr.size
	if len(e.hist) > histLen {
		e.known = e.hist[0].rev + 1
		m.hostsFrom = max(m.hostsFrom, e.hist[0].rev)
		e.dropDeltas(1)
		e.hist = slices.Delete(e.hist, 0, 1)
	}
	// Drop the oldest deltas beyond the bounds (the first program's delta
	// leads from outside the history); the newest always stays.
	drop := 0
	for i := 0; i < len(e.hist)-1 && (i == 0 || e.deltaBytes > m.maxDeltaBytes || len(e.hist)-i > m.maxDeltas); i++ {
		if e.hist[i].delta != nil {
			e.deltaBytes -= e.hist[i].size
		}
		drop = i + 1
	}
	e.dropDeltasCounted(drop)
	close(e.changed)
	e.changed = make(chan struct{})
}

// dropDeltas forgets the deltas of the first n programs of e's history.
func (e *hostEntry) dropDeltas(n int) {
	for i := range e.hist[:n] {
		if e.hist[i].delta != nil {
			e.deltaBytes -= e.hist[i].size
		}
	}
	e.dropDeltasCounted(n)
}

// dropDeltasCounted forgets the first n deltas, whose sizes were already
// taken off deltaBytes.
func (e *hostEntry) dropDeltasCounted(n int) {
	for i := range e.hist[:n] {
		e.hist[i].delta, e.hist[i].size = nil, 0
	}
}

// deltasFrom returns the deltas that lead from digest to e's current
// program, oldest first, or nil when e's kept history does not reach back
// to digest (or digest is the current one). The slice is new; the deltas
// are shared and never modified.
func (e *hostEntry) deltasFrom(digest string) []*openapi.ProgramDelta {
	if digest == "" {
		return nil
	}
	// The newest match is the shortest chain (a program may come back).
	for i := len(e.hist) - 2; i >= 0; i-- {
		if e.hist[i].digest != digest {
			continue
		}
		ds := make([]*openapi.ProgramDelta, 0, len(e.hist)-1-i)
		for _, pr := range e.hist[i+1:] {
			if pr.delta == nil {
				return nil
			}
			ds = append(ds, pr.delta)
		}
		return ds
	}
	return nil
}

func (m *Manager) removeHost(host string) {
	if e := m.hosts[host]; e != nil {
		close(e.changed)
		delete(m.hosts, host)
	}
}

// advance wakes everything waiting for progress. Callers hold mu.
func (m *Manager) advance() {
	close(m.progress)
	m.progress = make(chan struct{})
}
