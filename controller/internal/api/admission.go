package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// Admission control of writes. Each replica lets at most MaxInflightWrites
// API writes (POST, PUT, PATCH, DELETE under /api/v1) run at once; a write
// that finds every slot taken waits in line up to AdmissionWait, and is
// answered 429 problem+json with Retry-After when none frees up in time.
// So a burst above what the store can commit gets quick, explicit refusals
// that clients retry, instead of a queue that grows until every request
// times out. A write with ?wait=realized gives its slot back once it is
// committed: waiting for the hosts costs the store nothing. The node
// protocol (/api/v1/nodes/...) is never refused: agents' reports are what
// lets the system converge. Reads are not limited.

// Admission defaults.
const (
	DefaultMaxInflightWrites = 64
	DefaultAdmissionWait     = time.Second
)

// admissionKey is the gin context key of the write's release func.
const admissionKey = "switchyard.admission.release"

// admission is the semaphore of in-flight writes.
type admission struct {
	slots    chan struct{}
	wait     time.Duration
	rejected prometheus.Counter
	inflight prometheus.GaugeFunc
}

func newAdmission(max int, wait time.Duration) *admission {
	if max <= 0 {
		max = DefaultMaxInflightWrites
	}
	if wait <= 0 {
		wait = DefaultAdmissionWait
	}
	a := &admission{slots: make(chan struct{}, max), wait: wait,
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_api_writes_rejected_total",
			Help: "API writes refused with 429 because every write slot stayed taken (admission control).",
		})}
	a.inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_api_writes_inflight", Help: "API writes running (admission control).",
	}, func() float64 { return float64(len(a.slots)) })
	return a
}

// limited reports whether the request takes a write slot.
func limited(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	p := r.URL.Path
	return strings.HasPrefix(p, "/api/v1/") && !strings.HasPrefix(p, "/api/v1/nodes/")
}

// admit is the middleware: it takes a slot for the request (waiting up to
// the admission wait) or answers 429.
func (s *Server) admit() gin.HandlerFunc {
	a := s.admission
	return func(c *gin.Context) {
		if !limited(c.Request) {
			c.Next()
			return
		}
		select {
		case a.slots <- struct{}{}:
		default:
			t := time.NewTimer(a.wait)
			select {
			case a.slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				a.rejected.Inc()
				c.Header("Retry-After", strconv.Itoa(retryAfter(a.wait)))
				fail(c, overloaded(cap(a.slots), a.wait))
				return
			case <-c.Request.Context().Done():
				t.Stop()
				c.Abort()
				return
			}
		}
		var once sync.Once
		release := func() { once.Do(func() { <-a.slots }) }
		c.Set(admissionKey, release)
		defer release()
		c.Next()
	}
}

// releaseAdmission gives the request's write slot back early (before a
// ?wait=realized wait); a no-op for requests without one.
func releaseAdmission(c *gin.Context) {
	if f, ok := c.Get(admissionKey); ok {
		f.(func())()
	}
}

// retryAfter is the Retry-After a refused client gets: the admission wait
// rounded up to whole seconds.
func retryAfter(wait time.Duration) int {
	return max(1, int((wait+time.Second-1)/time.Second))
}

func overloaded(slots int, wait time.Duration) *problem.Error {
	return &problem.Error{Status: http.StatusTooManyRequests, Slug: "overloaded", Title: "Too many writes",
		Detail: fmt.Sprintf("all %d write slots of this controller stayed taken for %v; retry after the delay in Retry-After", slots, wait)}
}
