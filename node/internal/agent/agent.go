// Package agent is the node agent's loop: register the host, long-poll its
// program from the controller, apply it (through the ovs applier), report
// the applied revision and port status, heartbeat, and resync on a timer so
// anything changed behind its back is repaired. When the controller is gone
// the datapath keeps running as last applied. It must not compute flows nor
// touch OVS or links other than through the applier.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/openapi/program"
)

// Datapath is what the agent needs of the applier (node/internal/ovs).
type Datapath interface {
	EnsureUnderlay(ctx context.Context, iface string, addr netip.Prefix) error
	NewGeneration(ctx context.Context) (uint16, error)
	Apply(ctx context.Context, prog *openapi.Program) (Result, error)
	Observe(ctx context.Context) (Observation, error)
}

// Result is what one apply reports.
type Result struct {
	Ports    []openapi.PortStatus
	Degraded bool
	Summary  string
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
	TunnelType    string
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
	Log            *slog.Logger
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

	mu   sync.Mutex
	prog *openapi.Program // the program last applied
	// tracked is prog with its content sums, so deltas patch in O(delta).
	tracked *program.Tracked
	status  openapi.NodeStatus
}

// New returns an agent; Run starts it.
func New(cfg Config, dp Datapath) *Agent {
	cfg.defaults()
	return &Agent{cfg: cfg, dp: dp, api: newClient(cfg.ControllerURL, cfg.Host, cfg.Token), log: cfg.Log}
}

// backoff grows a retry delay up to a ceiling.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = 200 * time.Millisecond
	} else {
		b.d = min(2*b.d, 10*time.Second)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// jitter spreads d by up to a fifth either way.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// Run registers, prepares the datapath and follows the controller until ctx
// ends. It returns only when ctx ends or the datapath cannot be prepared.
func (a *Agent) Run(ctx context.Context) error {
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

	updates := make(chan *openapi.ProgramUpdate)
	want := make(chan [2]any, 1) // (revision, digest) to poll from
	go a.pollLoop(ctx, want, updates)
	want <- [2]any{int64(0), ""}

	heartbeat := time.NewTicker(a.cfg.Heartbeat)
	defer heartbeat.Stop()
	// Jittered, so that agents started together do not all check their
	// hosts at the same moment.
	resync := time.NewTimer(jitter(a.cfg.Resync))
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case up := <-updates:
			a.handle(ctx, up)
			a.mu.Lock()
			rev, digest := int64(0), ""
			if a.prog != nil {
				rev, digest = a.prog.Revision, a.prog.Digest
			}
			a.mu.Unlock()
			want <- [2]any{rev, digest}
		case <-heartbeat.C:
			a.report(ctx)
		case <-resync.C:
			a.resync(ctx)
			resync.Reset(jitter(a.cfg.Resync))
		}
	}
}

// register announces the host until the controller accepts it. Nothing
// touches the datapath before it succeeds.
func (a *Agent) register(ctx context.Context) error {
	var b backoff
	reg := openapi.NodeRegistration{Address: a.cfg.Address.String(), TunnelType: a.cfg.TunnelType}
	var lastErr string
	for {
		h, err := a.api.register(ctx, reg)
		if err == nil {
			a.log.Info("registered", "host", h.Name, "address", h.Address, "tunnel", h.TunnelType)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := b.next()
		if err.Error() != lastErr {
			a.log.Error("cannot register with the controller; retrying", "err", err, "in", d)
			lastErr = err.Error()
		}
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// pollLoop long-polls for each (revision, digest) it is given and hands the
// first update back. Errors are logged once per kind and retried with
// backoff; the datapath is left as it is meanwhile.
func (a *Agent) pollLoop(ctx context.Context, want <-chan [2]any, out chan<- *openapi.ProgramUpdate) {
	var b backoff
	var lastErr string
	for {
		var w [2]any
		select {
		case <-ctx.Done():
			return
		case w = <-want:
		}
		for {
			up, err := a.api.poll(ctx, w[0].(int64), w[1].(string), a.cfg.PollTimeout)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				d := b.next()
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
			b.reset()
			if up == nil {
				continue // nothing changed: poll again
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

// handle turns an update into a program and applies it.
func (a *Agent) handle(ctx context.Context, up *openapi.ProgramUpdate) {
	a.mu.Lock()
	cur := a.tracked
	a.mu.Unlock()
	var next *program.Tracked
	switch {
	case up.Full && up.Program != nil:
		next = program.Track(up.Program)
	case up.Delta != nil && cur != nil:
		tr, err := cur.Patch(up.Delta)
		if err != nil {
			a.log.Warn("delta does not apply; asking for the whole program", "err", err)
			a.forget()
			return
		}
		tr.P.Revision = up.Revision
		next = tr
	default:
		a.forget()
		return
	}
	if a.apply(ctx, next.P) {
		a.mu.Lock()
		a.tracked = next
		a.mu.Unlock()
	}
}

// forget drops the current program, so the next poll asks for a whole one.
func (a *Agent) forget() {
	a.mu.Lock()
	a.prog, a.tracked = nil, nil
	a.mu.Unlock()
}

// apply applies prog and reports the outcome; it says whether it applied.
func (a *Agent) apply(ctx context.Context, prog *openapi.Program) bool {
	start := time.Now()
	res, err := a.dp.Apply(ctx, prog)
	st := openapi.NodeStatus{AppliedRevision: prog.Revision, Digest: prog.Digest, Ports: withIDs(prog, res.Ports)}
	if err != nil {
		a.log.Error("apply failed; will retry", "revision", prog.Revision, "err", err)
		st.Error = err.Error()
		a.mu.Lock()
		st.AppliedRevision = a.status.AppliedRevision
		a.status = st
		a.mu.Unlock()
		a.report(ctx)
		return false
	}
	warmNeighbors(a.cfg.UnderlayBridge, a.cfg.Address, prog)
	a.log.Info("applied", "revision", prog.Revision, "digest", prog.Digest, "took", time.Since(start), "summary", res.Summary)
	a.mu.Lock()
	a.prog, a.status = prog, st
	a.mu.Unlock()
	a.report(ctx)
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

// report posts the last status; it is also the heartbeat.
func (a *Agent) report(ctx context.Context) {
	a.mu.Lock()
	st := a.status
	a.mu.Unlock()
	if st.Ports == nil {
		st.Ports = []openapi.PortStatus{}
	}
	if err := a.api.report(ctx, st); err != nil && ctx.Err() == nil {
		a.log.Debug("report failed", "err", err)
	}
}

// resync compares the host with the last applied program and re-applies it
// when anything drifted.
func (a *Agent) resync(ctx context.Context) {
	a.mu.Lock()
	prog := a.prog
	a.mu.Unlock()
	if prog == nil {
		return
	}
	// The underlay bridge's flow lives in ovs-vswitchd only: an OVS restart
	// wipes it (and with it every tunnel), so check it here too.
	if a.cfg.UnderlayIface != "" {
		if err := a.dp.EnsureUnderlay(ctx, a.cfg.UnderlayIface, a.cfg.UnderlayPrefix); err != nil {
			a.log.Warn("resync: underlay", "err", err)
		}
	}
	warmNeighbors(a.cfg.UnderlayBridge, a.cfg.Address, prog)
	obs, err := a.dp.Observe(ctx)
	if err != nil {
		a.log.Warn("resync: observe failed", "err", err)
		return
	}
	if len(obs.Drift) == 0 {
		a.mu.Lock()
		a.status.Ports = withIDs(prog, obs.Ports)
		a.mu.Unlock()
		return
	}
	a.log.Warn("resync: the host drifted from its program; repairing", "drift", obs.Drift)
	a.apply(ctx, prog)
}
