package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/openapi"
)

// operation is one method on one path of openapi.yaml.
type operation struct {
	method, path string
	op           *openapi3.Operation
	params       []*openapi3.Parameter
}

// operations lists every operation of the contract, so the tables below
// cover an endpoint as soon as it is written into openapi.yaml.
func operations(t testing.TB) []operation {
	t.Helper()
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	var out []operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := operation{method: method, path: path, op: op}
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				o.params = append(o.params, p.Value)
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// url fills the path parameters (with value for the one named bad, "h1"
// for the others) and adds query.
func (o operation) url(bad, value string, query url.Values) string {
	p := o.path
	for _, prm := range o.params {
		if prm.In != "path" {
			continue
		}
		v := "h1"
		if prm.Name == bad {
			v = value
		}
		p = strings.ReplaceAll(p, "{"+prm.Name+"}", url.PathEscape(v))
	}
	if len(query) > 0 {
		p += "?" + query.Encode()
	}
	return p
}

func (o operation) hasBody() bool { return o.op.RequestBody != nil }

// Every path and query parameter of every operation refuses NUL and
// invalid UTF-8 (which PostgreSQL cannot store as text) with a 400 naming
// the parameter, before any SQL: no 500.
func TestEveryParameterRefusesWhatPostgresCannotStore(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	checked := 0
	for _, o := range operations(t) {
		if !strings.HasPrefix(o.path, "/api/v1/") {
			continue
		}
		for _, prm := range o.params {
			if prm.In != "path" && prm.In != "query" {
				continue
			}
			for _, bad := range []string{"a\x00b", "\x00", "a\xffb"} {
				var target string
				if prm.In == "path" {
					target = o.url(prm.Name, bad, nil)
				} else {
					target = o.url("", "", url.Values{prm.Name: {bad}})
				}
				var body any
				if o.hasBody() {
					body = map[string]any{}
				}
				r := e.do(strings.ToUpper(o.method), target, body)
				if r.Status != 400 {
					t.Errorf("%s %s with %q in %s: status %d, want 400; body %s", o.method, o.path, bad, prm.Name, r.Status, r.Body)
					continue
				}
				if p := r.problem(t); p["field"] != prm.Name {
					t.Errorf("%s %s with %q in %s: field %v", o.method, o.path, bad, prm.Name, p["field"])
				}
				checked++
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d parameter cases: is the contract loaded?", checked)
	}
}

// Every operation that takes a body refuses a NUL in any of its JSON
// strings (values and keys, at any depth) with a 400 naming the field, and
// a body of another content type with a 415.
func TestEveryBodyRefusesNULAndWrongContentType(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	bodies := []struct {
		json, field string
	}{
		{`{"name": "a\u0000b"}`, "name"},
		{`{"labels": {"app": "x\u0000"}}`, "labels.app"},
		{`{"labels": {"a\u0000": "x"}}`, "labels"},
		{`{"ports": [{"name": "ok"}, {"name": "\u0000"}]}`, "ports[1].name"},
		{`{"ingress": [{"peers": [{"selector": "app=web\u0000"}]}]}`, "ingress[0].peers[0].selector"},
	}
	n := 0
	for _, o := range operations(t) {
		if !o.hasBody() {
			continue
		}
		method, target := strings.ToUpper(o.method), o.url("", "", nil)
		for _, b := range bodies {
			r := e.do(method, target, b.json)
			if r.Status != 400 || r.problem(t)["field"] != b.field {
				t.Errorf("%s %s %s: status %d; body %s", method, o.path, b.json, r.Status, r.Body)
			}
			n++
		}
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", ""} {
			r := e.do(method, target, `{}`, withHeader("Content-Type", ct))
			if r.Status != http.StatusUnsupportedMediaType {
				t.Errorf("%s %s as %q: status %d, want 415; body %s", method, o.path, ct, r.Status, r.Body)
				continue
			}
			if p := r.problem(t); p["field"] != "Content-Type" {
				t.Errorf("%s %s as %q: field %v", method, o.path, ct, p["field"])
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("only %d body cases", n)
	}
	// The content type's parameters and case do not matter.
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "ct", "cidr": "10.40.0.0/24"},
		withHeader("Content-Type", "Application/JSON; charset=utf-8"))
	e.must(200, "PATCH", "/api/v1/networks/ct", map[string]any{"mtu": 1300}, withHeader("Content-Type", "application/merge-patch+json"))
}

// Every route the server serves is in the contract, so the tables above
// (which iterate the contract) reach every route.
func TestEveryRouteIsInTheContract(t *testing.T) {
	e := newEnv(t, nil)
	engine, ok := e.ctl.Server.Handler(t.Context()).(*gin.Engine)
	if !ok {
		t.Fatal("the handler is not a gin engine")
	}
	documented := map[string]bool{}
	for _, o := range operations(t) {
		documented[strings.ToUpper(o.method)+" "+o.path] = true
	}
	for _, rt := range engine.Routes() {
		path := rt.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		if !documented[rt.Method+" "+path] {
			t.Errorf("route %s %s is not in openapi.yaml", rt.Method, path)
		}
	}
}

// An update (PUT or merge patch) may send a read-only field back as it is,
// never change it: 400 naming the field, nothing written. Every read-only
// field of every kind, as the contract marks them.
func TestReadOnlyFieldsCannotChange(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c1", "network": "blue", "host": "h1"})
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "s1", "network": "blue", "ports": []map[string]any{{"port": 80}}})
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "p1", "network": "blue"})
	objects := map[string]string{"hosts": "h1", "networks": "blue", "containers": "c1", "services": "s1", "policies": "p1"}
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for kind, name := range objects {
		item := doc.Paths.Find("/api/v1/" + kind + "/{ref}")
		schema := item.Put.RequestBody.Value.Content.Get("application/json").Schema.Value
		path := "/api/v1/" + kind + "/" + name
		var cur map[string]any
		e.must(200, "GET", path, nil).decode(t, &cur)
		// Sent back unchanged, the read-only fields are fine.
		e.must(200, "PUT", path, withoutVolatile(kind, cur))
		e.must(200, "GET", path, nil).decode(t, &cur)
		for field, p := range schema.Properties {
			if !p.Value.ReadOnly || api.IgnoredOnInput[field] {
				continue
			}
			before := e.revision()
			changed := map[string]any{field: different(cur[field])}
			e.wantProblem(e.do("PATCH", path, changed), 400, field)
			whole := withoutVolatile(kind, cur)
			whole[field] = different(cur[field])
			e.wantProblem(e.do("PUT", path, whole), 400, field)
			if e.revision() != before {
				t.Errorf("%s %s: a refused update wrote", kind, field)
			}
			cases++
		}
	}
	if cases < 20 {
		t.Fatalf("only %d read-only fields", cases)
	}
}

// A container's ipBlock is ignored on input: sent back stale after a move
// (the move cleared it), or made up, on create, update or patch, it is no
// 400 and changes nothing.
func TestIPBlockIgnoredOnInput(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	var c, moved, back openapi.Container
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c1", "network": "blue", "host": "h1",
		"ipBlock": "10.10.0.192/26"}).decode(t, &c)
	if c.IPBlock != "10.10.0.0/26" {
		t.Fatalf("created in block %q, want the claimed 10.10.0.0/26", c.IPBlock)
	}
	var body map[string]any
	e.must(200, "GET", "/api/v1/containers/c1", nil).decode(t, &body)
	if body["ipBlock"] != "10.10.0.0/26" {
		t.Fatalf("GET shows ipBlock %v", body["ipBlock"])
	}
	// The move: h2 owns no block and h1 owns the address's: borrowed.
	body["host"] = "h2"
	e.must(200, "PUT", "/api/v1/containers/c1", body).decode(t, &moved)
	if moved.IPBlock != "" || moved.Host != "h2" {
		t.Fatalf("moved to %s in block %q, want h2 and borrowed", moved.Host, moved.IPBlock)
	}
	// The same body again, its ipBlock stale now (the other read-only
	// fields as they are: this is about ipBlock).
	var cur map[string]any
	e.must(200, "GET", "/api/v1/containers/c1", nil).decode(t, &cur)
	if _, ok := cur["ipBlock"]; ok {
		t.Fatalf("a borrowed address shows ipBlock %v", cur["ipBlock"])
	}
	for _, f := range []string{"revision", "updatedAt", "status"} {
		body[f] = cur[f]
	}
	body["labels"] = map[string]any{"a": "b"}
	e.must(200, "PUT", "/api/v1/containers/c1", body)
	e.must(200, "PATCH", "/api/v1/containers/c1", map[string]any{"ipBlock": "10.10.0.64/26", "host": "h1"}).decode(t, &back)
	if back.IPBlock != "10.10.0.0/26" || back.Host != "h1" || back.Labels["a"] != "b" {
		t.Fatalf("moved back: %+v, want h1 in 10.10.0.0/26", back)
	}
}

// withoutVolatile drops the host fields the node layer may change between
// a read and the next write (not what this test is about).
func withoutVolatile(kind string, obj map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		out[k] = v
	}
	if kind == "hosts" {
		for _, k := range []string{"status", "lastSeen", "realized", "programRevision", "appliedRevision"} {
			delete(out, k)
		}
	}
	return out
}

// different returns a JSON value other than v.
func different(v any) any {
	switch x := v.(type) {
	case string:
		return x + "x"
	case float64:
		return x + 7
	case bool:
		return !x
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = different(e)
		}
		return out
	case []any:
		// A valid array of the same items, but not the same: shorter.
		if len(x) > 0 {
			return x[:len(x)-1]
		}
	}
	return "changed"
}

func TestPatchOfReadOnlyStatusIsRefused(t *testing.T) {
	// The example: a merge patch setting a container's status.
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c1", "network": "blue", "host": "h1"})
	e.wantProblem(e.do("PATCH", "/api/v1/containers/c1", map[string]any{"status": "running"}), 400, "status")
	var c openapi.Container
	e.must(200, "GET", "/api/v1/containers/c1", nil).decode(t, &c)
	if c.Status != openapi.ContainerPending {
		t.Fatalf("status became %s", c.Status)
	}
	raw, _ := json.Marshal(c)
	e.must(200, "PUT", "/api/v1/containers/c1", json.RawMessage(raw))
}
