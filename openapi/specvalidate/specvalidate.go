// Package specvalidate checks HTTP exchanges with a Switchyard controller
// against openapi.yaml, so integration tests catch every answer the contract
// does not describe: an undocumented route, method or status code, a wrong
// content type, a missing ETag, a body that does not match its schema.
//
// Wrap a test's HTTP client with Transport and every response is checked:
//
//	v, err := specvalidate.New()
//	client := &http.Client{Transport: v.Transport(t, http.DefaultTransport)}
//
// It is for tests only: production code must not import it, and it must not
// change what it checks (requests and responses pass through unmodified).
package specvalidate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/switchyard/switchyard/openapi"
)

// streamingType is the content type whose bodies never end; they are not read.
const streamingType = "text/event-stream"

// Validator checks responses against the spec. Safe for concurrent use.
type Validator struct {
	router routers.Router
	opts   *openapi3filter.Options
}

// New loads the embedded spec and builds a validator for it.
func New() (*Validator, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the spec: %w", err)
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi.StringFormats()},
	}
	return &Validator{router: router, opts: opts}, nil
}

// Validate reports how resp (whose body is respBody) breaks the spec for
// req, or nil when it does not. Bodies of text/event-stream answers are not
// checked, only their status and content type.
func (v *Validator) Validate(req *http.Request, resp *http.Response, respBody []byte) error {
	route, pathParams, err := v.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return fmt.Errorf("undocumented route %s %s", req.Method, req.URL.Path)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return fmt.Errorf("undocumented method %s for %s", req.Method, req.URL.Path)
	case err != nil:
		return fmt.Errorf("find route of %s %s: %w", req.Method, req.URL.Path, err)
	}
	documented := route.Operation.Responses.Status(resp.StatusCode)
	if documented == nil {
		return fmt.Errorf("undocumented status %d for %s %s", resp.StatusCode, req.Method, route.Path)
	}
	if len(documented.Value.Content) == 0 && len(respBody) > 0 {
		return fmt.Errorf("status %d of %s %s is documented without a body, got %d bytes", resp.StatusCode, req.Method, route.Path, len(respBody))
	}

	opts := v.opts
	ct := resp.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt == streamingType {
		if documented.Value.Content.Get(ct) == nil {
			return fmt.Errorf("status %d of %s %s: undocumented content type %q", resp.StatusCode, req.Method, route.Path, ct)
		}
		skipBody := *v.opts
		skipBody.ExcludeResponseBody = true
		opts = &skipBody
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      route,
			Options:    opts,
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(respBody)),
		Options: opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s -> %d: %w", req.Method, route.Path, resp.StatusCode, err)
	}
	return nil
}

// Check fails t (with t.Errorf) when resp breaks the spec. reqBody and
// respBody are quoted in the failure message.
func (v *Validator) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := v.Validate(req, resp, respBody); err != nil {
		t.Errorf("response breaks openapi.yaml: %v\nrequest: %s %s\n%s\nresponse: %s\n%s",
			err, req.Method, req.URL, clip(reqBody), resp.Status, clip(respBody))
	}
}

// Transport wraps base (http.DefaultTransport when nil) so that every
// response that passes through it is checked with Check. Response bodies are
// read whole before the response is returned (except event streams) and
// handed on unchanged.
func (v *Validator) Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{v: v, t: t, base: base}
}

type transport struct {
	v    *Validator
	t    testing.TB
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("specvalidate: read request body: %w", err)
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == streamingType {
		tr.v.Check(tr.t, req, reqBody, resp, nil)
		return resp, nil
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("specvalidate: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	tr.v.Check(tr.t, req, reqBody, resp, respBody)
	return resp, nil
}

// clip shortens a body for a failure message.
func clip(b []byte) string {
	const limit = 2048
	if len(b) > limit {
		return string(b[:limit]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}
