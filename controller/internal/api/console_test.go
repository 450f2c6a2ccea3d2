package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

func TestWhoami(t *testing.T) {
	e := newEnv(t, nil)
	viewer := e.newToken("viewer1", "viewer", "")
	node := e.newToken("node-h1", "node", "h1")
	var me openapi.Token
	e.must(200, "GET", "/api/v1/whoami", nil, withToken(viewer)).decode(t, &me)
	if me.Name != "viewer1" || me.Role != openapi.RoleViewer || me.Secret != "" || me.ID == "" {
		t.Fatalf("whoami as viewer1: %+v", me)
	}
	e.must(200, "GET", "/api/v1/whoami", nil).decode(t, &me)
	if me.Role != openapi.RoleAdmin || me.Secret != "" {
		t.Fatalf("whoami as the bootstrap admin: %+v", me)
	}
	e.wantProblem(e.do("GET", "/api/v1/whoami", nil, withToken("")), 401, "")
	e.wantProblem(e.do("GET", "/api/v1/whoami", nil, withToken(node)), 403, "")
}

func TestConsoleServing(t *testing.T) {
	files := fstest.MapFS{
		"index.html":  {Data: []byte("<!doctype html><title>console</title>")},
		"app.js":      {Data: []byte("export {}")},
		"pages/x.js":  {Data: []byte("export const x = 1")},
		"favicon.svg": {Data: []byte("<svg/>")},
	}
	ctl := testenv.Start(t, testenv.DatabaseURL(t), func(s *api.Server) { s.Console = files })
	client := testenv.Client(nil)
	get := func(method, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ctl.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	for _, c := range []struct {
		path, want, ctype string
	}{
		{"/", "<title>console</title>", "text/html"},
		{"/containers/web-1", "<title>console</title>", "text/html"}, // a deep link
		{"/topology", "<title>console</title>", "text/html"},
		{"/app.js", "export {}", "text/javascript"},
		{"/pages/x.js", "export const x = 1", "text/javascript"},
		{"/index.html", "<title>console</title>", "text/html"},
	} {
		res, body := get("GET", c.path)
		if res.StatusCode != 200 || !strings.Contains(body, c.want) || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q %q", c.path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no CSP or ETag: %v", c.path, res.Header)
		}
	}
	// Revalidation by ETag.
	res, _ := get("GET", "/app.js")
	if res2, _ := get("GET", "/app.js", "If-None-Match", res.Header.Get("ETag")); res2.StatusCode != http.StatusNotModified {
		t.Errorf("GET /app.js with its ETag: %d, want 304", res2.StatusCode)
	}
	// Missing assets, the API and other methods stay problems.
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/missing.js", 404},
		{"GET", "/api/v1/nothing", 404},
		{"GET", "/api", 404},
		{"POST", "/containers/web-1", 404},
		{"GET", "/api/v1/networks", 401},
	} {
		res, body := get(c.method, c.path)
		if res.StatusCode != c.want || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %q %s, want %d problem", c.method, c.path, res.StatusCode, res.Header.Get("Content-Type"), body, c.want)
		}
	}
}

func TestConsoleAbsent(t *testing.T) {
	ctl := testenv.Start(t, testenv.DatabaseURL(t), nil)
	res, err := testenv.Client(nil).Get(ctl.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("GET / without a console: %d, want 404", res.StatusCode)
	}
}
