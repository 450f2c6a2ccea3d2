// Package problem defines the errors Switchyard returns to API clients, as
// RFC 9457 problem details. Store and API code return *problem.Error for every
// failure a client caused; anything else is a 500. A problem may carry an
// internal Cause (a database error, say): it is for the log only and never
// rendered into the body. It must not know about HTTP routing or the database.
package problem

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/switchyard/switchyard/openapi"
)

// TypeBase prefixes every problem type URI.
const TypeBase = "https://switchyard.dev/problems/"

// Error is a client-visible failure.
type Error struct {
	Status int
	Slug   string // problem type, after TypeBase
	Title  string
	Detail string
	Field  string
	// Extra is merged into the body (e.g. hosts still behind on a wait timeout).
	Extra map[string]any
	// Cause is the internal failure behind the problem: logged, never shown.
	Cause error
}

// WithCause sets the internal cause, for the log, and returns e.
func (e *Error) WithCause(err error) *Error {
	e.Cause = err
	return e
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Cause }

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Title, e.Detail, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Title, e.Detail)
}

// Body renders the problem+json body.
func (e *Error) Body(instance string) map[string]any {
	p := openapi.Problem{Type: TypeBase + e.Slug, Title: e.Title, Status: e.Status, Detail: e.Detail, Field: e.Field, Instance: instance}
	m := map[string]any{"type": p.Type, "title": p.Title, "status": p.Status}
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Field != "" {
		m["field"] = p.Field
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	for k, v := range e.Extra {
		m[k] = v
	}
	return m
}

func newf(status int, slug, title, field, format string, args ...any) *Error {
	return &Error{Status: status, Slug: slug, Title: title, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Invalid is a malformed value in the request (400).
func Invalid(field, format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "invalid", "Invalid value", field, format, args...)
}

// Conflict is a clash with existing state: a duplicate, an overlap, an address in use (409).
func Conflict(field, format string, args ...any) *Error {
	return newf(http.StatusConflict, "conflict", "Conflict", field, format, args...)
}

// Exhausted is a pool with nothing left to hand out (409).
func Exhausted(field, format string, args ...any) *Error {
	return newf(http.StatusConflict, "exhausted", "Address pool exhausted", field, format, args...)
}

// Unresolvable is a reference to an object that does not exist (422).
func Unresolvable(field, format string, args ...any) *Error {
	return newf(http.StatusUnprocessableEntity, "unresolvable-reference", "Reference to a missing object", field, format, args...)
}

// Unprocessable is a well-formed request whose fields cannot go together,
// e.g. a policy peer with both a selector and a cidr (422).
func Unprocessable(field, format string, args ...any) *Error {
	return newf(http.StatusUnprocessableEntity, "unprocessable", "Unprocessable combination", field, format, args...)
}

// NotFound is a missing object addressed by the URL (404).
func NotFound(format string, args ...any) *Error {
	return newf(http.StatusNotFound, "not-found", "Not found", "", format, args...)
}

// PreconditionFailed is an If-Match that does not match (412).
func PreconditionFailed(format string, args ...any) *Error {
	return newf(http.StatusPreconditionFailed, "precondition-failed", "Precondition failed", "If-Match", format, args...)
}

// Gone is a request for history that is no longer kept, e.g. events from
// before the event log's retention (410).
func Gone(field, format string, args ...any) *Error {
	return newf(http.StatusGone, "gone", "No longer available", field, format, args...)
}

// Unauthorized is a missing or unknown token (401).
func Unauthorized(format string, args ...any) *Error {
	return newf(http.StatusUnauthorized, "unauthorized", "Unauthorized", "", format, args...)
}

// Forbidden is a role that may not do this (403).
func Forbidden(format string, args ...any) *Error {
	return newf(http.StatusForbidden, "forbidden", "Forbidden", "", format, args...)
}

// TooLarge is a body over the limit (413).
func TooLarge(format string, args ...any) *Error {
	return newf(http.StatusRequestEntityTooLarge, "too-large", "Request body too large", "", format, args...)
}

// UnsupportedMediaType is a body of a content type the operation does not
// take (415).
func UnsupportedMediaType(format string, args ...any) *Error {
	return newf(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Content-Type", format, args...)
}

// Timeout is a wait that ran out (504).
func Timeout(format string, args ...any) *Error {
	return newf(http.StatusGatewayTimeout, "timeout", "Timed out", "", format, args...)
}

// Unavailable is a dependency that cannot be reached (503).
func Unavailable(format string, args ...any) *Error {
	return newf(http.StatusServiceUnavailable, "unavailable", "Service unavailable", "", format, args...)
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}
