package openapi

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestSpecLoads(t *testing.T) {
	doc := loadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version %q, want 3.0.3", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers must be the single relative URL /, so routes match on any host")
	}
}

// schemaTypes pairs every top-level schema that mirrors a Go type with it.
// Nested types (ServicePort, PolicyRule, TunnelPort, ...) are reached from
// these and checked too.
var schemaTypes = map[string]any{
	"Host":             Host{},
	"Network":          Network{},
	"Container":        Container{},
	"Service":          Service{},
	"Policy":           Policy{},
	"Token":            Token{},
	"AuditEntry":       AuditEntry{},
	"Event":            Event{},
	"Problem":          Problem{},
	"Program":          Program{},
	"ProgramUpdate":    ProgramUpdate{},
	"NodeStatus":       NodeStatus{},
	"NodeRegistration": NodeRegistration{},
	"HostList":         List[Host]{},
	"AuditList":        List[AuditEntry]{},
	"Reachability":     Reachability{},
	"PolicyStats":      PolicyStats{},
	"PolicyLogPage":    PolicyLogPage{},
	"EndpointList":     EndpointList{},
	"EndpointHealth":   EndpointHealth{},
	"HostStatus":       HostStatus{},
}

// outputOnly schemas are never request bodies of the REST API, so every Go
// field that is always marshalled (no omitempty) must be required, down the
// whole tree.
var outputOnly = map[string]bool{
	"AuditEntry": true, "Event": true, "Problem": true, "Program": true,
	"ProgramUpdate": true, "NodeStatus": true, "Reachability": true,
	"PolicyStats": true, "PolicyLogPage": true, "EndpointList": true, "EndpointHealth": true,
	"HostStatus": true,
}

// readOnlyProps is the exact set of readOnly properties of each REST object.
var readOnlyProps = map[string][]string{
	"Host":      {"id", "revision", "createdAt", "updatedAt", "status", "lastSeen", "appliedRevision", "programRevision", "realized", "agentVersion"},
	"Network":   {"id", "revision", "createdAt", "updatedAt", "addresses"},
	"Container": {"id", "revision", "createdAt", "updatedAt", "mac", "ipBlock", "status", "statusDetail", "dns"},
	"Service":   {"id", "revision", "createdAt", "updatedAt", "groupId"},
	"Policy":    {"id", "revision", "createdAt", "updatedAt"},
	"Token":     {"id", "createdAt", "secret", "revokedAt"},
}

// jsonField is one field as encoding/json sees it.
type jsonField struct {
	name      string
	typ       reflect.Type
	omitempty bool
}

// jsonFields lists the JSON fields of a struct type, flattening embedded structs.
func jsonFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: f.Type, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return out
}

// effective folds allOf into one schema: the spec uses allOf to put a
// description next to a $ref.
func effective(s *openapi3.Schema) *openapi3.Schema {
	if len(s.AllOf) == 0 {
		return s
	}
	out := *s
	out.AllOf = nil
	out.Properties = openapi3.Schemas{}
	for k, v := range s.Properties {
		out.Properties[k] = v
	}
	for _, sub := range s.AllOf {
		e := effective(sub.Value)
		if out.Type == nil || out.Type.IsEmpty() {
			out.Type = e.Type
		}
		if out.Format == "" {
			out.Format = e.Format
		}
		if out.Items == nil {
			out.Items = e.Items
		}
		if out.AdditionalProperties.Schema == nil {
			out.AdditionalProperties = e.AdditionalProperties
		}
		out.ReadOnly = out.ReadOnly || e.ReadOnly
		out.Required = append(out.Required, e.Required...)
		for k, v := range e.Properties {
			out.Properties[k] = v
		}
	}
	return &out
}

// structVisit is one Go struct met while walking a schema tree.
type structVisit struct {
	path   string
	fields []jsonField
	schema *openapi3.Schema
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// walk checks that the schema s has the shape of Go type typ and calls visit
// for every struct on the way.
func walk(t *testing.T, path string, typ reflect.Type, ref *openapi3.SchemaRef, visit func(structVisit)) {
	t.Helper()
	if ref == nil || ref.Value == nil {
		t.Errorf("%s: no schema", path)
		return
	}
	s := effective(ref.Value)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := func(kind, format string) {
		t.Helper()
		if !s.Type.Is(kind) {
			t.Errorf("%s: Go %s, schema type %v, want %s", path, typ, s.Type.Slice(), kind)
		}
		if format != "" && s.Format != format {
			t.Errorf("%s: Go %s, schema format %q, want %q", path, typ, s.Format, format)
		}
	}
	switch {
	case typ == timeType:
		want("string", "date-time")
	case typ == rawType:
		if s.Type != nil && !s.Type.IsEmpty() {
			t.Errorf("%s: raw JSON must be untyped in the schema, has type %v", path, s.Type.Slice())
		}
	default:
		switch typ.Kind() {
		case reflect.String:
			want("string", "")
		case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
			want("integer", "")
		case reflect.Bool:
			want("boolean", "")
		case reflect.Slice:
			want("array", "")
			walk(t, path+"[]", typ.Elem(), s.Items, visit)
		case reflect.Map:
			want("object", "")
			walk(t, path+"{}", typ.Elem(), s.AdditionalProperties.Schema, visit)
		case reflect.Struct:
			want("object", "")
			fields := jsonFields(typ)
			names := map[string]bool{}
			for _, f := range fields {
				names[f.name] = true
				prop, ok := s.Properties[f.name]
				if !ok {
					t.Errorf("%s: Go field %q is not a schema property", path, f.name)
					continue
				}
				walk(t, path+"."+f.name, f.typ, prop, visit)
			}
			for name := range s.Properties {
				if !names[name] {
					t.Errorf("%s: schema property %q is not a field of Go %s", path, name, typ)
				}
			}
			visit(structVisit{path: path, fields: fields, schema: s})
		default:
			t.Errorf("%s: Go kind %s not handled by the test", path, typ.Kind())
		}
	}
}

func TestSchemasMatchGoTypes(t *testing.T) {
	doc := loadSpec(t)
	for name, v := range schemaTypes {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("schema %s missing", name)
			continue
		}
		walk(t, name, reflect.TypeOf(v), ref, func(sv structVisit) {
			for _, f := range sv.fields {
				req := slices.Contains(sv.schema.Required, f.name)
				ro := effective(sv.schema.Properties[f.name].Value).ReadOnly
				switch {
				case f.omitempty && req:
					t.Errorf("%s.%s: omitempty in Go but required in the spec", sv.path, f.name)
				case !f.omitempty && !req && (outputOnly[name] || ro):
					t.Errorf("%s.%s: always present in answers but not required in the spec", sv.path, f.name)
				}
			}
		})
	}
}

func TestReadOnlyProperties(t *testing.T) {
	doc := loadSpec(t)
	for name, want := range readOnlyProps {
		var got []string
		for prop, ref := range doc.Components.Schemas[name].Value.Properties {
			if effective(ref.Value).ReadOnly {
				got = append(got, prop)
			}
		}
		sort.Strings(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: readOnly properties %v, want %v", name, got, want)
		}
	}
}

// isProblem reports whether s is the Problem schema or extends it with allOf.
func isProblem(doc *openapi3.T, ref *openapi3.SchemaRef) bool {
	problem := doc.Components.Schemas["Problem"].Value
	if ref == nil {
		return false
	}
	if ref.Value == problem {
		return true
	}
	return slices.ContainsFunc(ref.Value.AllOf, func(r *openapi3.SchemaRef) bool { return r.Value == problem })
}

// realizedKinds are the kinds whose writes can wait for realization.
var realizedKinds = []string{"hosts", "networks", "containers", "services", "policies"}

func TestOperationConventions(t *testing.T) {
	doc := loadSpec(t)
	roles := []string{"viewer", "operator", "admin", "node"}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			responses := op.Responses.Map()
			for code, ref := range responses {
				if code >= "400" {
					content := ref.Value.Content
					if len(content) != 1 || !isProblem(doc, content["application/problem+json"].Schema) {
						t.Errorf("%s %s: errors must be application/problem+json with the Problem schema", where, code)
					}
				}
			}
			if !strings.HasPrefix(path, "/api/v1/") {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: must be unauthenticated (security: [])", where)
				}
				continue
			}
			if op.Security != nil {
				t.Errorf("%s: must use the document's bearer security", where)
			}
			if role, _ := op.Extensions["x-switchyard-role"].(string); !slices.Contains(roles, role) {
				t.Errorf("%s: x-switchyard-role %q, want one of %v", where, role, roles)
			}
			for _, code := range []string{"401", "403", "500", "503"} {
				if responses[code] == nil {
					t.Errorf("%s: no %s response", where, code)
				}
			}
			if op.RequestBody != nil {
				for _, code := range []string{"400", "413", "415"} {
					if responses[code] == nil {
						t.Errorf("%s: takes a body but has no %s response", where, code)
					}
				}
			}
			kind := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")[0]
			if method != "GET" && slices.Contains(realizedKinds, kind) {
				params := map[string]bool{}
				for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
					params[p.Value.In+":"+p.Value.Name] = true
				}
				if !params["query:wait"] || !params["query:timeout"] || responses["504"] == nil {
					t.Errorf("%s: a write must take wait and timeout and document 504", where)
				}
			}
		}
	}
}

func TestSpecYAMLIsEmbedded(t *testing.T) {
	if !strings.HasPrefix(string(SpecYAML), "openapi: 3.0.3") {
		t.Errorf("SpecYAML does not start with the openapi version line")
	}
}
