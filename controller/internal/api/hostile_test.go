package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// The issue's examples of input that reached PostgreSQL unchecked: each is
// a 400 naming the field, and the revision does not move.
func TestIssueExamplesAreClientErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	node := e.newToken("node-h1", "node", "h1")
	cases := []struct {
		name, method, path string
		body               string
		field              string
		opts               []reqOpt
	}{
		{"NUL in netns", "POST", "/api/v1/containers", `{"name":"c","network":"blue","host":"h1","netns":"/run/netns/a\u0000"}`, "netns", nil},
		{"NUL in policy selector", "POST", "/api/v1/policies", `{"name":"p","network":"blue","selector":"app=\u0000"}`, "selector", nil},
		{"NUL in a node status port name", "POST", "/api/v1/nodes/h1/status",
			`{"appliedRevision":0,"digest":"","ports":[{"name":"x\u0000","container":"c","containerId":"` + zeroUUID + `","ofport":1,"up":true}]}`,
			"ports[0].name", []reqOpt{withToken(node)}},
		{"NUL in a path", "GET", "/api/v1/containers/a%00", "", "ref", nil},
		{"NUL in a query", "GET", "/api/v1/containers?network=%00", "", "network", nil},
		{"NUL in a selector", "GET", "/api/v1/containers?selector=app%3D%00", "", "selector", nil},
		{"forged continue", "GET", "/api/v1/containers?continue=" + forged(`{"n":"a","i":"x"}`), "", "continue", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.revision()
			var body any
			if c.body != "" {
				body = c.body
			}
			e.wantProblem(e.do(c.method, c.path, body, c.opts...), 400, c.field)
			if e.revision() != before {
				t.Fatal("a refused request wrote")
			}
		})
	}
}

const zeroUUID = "00000000-0000-0000-0000-000000000000"

func forged(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// A continue token is accepted only as the server wrote it: anything else
// is a 400 naming `continue`, on every list, and genuine tokens page.
func TestContinueTokensAreTamperEvident(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for i := range 3 {
		e.must(201, "POST", "/api/v1/networks", map[string]any{"name": fmt.Sprintf("n%d", i), "cidr": fmt.Sprintf("10.50.%d.0/24", i)})
	}
	var page openapi.List[openapi.Network]
	e.must(200, "GET", "/api/v1/networks?limit=2", nil).decode(t, &page)
	if page.Continue == "" {
		t.Fatal("no continue token")
	}
	e.must(200, "GET", "/api/v1/networks?limit=2&continue="+url.QueryEscape(page.Continue), nil)
	tokens := []string{
		"garbage!",
		forged(`{"n":"a","i":"not-a-uuid"}`),
		forged(`{"n":"a\u0000","i":"` + zeroUUID + `"}`),
		forged(`{"n":"` + strings.Repeat("a", 300) + `","i":"` + zeroUUID + `"}`),
		forged(`{"n":1,"i":"` + zeroUUID + `"}`),
		forged(`{"i":"` + zeroUUID + `", "n":"a"}`), // not as the server writes it
		base64.URLEncoding.EncodeToString([]byte(`{"n":"a","i":"` + zeroUUID + `"}`)),
		page.Continue + "A",
		"-1", "abc", "99999999999999999999999",
	}
	for _, o := range operations(t) {
		if !hasParam(o, "continue") {
			continue
		}
		for _, tok := range tokens {
			r := e.do("GET", o.url("", "", url.Values{"continue": {tok}}), nil)
			e.wantProblem(r, 400, "continue")
		}
	}
}

func hasParam(o operation, name string) bool {
	for _, p := range o.params {
		if p.Name == name {
			return true
		}
	}
	return false
}

// Numeric selectors (n>5) match as the Go evaluator does whatever the label
// values: a value that is not an int64 never matches and never fails the
// query, on every list and in services and policies.
func TestNumericSelectorsTakeAnyLabelValue(t *testing.T) {
	e := newEnv(t, nil)
	values := []string{"5", "6", "0042", "99999999999999999999", "9223372036854775807", "9223372036854775808", "abc", "1e3", "7.5"}
	for i, v := range values {
		e.must(201, "POST", "/api/v1/networks", map[string]any{"name": fmt.Sprintf("n%d", i), "cidr": fmt.Sprintf("10.60.%d.0/24", i), "labels": map[string]string{"n": v}})
	}
	for _, sel := range []string{"n>5", "n<100", "n>9223372036854775806", "n<9223372036854775807", "n>0"} {
		var page openapi.List[openapi.Network]
		e.must(200, "GET", "/api/v1/networks?selector="+url.QueryEscape(sel), nil).decode(t, &page)
		got := map[string]bool{}
		for _, n := range page.Items {
			got[n.Labels["n"]] = true
		}
		s := selector.MustParse(sel)
		for _, v := range values {
			if want := s.Matches(map[string]string{"n": v}); got[v] != want {
				t.Errorf("%s on n=%s: listed %v, Go evaluator %v", sel, v, got[v], want)
			}
		}
	}
	// Operations on one object get "h1" as its ref (a network's
	// reachability); those needing a port get one.
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "h1", "cidr": "10.61.0.0/24"})
	for _, o := range operations(t) {
		if hasParam(o, "selector") {
			q := url.Values{"selector": {"n>5"}}
			if hasParam(o, "port") {
				q.Set("port", "80")
			}
			e.must(200, "GET", o.url("", "", q), nil)
		}
	}
}

// /readyz and 5xx problems say what is wrong without the database's
// address, user or name; those go to the log.
func TestFailuresDoNotRevealInternals(t *testing.T) {
	secrets := []string{"sy-secret-user", "sy-secret-db", "127.0.0.1:1", "sy-secret-pw"}
	st, err := store.Open(t.Context(), "postgres://sy-secret-user:sy-secret-pw@127.0.0.1:1/sy-secret-db?connect_timeout=1", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var log bytes.Buffer
	srv := &api.Server{Store: st, Log: slog.New(slog.NewTextHandler(&log, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := httptest.NewServer(srv.Handler(ctx))
	defer ts.Close()
	for _, path := range []string{"/readyz", "/api/v1/networks"} {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer whatever")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(res.Body) //nolint:errcheck // test
		res.Body.Close()
		if res.StatusCode != 503 || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s: %d %s", path, res.StatusCode, body.String())
		}
		for _, s := range secrets {
			if strings.Contains(body.String(), s) {
				t.Errorf("%s reveals %q: %s", path, s, body.String())
			}
		}
	}
	if !strings.Contains(log.String(), "127.0.0.1") {
		t.Errorf("the log lacks the cause:\n%s", log.String())
	}
}

// The Bearer scheme name is case-insensitive (RFC 9110, 11.1).
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	e := newEnv(t, nil)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		e.must(200, "GET", "/api/v1/revision", nil, withHeader("Authorization", scheme+" "+e.token))
	}
	for _, h := range []string{"Basic " + e.token, "Bearer", "Bearer ", e.token, "Bearer" + e.token} {
		e.wantProblem(e.do("GET", "/api/v1/revision", nil, withHeader("Authorization", h)), 401, "")
	}
}

// A problem's field is the API's name of the field, never a Go path such
// as Meta.revision.
func TestProblemFieldsAreAPINames(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	for _, c := range []struct{ body, field string }{
		{`{"revision": "x"}`, "revision"},
		{`{"createdAt": 5}`, "createdAt"},
		{`{"mtu": "big"}`, "mtu"},
	} {
		e.wantProblem(e.do("PATCH", "/api/v1/networks/blue", c.body), 400, c.field)
		var whole, bad map[string]any
		e.must(200, "GET", "/api/v1/networks/blue", nil).decode(t, &whole)
		if err := jsonUnmarshal([]byte(c.body), &bad); err != nil {
			t.Fatal(err)
		}
		for k, v := range bad {
			whole[k] = v
		}
		e.wantProblem(e.do("PUT", "/api/v1/networks/blue", whole), 400, c.field)
	}
}
