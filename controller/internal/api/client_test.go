package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi/specvalidate"
)

// env is one test's database, controller and spec-checked client.
type env struct {
	t     *testing.T
	ctl   *testenv.Controller
	http  *http.Client
	db    string
	token string // the token requests use unless told otherwise
}

func newEnv(t *testing.T, configure func(*api.Server)) *env {
	t.Helper()
	db := testenv.DatabaseURL(t)
	ctl := testenv.Start(t, db, configure)
	v, err := specvalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	client := testenv.Client(func(rt http.RoundTripper) http.RoundTripper { return v.Transport(t, rt) })
	return &env{t: t, ctl: ctl, http: client, db: db, token: testenv.AdminToken}
}

// resp is an answer, read whole.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem decodes a problem+json answer.
func (r resp) problem(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json; body %s", ct, r.Body)
	}
	var p map[string]any
	r.decode(t, &p)
	return p
}

type reqOpt func(*http.Request)

func withToken(tok string) reqOpt {
	return func(r *http.Request) {
		if tok == "" {
			r.Header.Del("Authorization")
		} else {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends a request; body may be nil, a string, []byte or any JSON value.
func (e *env) do(method, path string, body any, opts ...reqOpt) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ctl.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	for _, o := range opts {
		o(req)
	}
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{Status: res.StatusCode, Header: res.Header, Body: data}
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path string, body any, opts ...reqOpt) resp {
	e.t.Helper()
	r := e.do(method, path, body, opts...)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// wantProblem checks a problem answer's status and field.
func (e *env) wantProblem(r resp, status int, field string) map[string]any {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	p := r.problem(e.t)
	if int(p["status"].(float64)) != status || p["type"] == "" || p["title"] == "" {
		e.t.Fatalf("problem body %v lacks type/title/status", p)
	}
	if field != "" && p["field"] != field {
		e.t.Fatalf("problem field %v, want %q; body %s", p["field"], field, r.Body)
	}
	return p
}

// revision returns the global revision.
func (e *env) revision() int64 {
	e.t.Helper()
	var v struct {
		Revision int64 `json:"revision"`
	}
	e.must(200, "GET", "/api/v1/revision", nil).decode(e.t, &v)
	return v.Revision
}

// seed creates a network blue (10.10.0.0/24) and hosts h1, h2.
func (e *env) seed() {
	e.t.Helper()
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "blue", "cidr": "10.10.0.0/24"})
	e.must(201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"})
	e.must(201, "POST", "/api/v1/hosts", map[string]any{"name": "h2", "address": "192.168.200.12", "tunnelType": "vxlan"})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
