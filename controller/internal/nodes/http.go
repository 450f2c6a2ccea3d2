package nodes

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// MaxPoll bounds one long-poll.
const MaxPoll = 5 * time.Minute

// Handler serves /api/v1/nodes/:host/... for a Manager. Authentication and
// the host scope are checked before it runs.
type Handler struct {
	M *Manager
	// Fail writes an error as problem+json (the api package's writer).
	Fail func(*gin.Context, error)
	// Decode reads a strict JSON body (the api package's reader).
	Decode func(*gin.Context, any) error
	// Actor names the caller for the audit log.
	Actor func(*gin.Context) string
}

// Register creates or updates the host named in the path.
func (h *Handler) Register(c *gin.Context) {
	var reg openapi.NodeRegistration
	if err := h.Decode(c, &reg); err != nil {
		h.Fail(c, err)
		return
	}
	host, err := h.M.st.RegisterHost(c.Request.Context(), h.Actor(c), c.Param("host"), reg)
	if err != nil {
		h.Fail(c, err)
		return
	}
	c.Header("ETag", `"`+strconv.FormatInt(host.Revision, 10)+`"`)
	c.JSON(http.StatusOK, host)
}

// Status takes an agent's report (also its heartbeat). Only a revision the
// controller sent to the host is accepted as applied (see checkReport). The
// health verdicts it carries go to the store (endpoint events) once the
// report landed.
func (h *Handler) Status(c *gin.Context) {
	var st openapi.NodeStatus
	if err := h.Decode(c, &st); err != nil {
		h.Fail(c, err)
		return
	}
	host := c.Param("host")
	if err := h.M.checkReport(c.Request.Context(), host, st); err != nil {
		h.Fail(c, err)
		return
	}
	if err := h.M.st.ReportStatus(c.Request.Context(), host, st); err != nil {
		if errors.Is(err, store.ErrUnknownHost) {
			err = problem.NotFound("host %q is not registered: register it first", host)
		}
		h.Fail(c, err)
		return
	}
	h.M.noteAck(store.NoticeOf(host, st))
	// Health verdicts: written only where they differ from the stored ones
	// (an unchanged report costs nothing).
	if err := h.M.st.ReportEndpointHealth(c.Request.Context(), host, st.Endpoints); err != nil {
		h.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// Program answers as soon as the host's program differs from the digest the
// agent has: with one delta when the agent's program is among its host's
// last maxDeltas programs (the deltas since composed), else with the whole
// program. With no change before the timeout it answers 204.
func (h *Handler) Program(c *gin.Context) {
	host := c.Param("host")
	digest := c.Query("digest")
	timeout := 30 * time.Second
	if t := c.Query("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 || d > MaxPoll {
			h.Fail(c, problem.Invalid("timeout", "timeout must be a duration of at most %s", MaxPoll))
			return
		}
		timeout = d
	}
	known := int64(-1) // the revision of the agent's program, when it says
	if r := c.Query("revision"); r != "" {
		v, err := strconv.ParseInt(r, 10, 64)
		if err != nil {
			h.Fail(c, problem.Invalid("revision", "revision must be a number"))
			return
		}
		known = v
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
	defer cancel()
	up, err := h.M.next(ctx, host, digest, known)
	switch {
	case err != nil:
		h.Fail(c, err)
	case up == nil:
		c.Status(http.StatusNoContent)
	default:
		c.JSON(http.StatusOK, up)
	}
}

// next waits until host's program differs from digest and returns the
// update, or nil when ctx ends first.
func (m *Manager) next(ctx context.Context, host, digest string, known int64) (*openapi.ProgramUpdate, error) {
	caughtUp := false
	for {
		up, ds, wake, err := m.peek(host, digest, known)
		if isNotFound(err) && !caughtUp {
			// The host may be newer than this replica's compiler (an agent
			// that just registered through another replica, or this one):
			// look again once the compiler has reached the store.
			caughtUp = true
			if err := m.reach(ctx); err != nil {
				return nil, nil
			}
			continue
		}
		if ds != nil {
			// Composed outside the lock: the kept deltas never change.
			return m.composed(host, up, ds)
		}
		if up != nil || err != nil {
			return up, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-wake:
		}
	}
}

// composed completes up with the composition of ds.
func (m *Manager) composed(host string, up *openapi.ProgramUpdate, ds []*openapi.ProgramDelta) (*openapi.ProgramUpdate, error) {
	if len(ds) == 1 {
		up.Delta = ds[0]
		m.metrics.updates.WithLabelValues("delta").Inc()
		return up, nil
	}
	d, err := program.Compose(ds...)
	if err != nil { // a bug: the history is a chain by construction
		m.log.Error("nodes: composing deltas; sending the whole program", "host", host, "err", err)
		return m.full(host)
	}
	up.Delta = d
	m.metrics.updates.WithLabelValues("composed").Inc()
	return up, nil
}

// full returns the update with host's whole program.
func (m *Manager) full(host string) (*openapi.ProgramUpdate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[host]
	if e == nil {
		return nil, problem.NotFound("host %q has no program: register it first", host)
	}
	return m.fullLocked(host, e)
}

// fullLocked builds host's whole program. The compiler builds it from its
// cached previous program and the changes since, updating its cache, so it
// runs under mu. Callers hold mu.
func (m *Manager) fullLocked(host string, e *hostEntry) (*openapi.ProgramUpdate, error) {
	p, err := m.program(host)
	if err != nil {
		return nil, err
	}
	m.metrics.updates.WithLabelValues("full").Inc()
	// A recompile may have changed the host's program: e is up to date.
	return &openapi.ProgramUpdate{Revision: e.rev, Full: true, Program: p}, nil
}

// peek returns the update for an agent at digest, or the deltas to compose
// into it (with up carrying the revision), or what to wait on: this host's
// program only, so other hosts' changes and acks do not wake it. Before the
// first load it waits for any progress.
func (m *Manager) peek(host, digest string, known int64) (*openapi.ProgramUpdate, []*openapi.ProgramDelta, <-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.hosts[host]
	if !m.ready {
		if e != nil {
			return nil, nil, e.changed, nil
		}
		return nil, nil, m.progress, nil
	}
	if e == nil {
		return nil, nil, nil, problem.NotFound("host %q has no program: register it first", host)
	}
	if e.digest == digest {
		if known >= 0 && known < e.rev {
			// The program changed and came back to what the agent has
			// (A -> B -> A while it was away): nothing to apply, but the
			// agent must learn the revision, or it never reports it and
			// the host stays unrealized (and ?wait=realized times out).
			return &openapi.ProgramUpdate{Revision: e.rev, Delta: &openapi.ProgramDelta{FromDigest: digest, Digest: digest}}, nil, nil, nil
		}
		return nil, nil, e.changed, nil
	}
	if ds := e.deltasFrom(digest); ds != nil {
		return &openapi.ProgramUpdate{Revision: e.rev}, ds, nil, nil
	}
	up, err := m.fullLocked(host, e)
	return up, nil, nil, err
}

func isNotFound(err error) bool {
	p, ok := problem.As(err)
	return ok && p.Status == http.StatusNotFound
}

// reach waits until the compiler has reached the store's current revision,
// or ctx ends.
func (m *Manager) reach(ctx context.Context) error {
	global, err := m.st.Revision(ctx)
	if err != nil {
		return err
	}
	for {
		m.mu.Lock()
		rev, progress := m.rev, m.progress
		m.mu.Unlock()
		if rev >= global {
			return nil
		}
		m.poke()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-progress:
		}
	}
}
