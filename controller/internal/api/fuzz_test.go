package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi/specvalidate"
)

// fuzzTarget is one controller with seeded objects, shared by the inputs
// of a fuzz target.
type fuzzTarget struct {
	url    string
	v      *specvalidate.Validator
	client *http.Client
	ops    []operation
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	ctl := testenv.Start(f, testenv.DatabaseURL(f), nil)
	v, err := specvalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	ft := &fuzzTarget{url: ctl.URL, v: v, client: testenv.Client(nil)}
	for _, o := range operations(f) {
		// The event stream never ends; it has fuzz targets of its own.
		if o.path != "/api/v1/events" {
			ft.ops = append(ft.ops, o)
		}
	}
	seed := func(method, path, body string) {
		if code := ft.send(f, method, path, "application/json", []byte(body)); code >= 300 {
			f.Fatalf("seed %s %s: %d", method, path, code)
		}
	}
	seed("POST", "/api/v1/networks", `{"name":"blue","cidr":"10.10.0.0/24","labels":{"n":"99999999999999999999"}}`)
	seed("POST", "/api/v1/hosts", `{"name":"h1","address":"192.168.200.11"}`)
	seed("POST", "/api/v1/containers", `{"name":"c1","network":"blue","host":"h1","labels":{"n":"7"}}`)
	seed("POST", "/api/v1/services", `{"name":"s1","network":"blue","selector":"n=7","ports":[{"port":80}],"healthCheck":{"protocol":"HTTP"}}`)
	seed("POST", "/api/v1/policies", `{"name":"p1","network":"blue"}`)
	return ft
}

// op finds the index of an operation, for seeds.
func (ft *fuzzTarget) op(method, path string) uint8 {
	for i, o := range ft.ops {
		if strings.EqualFold(o.method, method) && o.path == path {
			return uint8(i)
		}
	}
	panic("no operation " + method + " " + path)
}

// send makes one request and checks the answer: never a 5xx, and what the
// contract describes for a route it has.
func (ft *fuzzTarget) send(t testing.TB, method, target, contentType string, body []byte) int {
	code, _ := ft.answer(t, method, target, contentType, body)
	return code
}

// answer is send returning the answer's body too.
func (ft *fuzzTarget) answer(t testing.TB, method, target, contentType string, body []byte) (int, []byte) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ft.url+target, rd)
	if err != nil {
		t.Skip("not a request:", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	res, err := ft.client.Do(req)
	if err != nil && strings.Contains(err.Error(), "invalid header field") {
		t.Skip("not a request:", err) // refused by the client, not sent
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if res.StatusCode >= 500 {
		t.Fatalf("%s %s (%s) %q: %d %s", method, target, contentType, body, res.StatusCode, got)
	}
	// A fuzzed path may name no route of the contract (a/b, ..): gin's
	// 404 is then all there is to check.
	if err := ft.v.Validate(req, res, got); err != nil && !strings.HasPrefix(err.Error(), "undocumented route") {
		t.Fatalf("answer breaks openapi.yaml: %v\n%s %s: %d %s", err, method, target, res.StatusCode, got)
	}
	return res.StatusCode, got
}

// FuzzRequest sends any operation of the contract with fuzzed path
// parameters, query, content type and body: the answer is never a 5xx, and
// always what the contract describes. Seeded with the examples of issue 6.
func FuzzRequest(f *testing.F) {
	ft := newFuzzTarget(f)
	add := func(method, path, pathValue, query, contentType, body string) {
		f.Add(ft.op(method, path), pathValue, query, contentType, []byte(body))
	}
	add("POST", "/api/v1/containers", "", "", "application/json", `{"name":"c","network":"blue","host":"h1","netns":"/run/netns/a\u0000"}`)
	add("POST", "/api/v1/policies", "", "", "application/json", `{"name":"p","network":"blue","selector":"app=\u0000"}`)
	add("POST", "/api/v1/nodes/{host}/status", "h1", "", "application/json", `{"appliedRevision":1,"digest":"x","ports":[{"name":"\u0000"}]}`)
	add("GET", "/api/v1/containers/{ref}", "a\x00", "", "", "")
	add("GET", "/api/v1/containers", "", "network=%00", "", "")
	add("GET", "/api/v1/containers", "", "continue=eyJuIjoiYSIsImkiOiJ4In0", "", "")
	add("GET", "/api/v1/networks", "", "selector=n%3E5", "", "")
	add("GET", "/api/v1/audit", "", "actor=%00&continue=-1", "", "")
	add("PATCH", "/api/v1/containers/{ref}", "c1", "", "application/merge-patch+json", `{"status":"running"}`)
	add("PUT", "/api/v1/networks/{ref}", "blue", "", "text/plain", `{"name":"blue","cidr":"10.10.0.0/24"}`)
	add("PATCH", "/api/v1/networks/{ref}", "blue", "", "application/json", `{"revision":"x","vni":1e30}`)
	add("POST", "/api/v1/tokens", "", "", "application/json", `{"name":"t","role":"node","host":"\u0000"}`)
	// Issue 10: load-balancing fields, endpoints, health reports.
	add("POST", "/api/v1/services", "", "", "application/json", `{"name":"s","network":"blue","ports":[{"port":80},{"port":80}],"weights":[{"selector":"v in (","weight":0}],"healthCheck":{"intervalSeconds":1,"timeoutSeconds":5}}`)
	add("PATCH", "/api/v1/services/{ref}", "s1", "", "application/merge-patch+json", `{"healthCheck":{"path":"\u0000"},"sessionAffinityTimeoutSeconds":1e30,"groupId":-1}`)
	add("GET", "/api/v1/services/{ref}/endpoints", "s1\x00", "network=%00", "", "")
	add("POST", "/api/v1/nodes/{host}/status", "h1", "", "application/json", `{"appliedRevision":0,"digest":"","ports":[],"endpoints":[{"service":"00000000-0000-0000-0000-000000000000","container":"x","healthy":true}]}`)
	// Issue 15: a valid body for every operation that takes one.
	addBodySeeds(f, ft, add)
	f.Fuzz(func(t *testing.T, op uint8, pathValue, query, contentType string, body []byte) {
		o := ft.ops[int(op)%len(ft.ops)]
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Skip()
		}
		// Waits and long-polls end on their own clock, not the fuzzer's.
		q.Del("wait")
		q.Set("timeout", "1ms")
		if !hasParam(o, "timeout") {
			q.Del("timeout")
		}
		fuzzed := ""
		for _, p := range o.params {
			if p.In == "path" {
				fuzzed = p.Name
			}
		}
		target := o.url(fuzzed, pathValue, q)
		if !o.hasBody() {
			body = nil
		}
		ft.send(t, strings.ToUpper(o.method), target, contentType, body)
	})
}

// FuzzListQuery lists containers and networks with fuzzed selector,
// continue and limit: never a 5xx.
func FuzzListQuery(f *testing.F) {
	ft := newFuzzTarget(f)
	f.Add("n>5", "", "10")
	f.Add("n<5,app in (a,b),!x", "eyJuIjoiYSIsImkiOiJ4In0", "1")
	f.Add("n>9223372036854775807", "eyJuIjoiYVx1MDAwMCIsImkiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAifQ", "0")
	f.Add("a=\x00", "\x00", "99999999999999999999")
	f.Fuzz(func(t *testing.T, sel, cont, limit string) {
		q := url.Values{"selector": {sel}, "continue": {cont}, "limit": {limit}}.Encode()
		for _, path := range []string{"/api/v1/networks", "/api/v1/containers", "/api/v1/audit"} {
			ft.send(t, "GET", path+"?"+q, "", nil)
		}
	})
}
