package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// contract enforces openapi.yaml on every request before its handler runs,
// once, at the boundary: every path and query parameter must be UTF-8
// without NUL (PostgreSQL text holds neither), so must every string of a
// JSON body; the body must be of a declared content type (else 415) and
// at most MaxBody bytes; parameters and bodies must match their schemas.
// Handlers and the store still check what the schema cannot say (a CIDR's
// host bits, a name in use), but never see input the contract refuses.
type contract struct {
	router routers.Router
	opts   *openapi3filter.Options
	doc    *openapi3.T
}

func newContract() (*contract, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.yaml: %w", err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// The body reaches the handler as the client sent it.
		SkipSettingDefaults: true,
		// Read-only fields are compared with the stored object by the
		// update handlers (readOnlyChanged): sending them back unchanged is fine.
		ExcludeReadOnlyValidations: true,
		SchemaValidationOptions:    []openapi3.SchemaValidationOption{openapi.StringFormats()},
	}
	return &contract{router: router, opts: opts, doc: doc}, nil
}

// check refuses a request the contract declares invalid, with the problem
// naming the parameter or body field.
func (k *contract) check(c *gin.Context) error {
	for _, p := range c.Params {
		if err := textParam(p.Key, p.Value); err != nil {
			return err
		}
	}
	for key, vals := range c.Request.URL.Query() {
		if err := textParam("query parameter name", key); err != nil {
			return err
		}
		for _, v := range vals {
			if err := textParam(key, v); err != nil {
				return err
			}
		}
	}
	if err := bufferBody(c); err != nil {
		return err
	}
	route, params, err := k.router.FindRoute(c.Request)
	if err != nil {
		return nil // not in the contract: gin answers 404/405 or the handler decides
	}
	// The validator sees the body without its optional zero values: in
	// this API an optional "", 0 or null means "absent" (the default), as
	// Go clients send them.
	req := c.Request
	if body, ok := sentBody(req); ok {
		if schema := bodySchema(route, req); schema != nil {
			pruned := withoutZeros(body, schema)
			req = req.Clone(req.Context())
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(pruned)), nil }
			req.Body, _ = req.GetBody()
			req.ContentLength = int64(len(pruned))
		}
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: k.opts}
	return contractProblem(openapi3filter.ValidateRequest(context.Background(), in))
}

// sentBody returns the body bufferBody kept.
func sentBody(r *http.Request) ([]byte, bool) {
	if r.GetBody == nil || r.ContentLength <= 0 {
		return nil, false
	}
	rc, err := r.GetBody()
	if err != nil {
		return nil, false
	}
	b, err := io.ReadAll(rc)
	return b, err == nil
}

// bodySchema is the schema of the request body of route in r's content type.
func bodySchema(route *routers.Route, r *http.Request) *openapi3.Schema {
	rb := route.Operation.RequestBody
	if rb == nil || rb.Value == nil {
		return nil
	}
	mt := rb.Value.Content.Get(r.Header.Get("Content-Type"))
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// withoutZeros drops the optional object properties whose value is "", 0
// or null, at any depth. A body that is not JSON is returned as it is.
func withoutZeros(body []byte, schema *openapi3.Schema) []byte {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return body
	}
	out, err := json.Marshal(pruneZeros(v, schema))
	if err != nil {
		return body
	}
	return out
}

func pruneZeros(v any, s *openapi3.Schema) any {
	s = unwrapAllOf(s)
	if s == nil {
		return v
	}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			switch {
			case (e == nil || e == "" || e == float64(0)) && !slices.Contains(s.Required, k):
				delete(t, k)
			case s.Properties[k] != nil:
				t[k] = pruneZeros(e, s.Properties[k].Value)
			case s.AdditionalProperties.Schema != nil:
				t[k] = pruneZeros(e, s.AdditionalProperties.Schema.Value)
			}
		}
	case []any:
		if s.Items != nil {
			for i, e := range t {
				t[i] = pruneZeros(e, s.Items.Value)
			}
		}
	}
	return v
}

// unwrapAllOf returns the schema a property wraps in a one-element allOf
// (how the contract adds a description to a $ref).
func unwrapAllOf(s *openapi3.Schema) *openapi3.Schema {
	for s != nil && len(s.AllOf) == 1 && len(s.Properties) == 0 && s.Items == nil {
		s = s.AllOf[0].Value
	}
	return s
}

// textParam refuses a parameter PostgreSQL could not store as text.
func textParam(name, v string) error {
	switch {
	case !utf8.ValidString(v):
		return problem.Invalid(name, "%s is not valid UTF-8", name)
	case strings.ContainsRune(v, 0):
		return problem.Invalid(name, "%s contains a NUL character", name)
	}
	return nil
}

// bufferBody reads a request body whole (at most MaxBody bytes), refuses
// NUL in any of its JSON strings, and puts it back for the validator and
// the handler.
func bufferBody(c *gin.Context) error {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, r.Body, MaxBody))
	r.Body.Close()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return problem.TooLarge("the body is over %d bytes", MaxBody)
	case err != nil:
		return problem.Invalid("", "reading the body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	if field, ok := nulString(body); ok {
		return problem.Invalid(field, "%s contains a NUL character (\\u0000)", orBody(field))
	}
	return nil
}

func orBody(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

// nulString finds the first string of a JSON document that holds a NUL,
// and returns its path as the API names fields ("ports[0].name"; for a key,
// the object holding it). Malformed JSON is left to the decoder to explain.
func nulString(body []byte) (string, bool) {
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return "", false
	}
	type frame struct {
		obj     bool
		wantKey bool
		key     string
		idx     int
	}
	var stack []*frame
	// path names the value at stack[:n].
	path := func(n int) string {
		var b strings.Builder
		for _, f := range stack[:n] {
			if f.obj {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.idx)
			}
		}
		return b.String()
	}
	// valueDone marks the end of a value in the enclosing container.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if top != nil && top.obj && top.wantKey {
			top.key, _ = tok.(string)
			top.wantKey = false
			if strings.ContainsRune(top.key, 0) {
				return path(len(stack) - 1), true // the object holding the key
			}
			continue
		}
		if top != nil && !top.obj {
			top.idx++
		}
		switch t := tok.(type) {
		case json.Delim:
			stack = append(stack, &frame{obj: t == '{', wantKey: t == '{', idx: -1})
		case string:
			if strings.ContainsRune(t, 0) {
				return path(len(stack)), true
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// contractProblem turns a kin-openapi validation error into the problem
// the client gets.
func contractProblem(err error) error {
	if err == nil {
		return nil
	}
	if me, ok := err.(openapi3.MultiError); ok && len(me) > 0 {
		err = me[0]
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		var se *openapi3filter.SecurityRequirementsError
		if errors.As(err, &se) {
			return nil // authentication is the authenticate middleware's
		}
		return problem.Invalid("", "%v", err)
	}
	switch {
	case re.Parameter != nil:
		return problem.Invalid(re.Parameter.Name, "%s %q: %s", re.Parameter.In, re.Parameter.Name, cause(re))
	case re.RequestBody == nil:
		return problem.Invalid("", "%v", err)
	case strings.HasPrefix(re.Reason, "header Content-Type has unexpected value"):
		return problem.UnsupportedMediaType("this operation takes a body of type %s, not %q",
			strings.Join(mediaTypes(re.RequestBody), " or "), re.Input.Request.Header.Get("Content-Type"))
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return problem.Invalid("", "a JSON body is required")
	}
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		field := fieldPath(se.JSONPointer())
		return problem.Invalid(field, "%s: %s", orBody(field), se.Reason)
	}
	return problem.Invalid("", "%s: %s", re.Reason, cause(re))
}

func cause(re *openapi3filter.RequestError) string {
	if re.Err != nil {
		var se *openapi3.SchemaError
		if errors.As(re.Err, &se) {
			return se.Reason
		}
		return re.Err.Error()
	}
	return re.Reason
}

// mediaTypes lists the content types a request body may have.
func mediaTypes(rb *openapi3.RequestBody) []string {
	var out []string
	for mt := range rb.Content {
		out = append(out, mt)
	}
	slices.Sort(out)
	return out
}

// fieldPath renders a JSON pointer as the API names fields: ports[0].port.
func fieldPath(ptr []string) string {
	var b strings.Builder
	for _, p := range ptr {
		if _, err := strconv.Atoi(p); err == nil {
			fmt.Fprintf(&b, "[%s]", p)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// putSchema is the body schema of the PUT operation at path (e.g.
// /api/v1/hosts/{ref}): the whole object as a client may write it.
func (k *contract) putSchema(path string) *openapi3.Schema {
	item := k.doc.Paths.Find(path)
	if item == nil || item.Put == nil || item.Put.RequestBody == nil {
		return nil
	}
	mt := item.Put.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// ignoredOnInput are read-only properties the store changes on its own
// when another field changes (a move changes a container's ipBlock): an
// update may send them with any value, which is ignored, as on create, so
// a body read before such a change and sent back after it is no 400.
var ignoredOnInput = map[string]bool{"ipBlock": true}

// readOnlyFields names the read-only properties of the object at path that
// an update may not change (all but ignoredOnInput).
func (k *contract) readOnlyFields(path string) []string {
	var out []string
	if schema := k.putSchema(path); schema != nil {
		for name, p := range schema.Properties {
			if p.Value != nil && p.Value.ReadOnly && !ignoredOnInput[name] {
				out = append(out, name)
			}
		}
	}
	return out
}

// checkObject validates an object a merge patch produced (obj, JSON)
// against the schema a PUT at path would be held to: a patch may not make
// what a whole replacement may not.
func (k *contract) checkObject(path string, obj []byte) error {
	schema := k.putSchema(path)
	if schema == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(withoutZeros(obj, schema), &v); err != nil {
		return jsonProblem(err)
	}
	err := schema.VisitJSON(v, openapi3.VisitAsRequest(), openapi3.DisableReadOnlyValidation(), openapi.StringFormats())
	if err == nil {
		return nil
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		field := fieldPath(se.JSONPointer())
		return problem.Invalid(field, "%s: %s", orBody(field), se.Reason)
	}
	return problem.Invalid("", "%v", err)
}
