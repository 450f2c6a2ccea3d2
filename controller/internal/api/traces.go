package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/trace"
	"github.com/switchyard/switchyard/openapi"
)

// Tracer is what POST /traces needs from the node layer (nodes.Manager):
// the intent and programs, the agents' acks, and jobs run by agents.
type Tracer interface {
	TraceEnv(ctx context.Context) (trace.Env, error)
	Applied(host string) (program, applied int64, known bool)
	RunJob(ctx context.Context, host string, job openapi.NodeJob) (openapi.NodeJobResult, error)
}

// JobHandler serves the node protocol's job routes (nodes.Handler).
type JobHandler interface {
	Jobs(c *gin.Context)
	JobResult(c *gin.Context)
}

// TraceJobTimeout bounds how long a trace waits for the agents' switch
// traces and probe.
var TraceJobTimeout = 5 * time.Second

// Probe rate limit, per token: a bucket of probeBurst probes refilled at
// one per probeEvery.
const (
	probeBurst = 5
	probeEvery = 2 * time.Second
)

// probeLimiter is a token bucket per API token.
type probeLimiter struct {
	mu      sync.Mutex
	buckets map[string]*probeBucket
}

type probeBucket struct {
	tokens float64
	at     time.Time
}

// take spends one probe of key's bucket, or says how long until one is
// available.
func (l *probeLimiter) take(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*probeBucket{}
	}
	b := l.buckets[key]
	if b == nil {
		b = &probeBucket{tokens: probeBurst, at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(probeBurst, b.tokens+float64(now.Sub(b.at))/float64(probeEvery))
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(probeEvery))
}

// traceRequest answers POST /traces: the intent and compiled layers from the
// node layer's compiler, the realized layer from each path host's agent (an
// ofproto/trace job, read-only) and its acks, and with probe a live probe
// by the source host's agent; then the comparison and conclusion
// (package trace).
func (s *Server) traceRequest(c *gin.Context) {
	// A trace writes nothing: it gives back the write slot admission
	// control took for its POST (admission.go) rather than hold it while
	// the agents answer.
	releaseAdmission(c)
	var req openapi.TraceRequest
	if err := decode(c, &req); err != nil {
		fail(c, err)
		return
	}
	tracer, ok := s.Realizer.(Tracer)
	if !ok {
		fail(c, problem.Unavailable("this controller cannot trace (no node layer)"))
		return
	}
	plan, err := computeTrace(c.Request.Context(), tracer, req)
	if err != nil {
		fail(c, err)
		return
	}
	if req.Probe {
		if ok, wait := s.probes.take(token(c).ID, time.Now()); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			c.Header("Retry-After", strconv.Itoa(secs))
			fail(c, &problem.Error{Status: http.StatusTooManyRequests, Slug: "rate-limited", Title: "Too many requests", Field: "probe",
				Detail: "live probes are limited per token (" + strconv.Itoa(probeBurst) + ", then one every " + probeEvery.String() + "): retry in " + strconv.Itoa(secs) + "s, or trace without probe"})
			return
		}
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), TraceJobTimeout)
	defer cancel()
	realize(ctx, tracer, plan, req.Probe)
	c.JSON(http.StatusOK, plan.Finish())
}

// computeTrace computes the intent and compiled layers, again when the
// intent moved on while it read the programs.
func computeTrace(ctx context.Context, tracer Tracer, req openapi.TraceRequest) (*trace.Plan, error) {
	var err error
	for range 3 {
		var env trace.Env
		if env, err = tracer.TraceEnv(ctx); err != nil {
			return nil, err
		}
		var plan *trace.Plan
		if plan, err = trace.Compute(env, req); err == nil {
			return plan, nil
		}
		if pe, ok := problem.As(err); !ok || pe.Status != http.StatusServiceUnavailable {
			return nil, err
		}
	}
	return nil, err
}

// realize asks every path host's agent for its switch trace, and the source
// host's agent for the probe, all at once, within ctx.
func realize(ctx context.Context, tracer Tracer, plan *trace.Plan, probe bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, h := range plan.Hops {
		prog, applied, known := tracer.Applied(h.Host)
		plan.SetApplied(i, prog, applied, known)
		job := h.Job
		wg.Go(func() {
			r, err := tracer.RunJob(ctx, h.Host, openapi.NodeJob{Kind: openapi.NodeJobTrace, Trace: &job})
			status, out, why := jobOutcome(r, err)
			if status == "ok" && r.Trace != nil {
				out = r.Trace.Output
			}
			mu.Lock()
			defer mu.Unlock()
			plan.SetSwitch(i, status, out, why)
		})
	}
	if probe {
		host, job := plan.ProbeJob()
		wg.Go(func() {
			live := &openapi.TraceLive{Status: "unavailable", Host: host, Detail: "the source cannot be probed (an SCTP probe, or no container)"}
			if job != nil {
				start := time.Now()
				r, err := tracer.RunJob(ctx, host, openapi.NodeJob{Kind: openapi.NodeJobProbe, Probe: job})
				status, _, why := jobOutcome(r, err)
				live = &openapi.TraceLive{Status: status, Host: host, Detail: why, Micros: time.Since(start).Microseconds()}
				if status == "ok" && r.Probe != nil {
					live.Status, live.Detail, live.Micros = r.Probe.Outcome, r.Probe.Detail, r.Probe.Micros
				} else if status == "ok" {
					live.Status, live.Detail = "error", "the agent answered without a probe result"
				}
			}
			mu.Lock()
			defer mu.Unlock()
			plan.SetLive(live)
		})
	}
	wg.Wait()
}

// jobOutcome maps a job's answer to a layer status: ok, unavailable,
// timeout or error.
func jobOutcome(r openapi.NodeJobResult, err error) (status, out, why string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return "timeout", "", "the agent did not answer within " + TraceJobTimeout.String()
	case err != nil:
		return "unavailable", "", err.Error()
	case r.Status != "ok":
		return "error", "", r.Error
	}
	return "ok", "", ""
}
