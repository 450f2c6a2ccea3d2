package nodes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/controller/internal/trace"
	"github.com/switchyard/switchyard/openapi"
)

// Jobs hands read-only jobs (switch traces, probes) to the agents that
// long-poll this replica for them (GET /nodes/{host}/jobs) and waits for
// their answers (POST /nodes/{host}/jobs/{id}/result). Jobs live in this
// replica's memory only: an agent polling another replica does not get
// them (Run answers ErrNoAgent). Safe for concurrent use.
type Jobs struct {
	mu    sync.Mutex
	hosts map[string]*jobHost
	waits map[string]*jobWait
}

type jobHost struct {
	queue   []openapi.NodeJob
	wake    chan struct{} // closed (and replaced) when jobs are queued
	polling int           // long-polls open now
	last    time.Time     // when the last one ended
}

type jobWait struct {
	host string
	done chan openapi.NodeJobResult // buffered: one answer
}

// MaxJobPoll bounds one jobs long-poll (under the server's write timeout).
const MaxJobPoll = 25 * time.Second

// agentGone is how long after its last poll an agent still counts as
// polling (it answers jobs between polls).
const agentGone = 10 * time.Second

// ErrNoAgent: the host's agent is not polling this replica for jobs.
var ErrNoAgent = errors.New("the host's agent is not polling this controller replica for jobs")

func (j *Jobs) host(name string) *jobHost {
	if j.hosts == nil {
		j.hosts, j.waits = map[string]*jobHost{}, map[string]*jobWait{}
	}
	h := j.hosts[name]
	if h == nil {
		h = &jobHost{wake: make(chan struct{})}
		j.hosts[name] = h
	}
	return h
}

// Run queues job for host's agent and waits for its answer until ctx ends
// (then the job is withdrawn; a late answer gets 404).
func (j *Jobs) Run(ctx context.Context, host string, job openapi.NodeJob) (openapi.NodeJobResult, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	job.ID = hex.EncodeToString(id[:])
	if dl, ok := ctx.Deadline(); ok {
		job.TimeoutMillis = max(1, int(time.Until(dl)/time.Millisecond))
	}
	w := &jobWait{host: host, done: make(chan openapi.NodeJobResult, 1)}
	j.mu.Lock()
	h := j.host(host)
	if h.polling == 0 && time.Since(h.last) > agentGone {
		j.mu.Unlock()
		return openapi.NodeJobResult{}, ErrNoAgent
	}
	h.queue = append(h.queue, job)
	j.waits[job.ID] = w
	close(h.wake)
	h.wake = make(chan struct{})
	j.mu.Unlock()
	select {
	case r := <-w.done:
		return r, nil
	case <-ctx.Done():
		j.mu.Lock()
		delete(j.waits, job.ID)
		for i, q := range h.queue {
			if q.ID == job.ID {
				h.queue = append(h.queue[:i], h.queue[i+1:]...)
				break
			}
		}
		j.mu.Unlock()
		return openapi.NodeJobResult{}, ctx.Err()
	}
}

// poll waits until host has jobs, or ctx ends, and hands them out.
func (j *Jobs) poll(ctx context.Context, host string) []openapi.NodeJob {
	j.mu.Lock()
	h := j.host(host)
	h.polling++
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		h.polling--
		h.last = time.Now()
		j.mu.Unlock()
	}()
	for {
		j.mu.Lock()
		if len(h.queue) > 0 {
			jobs := h.queue
			h.queue = nil
			j.mu.Unlock()
			return jobs
		}
		wake := h.wake
		j.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
	}
}

// answer delivers a result; false when no job of host has that id.
func (j *Jobs) answer(host, id string, r openapi.NodeJobResult) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	w := j.waits[id]
	if w == nil || w.host != host {
		return false
	}
	delete(j.waits, id)
	w.done <- r
	return true
}

// Jobs answers an agent's jobs long-poll.
func (h *Handler) Jobs(c *gin.Context) {
	timeout := 20 * time.Second
	if t := c.Query("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 || d > MaxJobPoll {
			h.Fail(c, problem.Invalid("timeout", "timeout must be a duration of at most %s", MaxJobPoll))
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
	defer cancel()
	jobs := h.M.jobs.poll(ctx, c.Param("host"))
	if len(jobs) == 0 {
		c.Status(http.StatusNoContent)
		return
	}
	c.JSON(http.StatusOK, openapi.NodeJobs{Jobs: jobs})
}

// JobResult takes an agent's answer to one of its host's jobs.
func (h *Handler) JobResult(c *gin.Context) {
	var r openapi.NodeJobResult
	if err := h.Decode(c, &r); err != nil {
		h.Fail(c, err)
		return
	}
	if !h.M.jobs.answer(c.Param("host"), c.Param("id"), r) {
		h.Fail(c, problem.NotFound("host %q has no job %q waiting (answered, withdrawn, or never given)", c.Param("host"), c.Param("id")))
		return
	}
	c.Status(http.StatusNoContent)
}

// RunJob runs job on host's agent (see Jobs.Run).
func (m *Manager) RunJob(ctx context.Context, host string, job openapi.NodeJob) (openapi.NodeJobResult, error) {
	return m.jobs.Run(ctx, host, job)
}

// errMoved: the compiler moved on while a trace read it.
var errMoved = problem.Unavailable("the intent changed while the trace read it: try again")

// TraceEnv waits until the compiler has applied every event committed (a
// trace sees the writes before it), then returns the compiler's intent and
// a reader of the hosts' programs at the same revision (a program read
// after the compiler moved on is an error: retry). Programs are built by
// the compiler under the manager's lock, one host at a time.
func (m *Manager) TraceEnv(ctx context.Context) (trace.Env, error) {
	if err := m.caughtUp(ctx); err != nil {
		return trace.Env{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ready {
		return trace.Env{}, problem.Unavailable("the controller has not loaded the intent yet")
	}
	snap := m.comp.Snapshot()
	rev := m.rev
	return trace.Env{Snap: snap, Program: func(host string) (*openapi.Program, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.rev != rev {
			return nil, errMoved
		}
		if m.hosts[host] == nil {
			return nil, problem.Unprocessable("host", "host %q has no program (no network is present on it)", host)
		}
		return m.program(host)
	}}, nil
}

// caughtUp waits until the compiler has applied every event committed so
// far (writes that record no event, tokens say, move the store's revision
// but not the compiler's, so reach would wait forever).
func (m *Manager) caughtUp(ctx context.Context) error {
	for {
		m.mu.Lock()
		rev, progress := m.rev, m.progress
		m.mu.Unlock()
		evs, err := m.st.EventsSince(ctx, rev, nil, 1)
		switch {
		case errors.Is(err, store.ErrEventsPruned): // Run reloads
		case err != nil || len(evs) == 0:
			return err
		}
		m.poke()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-progress:
		}
	}
}

// Applied returns the revision at which host's program last changed, the
// revision its agent last reported applied, and whether anything was heard
// from it.
func (m *Manager) Applied(host string) (program, applied int64, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.hosts[host]; e != nil {
		program = e.rev
	}
	a, ok := m.acks[host]
	return program, a.applied, ok
}
