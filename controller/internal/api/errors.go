package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/store"
)

// ProblemContentType is the media type of every error body.
const ProblemContentType = "application/problem+json"

// fail answers with err as problem+json: a *problem.Error as it is, a
// database that cannot serve now (store.Unavailable) as a 503 with
// Retry-After, anything else as a 500 whose cause is logged, not shown.
func fail(c *gin.Context, err error) {
	pe, ok := problem.As(err)
	if !ok {
		if u := store.Unavailable(err); u != nil {
			pe, ok = u, true
		}
	}
	if ok && pe.Status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", strconv.Itoa(store.RetryAfter))
	}
	switch {
	case !ok:
		c.Set("error", err.Error())
		pe = &problem.Error{Status: http.StatusInternalServerError, Slug: "internal", Title: "Internal error",
			Detail: "the controller failed to handle the request; see its log"}
	case pe.Cause != nil:
		c.Set("error", pe.Cause.Error())
	}
	body, _ := json.Marshal(pe.Body(c.Request.URL.EscapedPath()))
	c.Abort()
	c.Data(pe.Status, ProblemContentType, body)
}

func notFoundRoute(c *gin.Context) error {
	return problem.NotFound("no route %s %s", c.Request.Method, c.Request.URL.Path)
}

func methodNotAllowed(c *gin.Context) error {
	return &problem.Error{Status: http.StatusMethodNotAllowed, Slug: "method-not-allowed", Title: "Method not allowed",
		Detail: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)}
}

// unavailableProblem is a failed readiness check: its own problem when it
// has one, else a bare 503 with err kept for the log.
func unavailableProblem(err error) error {
	if _, ok := problem.As(err); ok {
		return err
	}
	return problem.Unavailable("not ready; see the controller's log").WithCause(err)
}

// recover turns a panic into a 500 problem and logs the stack.
func (s *Server) recover() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				s.Log.Error("panic", "path", c.Request.URL.Path, "panic", r, "stack", string(debug.Stack()))
				fail(c, fmt.Errorf("panic: %v", r))
			}
		}()
		c.Next()
	}
}

// Fail, Decode and Actor let other rooms' handlers (the node protocol) answer
// and read the way this package does.
var (
	Fail   = fail
	Decode = decode
	Actor  = actor
)
