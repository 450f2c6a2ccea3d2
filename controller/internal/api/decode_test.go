package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// A type error inside an embedded struct names the API field, not the Go
// path encoding/json reports (Meta.revision).
func TestJSONProblemNamesAPIFields(t *testing.T) {
	for body, field := range map[string]string{
		`{"revision": "x"}`:             "revision",
		`{"name": 5}`:                   "name",
		`{"addresses": {"total": "x"}}`: "addresses.total",
	} {
		var n openapi.Network
		pe, ok := problem.As(jsonProblem(json.Unmarshal([]byte(body), &n)))
		if !ok || pe.Field != field {
			t.Errorf("%s: problem %+v, want field %q", body, pe, field)
		}
	}
}

func TestNULStringPaths(t *testing.T) {
	for body, want := range map[string]string{
		`{"a": "x\u0000"}`:                        "a",
		`{"a": [1, {"b": "\u0000"}]}`:             "a[1].b",
		`{"a": {"b": {}}, "c": ["x", "y\u0000"]}`: "c[1]",
		`{"l": {"k\u0000": "v"}}`:                 "l",
		`["\u0000"]`:                              "[0]",
		`"\u0000"`:                                "",
		`{"a": "\\u0000"}`:                        "-",
		`{"a": "x"`:                               "-",
	} {
		got, ok := nulString([]byte(body))
		if !ok {
			got = "-"
		}
		if got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

// FuzzNULString: the scan never panics, and finds a NUL whenever the
// decoded document holds one.
func FuzzNULString(f *testing.F) {
	for _, s := range []string{`{"netns": "/run/netns/a\u0000"}`, `{"selector": "app=\u0000"}`, `{"ports": [{"name": "\u0000"}]}`, `[[[`, `{"a":"\\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, found := nulString(body)
		var v any
		if json.Unmarshal(body, &v) == nil && hasNUL(v) && !found {
			t.Fatalf("missed the NUL in %q", body)
		}
	})
}

func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		for _, r := range x {
			if r == 0 {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if hasNUL(k) || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// BenchmarkContractCheck is what the contract costs one request: a
// container create, a list with a selector, and the node protocol's
// report and long poll.
func BenchmarkContractCheck(b *testing.B) {
	k, err := newContract()
	if err != nil {
		b.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	body := `{"name":"web-1","network":"blue","host":"h1","labels":{"app":"web","tier":"fe"},"netns":"/run/netns/web-1"}`
	for name, mk := range map[string]func() *http.Request{
		"create": func() *http.Request {
			r := httptest.NewRequest("POST", "/api/v1/containers", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			return r
		},
		"list": func() *http.Request {
			return httptest.NewRequest("GET", "/api/v1/containers?selector=app%3Dweb&limit=100&network=blue", nil)
		},
		// The node protocol, ten of each per change at 10 hosts: an
		// agent's report with nothing changed, and its next long poll.
		"node-status": func() *http.Request {
			r := httptest.NewRequest("POST", "/api/v1/nodes/h1/status", strings.NewReader(
				`{"appliedRevision":1647,"digest":"39c19cbb4ea4954df27a4e8dff3d48d2","ports":[],"portsUnchanged":true}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		},
		"node-poll": func() *http.Request {
			return httptest.NewRequest("GET", "/api/v1/nodes/h1/program?digest=39c19cbb4ea4954df27a4e8dff3d48d2&revision=1647&timeout=30s", nil)
		},
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				c, _ := gin.CreateTestContext(httptest.NewRecorder())
				c.Request = mk()
				if err := k.check(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
