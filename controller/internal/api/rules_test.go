package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// violation returns a value that breaks schema s, and whether there is one
// (an unconstrained string has none).
func violation(s *openapi3.Schema) (any, bool) {
	for s != nil && len(s.AllOf) == 1 && len(s.Properties) == 0 {
		s = s.AllOf[0].Value
	}
	switch {
	case s == nil:
		return nil, false
	case s.Type.Is("integer") && s.Max != nil:
		return *s.Max + 1, true
	case s.Type.Is("integer") && s.Min != nil:
		return *s.Min - 1, true
	case s.Type.Is("integer"), s.Type.Is("boolean"), s.Type.Is("array"), s.Type.Is("object"):
		return "not-of-its-type", true
	case len(s.Enum) > 0:
		return "not-in-the-enum", true
	case s.Pattern != "":
		return "☃", true
	case s.Format == "ipv4":
		return "300.1.1.1", true
	case s.Format == "uuid":
		return "not-a-uuid", true
	case s.Format == "date-time":
		return "yesterday", true
	case s.MaxLength != nil:
		return strings.Repeat("a", int(*s.MaxLength)+1), true
	}
	return nil, false
}

// Every parameter whose schema constrains it (type, range, enum, pattern)
// refuses a value breaking it: 400 naming the parameter.
func TestEveryParameterRuleIsEnforced(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	n := 0
	for _, o := range operations(t) {
		if !strings.HasPrefix(o.path, "/api/v1/") {
			continue
		}
		for _, p := range o.params {
			bad, ok := violation(p.Schema.Value)
			if !ok || p.In == "header" && p.Name == "If-Match" {
				continue
			}
			val := fmt.Sprint(bad)
			target, opts := o.url("", "", nil), []reqOpt{}
			switch p.In {
			case "path":
				target = o.url(p.Name, val, nil)
			case "query":
				target = o.url("", "", url.Values{p.Name: {val}})
			case "header":
				opts = append(opts, withHeader(p.Name, val))
			}
			var body any
			if o.hasBody() {
				body = map[string]any{}
			}
			r := e.do(strings.ToUpper(o.method), target, body, opts...)
			if r.Status != 400 || r.problem(t)["field"] != p.Name {
				t.Errorf("%s %s with %s=%q: %d %s", o.method, o.path, p.Name, val, r.Status, r.Body)
			}
			n++
		}
	}
	t.Logf("%d parameter rules", n)
	if n < 30 {
		t.Fatalf("only %d parameter rules", n)
	}
}

// Every property a body schema constrains, at any depth, refuses a value
// breaking it, in a create, a replacement and a merge patch alike: 400
// naming the property.
func TestEveryBodyRuleIsEnforced(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "c1", "network": "blue", "host": "h1"})
	e.must(201, "POST", "/api/v1/services", map[string]any{"name": "s1", "network": "blue", "ports": []map[string]any{{"name": "http", "port": 80, "targetPort": 8080}}})
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "p1", "network": "blue",
		"ingress": []map[string]any{{"peers": []map[string]any{{"cidr": "10.0.0.0/8", "except": []string{"10.1.0.0/16"}}}, "ports": []map[string]any{{"port": 80, "endPort": 90}}}}})
	node := e.newToken("node-h1", "node", "h1")
	// A valid body of every operation besides the kinds', whose bodies are
	// their objects' current state.
	get := func(path string) map[string]any {
		var m map[string]any
		e.must(200, "GET", path, nil).decode(t, &m)
		return m
	}
	kinds := map[string]string{"hosts": "h1", "networks": "blue", "containers": "c1", "services": "s1", "policies": "p1"}
	bases := map[string]map[string]any{
		"POST /api/v1/tokens":                {"name": "t9", "role": "node", "host": "h1"},
		"POST /api/v1/containers/{ref}/move": {"host": "h2"},
		"POST /api/v1/nodes/{host}/register": {"address": "192.168.200.11", "tunnelType": "geneve"},
		"POST /api/v1/traces": {"source": map[string]any{"container": "c1", "network": "blue"}, "destination": map[string]any{"container": "c1"},
			"protocol": "TCP", "port": 80, "sourcePort": 40000, "probe": false},
		"POST /api/v1/nodes/{host}/jobs/{id}/result": {"status": "ok", "error": "e", "trace": map[string]any{"output": "o"},
			"probe": map[string]any{"outcome": "answered", "detail": "d", "micros": 1}},
		"POST /api/v1/nodes/{host}/status": {"appliedRevision": 0, "digest": "ab12", "error": "e", "ports": []any{map[string]any{"name": "p", "container": "c1", "containerId": "x", "ofport": 1, "up": true, "error": "e"}}},
	}
	doc := operations(t)
	n := 0
	for _, o := range doc {
		if !o.hasBody() {
			continue
		}
		key := strings.ToUpper(o.method) + " " + o.path
		kind := strings.Split(strings.TrimPrefix(o.path, "/api/v1/"), "/")[0]
		schemaOf := o
		base, known := bases[key]
		switch {
		case known:
		case kinds[kind] == "":
			t.Errorf("no valid body for %s: add one", key)
			continue
		default: // the kinds' creates, replacements and patches
			base = get("/api/v1/" + kind + "/" + kinds[kind])
			// A merge patch is held to the schema of the replacement.
			for _, p := range doc {
				if p.method == "put" && p.path == "/api/v1/"+kind+"/{ref}" {
					schemaOf = p
				}
			}
		}
		schema := schemaOf.op.RequestBody.Value.Content.Get("application/json").Schema.Value
		target := o.url("", "", nil)
		if strings.Contains(o.path, "{ref}") {
			target = strings.Replace(o.url("", "", nil), "/h1", "/"+kinds[kind], 1)
		}
		var opts []reqOpt
		if strings.HasPrefix(o.path, "/api/v1/nodes/") {
			opts = append(opts, withToken(node))
		}
		for _, c := range bodyViolations(schema, base, "") {
			body := c.whole
			if o.method == "patch" {
				body = c.patch
			}
			r := e.do(strings.ToUpper(o.method), target, body, opts...)
			if r.Status != 400 || r.problem(t)["field"] != c.field {
				raw, _ := json.Marshal(body)
				t.Errorf("%s %s: %s: %d %s", key, raw, c.field, r.Status, r.Body)
			}
			n++
		}
	}
	t.Logf("%d body rules", n)
	if n < 60 {
		t.Fatalf("only %d body rules", n)
	}
}

type bodyCase struct {
	field        string
	whole, patch map[string]any
}

// bodyViolations breaks, one at a time, every constrained writable
// property of schema present in base or constrained at the top level.
func bodyViolations(schema *openapi3.Schema, base map[string]any, prefix string) []bodyCase {
	var out []bodyCase
	for name, ref := range schema.Properties {
		p := ref.Value
		if p.ReadOnly {
			continue
		}
		field := prefix + name
		if bad, ok := violation(p); ok {
			whole := clone(base)
			whole[name] = bad
			out = append(out, bodyCase{field: field, whole: whole, patch: map[string]any{name: bad}})
		}
		// Into the first element of arrays of objects, and into objects.
		if arr, ok := base[name].([]any); ok && len(arr) > 0 && p.Items != nil {
			if first, ok := arr[0].(map[string]any); ok {
				for _, c := range bodyViolations(p.Items.Value, first, field+"[0].") {
					whole := clone(base)
					items := append([]any{c.whole}, arr[1:]...)
					whole[name] = items
					out = append(out, bodyCase{field: c.field, whole: whole, patch: map[string]any{name: items}})
				}
			}
		}
	}
	return out
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out) //nolint:errcheck // just marshaled
	return out
}
