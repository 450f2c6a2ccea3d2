package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// ProblemContentType is the media type of every error body.
const ProblemContentType = "application/problem+json"

// fail answers with err as problem+json: a *problem.Error as it is,
// anything else as a 500 whose cause is logged, not shown.
func fail(c *gin.Context, err error) {
	pe, ok := problem.As(err)
	if !ok {
		c.Set("error", err.Error())
		pe = &problem.Error{Status: http.StatusInternalServerError, Slug: "internal", Title: "Internal error",
			Detail: "the controller failed to handle the request; see its log"}
	}
	body, _ := json.Marshal(pe.Body(c.Request.URL.Path))
	c.Abort()
	c.Data(pe.Status, ProblemContentType, body)
}

// readBody reads at most MaxBody bytes.
func readBody(c *gin.Context) ([]byte, error) {
	if c.Request.Body == nil {
		return nil, problem.Invalid("", "a JSON body is required")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, problem.TooLarge("the body is over %d bytes", MaxBody)
	}
	if err != nil {
		return nil, problem.Invalid("", "reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, problem.Invalid("", "a JSON body is required")
	}
	return body, nil
}

// jsonProblem explains a JSON decoding error, naming the field when it can.
func jsonProblem(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return problem.Invalid(typeErr.Field, "%s must be %s, not a JSON %s", typeErr.Field, typeErr.Type.String(), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return problem.Invalid("", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem.Invalid(field, "unknown field %q", field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Invalid("", "the JSON body is incomplete")
	}
	return problem.Invalid("", "malformed JSON: %v", err)
}

func notFoundRoute(c *gin.Context) error {
	return problem.NotFound("no route %s %s", c.Request.Method, c.Request.URL.Path)
}

func methodNotAllowed(c *gin.Context) error {
	return &problem.Error{Status: http.StatusMethodNotAllowed, Slug: "method-not-allowed", Title: "Method not allowed",
		Detail: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)}
}

func unavailableProblem(err error) error {
	return problem.Unavailable("not ready: %v", err)
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
