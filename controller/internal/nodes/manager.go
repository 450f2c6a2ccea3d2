// Package nodes is the controller's side of the node protocol. It keeps the
// compiler in step with the intent (a full load at start, then every
// committed revision's events, in order), holds each host's current program,
// wakes only the long-polls of hosts whose program changed, takes the agents'
// reports and answers ?wait=realized. It must not compute flows itself (that
// is the compiler's job) nor write intent.
package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// changesLen is how many past change revisions per host are kept for
// realization checks.
const changesLen = 64

// hostEntry is what the manager knows of one host's program, and who waits
// for it. Whole programs are built by the compiler on demand: most agents
// only ever need the last delta.
type hostEntry struct {
	digest string
	rev    int64 // the revision at which the program last changed
	// delta leads from prevDigest to digest (nil when unknown).
	prevDigest string
	delta      *openapi.ProgramDelta
	// changes are the revisions at which the program changed, oldest first.
	changes []int64
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
	// progress is closed (and replaced) whenever rev moves or an ack arrives.
	progress chan struct{}
	acks     map[string]store.HostAck

	// kick asks the run loop to catch up with the event log.
	kick chan struct{}
}

// New returns a manager; Run starts it.
func New(st *store.Store, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{st: st, log: log, hosts: map[string]*hostEntry{}, progress: make(chan struct{}),
		acks: map[string]store.HostAck{}, kick: make(chan struct{}, 1)}
}

// Run loads the intent, then follows every committed revision until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	go m.st.Listen(ctx, store.NotifyChannel, func(string) { m.poke() })
	go m.st.Listen(ctx, store.StatusChannel, m.onStatus)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := m.load(ctx); err != nil {
			m.log.Warn("nodes: load intent", "err", err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		break
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
		if err := m.catchUp(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("nodes: catch up", "err", err)
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// load compiles everything from one consistent read.
func (m *Manager) load(ctx context.Context) error {
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
	progs := comp.Full(&compile.Snapshot{Revision: in.Revision, Hosts: in.Hosts, Networks: in.Networks,
		Containers: in.Containers, Services: in.Services, Policies: in.Policies})
	m.log.Info("nodes: compiled all hosts", "revision", in.Revision, "hosts", len(progs), "containers", len(in.Containers), "took", time.Since(start))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.comp, m.rev, m.acks = comp, in.Revision, acks
	for name, p := range progs {
		m.setProgram(name, p.Revision, p.Digest, nil)
	}
	m.ready = true
	m.advance()
	return nil
}

// catchUp applies every event after the compiler's revision.
func (m *Manager) catchUp(ctx context.Context) error {
	for {
		m.mu.Lock()
		from := m.rev
		m.mu.Unlock()
		evs, err := m.st.EventsSince(ctx, from, nil, 1000)
		if errors.Is(err, store.ErrEventsPruned) {
			// The log no longer reaches back to our revision: start over
			// from a snapshot of the intent.
			m.log.Warn("nodes: events pruned past the compiled revision; reloading the intent", "revision", from)
			return m.load(ctx)
		}
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		m.applyEvents(evs)
		if len(evs) < 1000 {
			return nil
		}
	}
}

// applyEvents feeds events to the compiler, one revision at a time, and
// publishes the programs that changed.
func (m *Manager) applyEvents(evs []openapi.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i < len(evs); {
		rev := evs[i].Revision
		var changes []compile.Change
		for ; i < len(evs) && evs[i].Revision == rev; i++ {
			if evs[i].Revision <= m.rev {
				continue
			}
			ch, err := toChange(evs[i])
			if err != nil {
				m.log.Error("nodes: unreadable event", "revision", rev, "kind", evs[i].Kind, "err", err)
				continue
			}
			changes = append(changes, ch)
		}
		if rev <= m.rev {
			continue
		}
		for _, u := range m.comp.Apply(rev, changes...) {
			if u.Removed {
				m.removeHost(u.Host)
				continue
			}
			m.setProgram(u.Host, rev, u.Digest, u.Delta)
		}
		m.rev = rev
	}
	m.advance()
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
	}
	return compile.Change{}, fmt.Errorf("unknown kind %q", e.Kind)
}

// setProgram records host's new program digest, and the delta that leads
// to it, and wakes its long-polls when it differs from the one before.
// Callers hold mu.
func (m *Manager) setProgram(host string, rev int64, digest string, delta *openapi.ProgramDelta) {
	e := m.hosts[host]
	if e == nil {
		e = &hostEntry{changed: make(chan struct{})}
		m.hosts[host] = e
	}
	if e.digest == digest {
		return
	}
	e.prevDigest, e.digest, e.rev, e.delta = e.digest, digest, rev, delta
	e.changes = append(e.changes, rev)
	if len(e.changes) > changesLen {
		e.changes = e.changes[1:]
	}
	close(e.changed)
	e.changed = make(chan struct{})
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

// onStatus records an ack heard from any replica.
func (m *Manager) onStatus(payload string) {
	if payload == "" {
		// (Re)connected: reload every ack, some may have been missed.
		acks, err := m.st.HostAcks(context.Background())
		if err != nil {
			return
		}
		m.mu.Lock()
		m.acks = acks
		m.advance()
		m.mu.Unlock()
		return
	}
	host, applied, ok := store.ParseStatusNotice(payload)
	if !ok {
		return
	}
	m.noteAck(host, applied)
}

func (m *Manager) noteAck(host string, applied int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.acks[host]
	if applied > a.Applied {
		a.Applied = applied
	}
	a.LastSeen = time.Now()
	m.acks[host] = a
	m.advance()
}
