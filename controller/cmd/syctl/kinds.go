package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// kind is one type of object of the API, and how syctl shows it.
type kind struct {
	name    string   // singular, as in documents' "kind:" and events
	plural  string   // as in the API's paths
	aliases []string // short names accepted on the command line
	// scoped: names are unique per network (?network= disambiguates).
	scoped bool
	// tokens: no selector, no update, no events.
	immutable bool
	header    []string
	wide      []string
	// row renders one object (JSON) as columns: the header's, then the
	// wide ones.
	row func(raw []byte, e *env) ([]string, []string, error)
}

func (k *kind) path() string { return "/api/v1/" + k.plural }

// kinds in dependency order: apply creates in this order, prune deletes in
// the reverse.
var kinds = []*kind{
	{name: "host", plural: "hosts", aliases: []string{"ho"},
		header: []string{"NAME", "ADDRESS", "STATUS", "REALIZED", "AGE"},
		wide:   []string{"TUNNEL", "APPLIED", "PROGRAM", "LABELS", "ID"},
		row: rowOf(func(h *openapi.Host, e *env) ([]string, []string) {
			return []string{h.Name, h.Address, h.Status, strconv.FormatBool(h.Realized), e.ageOf(h.CreatedAt)},
				[]string{h.TunnelType, rev(h.AppliedRevision), rev(h.ProgramRevision), labelString(h.Labels), h.ID}
		})},
	{name: "network", plural: "networks", aliases: []string{"net"},
		header: []string{"NAME", "CIDR", "GATEWAY", "VNI", "AGE"},
		wide:   []string{"MTU", "EGRESS-IP", "LABELS", "ID"},
		row: rowOf(func(n *openapi.Network, e *env) ([]string, []string) {
			return []string{n.Name, n.CIDR, n.Gateway, rev(n.VNI), e.ageOf(n.CreatedAt)},
				[]string{strconv.Itoa(n.MTU), orNone(n.EgressIP), labelString(n.Labels), n.ID}
		})},
	{name: "container", plural: "containers", aliases: []string{"ct", "co"}, scoped: true,
		header: []string{"NAME", "NETWORK", "HOST", "IP", "STATUS", "AGE"},
		wide:   []string{"MAC", "PUBLISH", "LABELS", "ID"},
		row: rowOf(func(c *openapi.Container, e *env) ([]string, []string) {
			return []string{c.Name, c.Network, c.Host, c.IP, c.Status, e.ageOf(c.CreatedAt)},
				[]string{c.MAC, publishString(c.Publish), labelString(c.Labels), c.ID}
		})},
	{name: "service", plural: "services", aliases: []string{"svc"}, scoped: true,
		header: []string{"NAME", "NETWORK", "VIP", "PORTS", "SELECTOR", "AGE"},
		wide:   []string{"AFFINITY", "EXTERNAL", "LABELS", "ID"},
		row: rowOf(func(s *openapi.Service, e *env) ([]string, []string) {
			return []string{s.Name, s.Network, s.VIP, portsString(s.Ports), orNone(s.Selector), e.ageOf(s.CreatedAt)},
				[]string{s.SessionAffinity, orNone(s.ExternalTrafficPolicy), labelString(s.Labels), s.ID}
		})},
	{name: "policy", plural: "policies", aliases: []string{"pol", "netpol"}, scoped: true,
		header: []string{"NAME", "NETWORK", "SELECTOR", "ACTION", "PRIORITY", "INGRESS", "EGRESS", "AGE"},
		wide:   []string{"LOG", "LABELS", "ID"},
		row: rowOf(func(p *openapi.Policy, e *env) ([]string, []string) {
			return []string{p.Name, p.Network, orNone(p.Selector), p.Action, strconv.Itoa(p.Priority),
					rules(p.Ingress), rules(p.Egress), e.ageOf(p.CreatedAt)},
				[]string{strconv.FormatBool(p.Log), labelString(p.Labels), p.ID}
		})},
	{name: "token", plural: "tokens", aliases: []string{"tok"}, immutable: true,
		header: []string{"NAME", "ROLE", "HOST", "REVOKED", "AGE"},
		wide:   []string{"ID"},
		row: rowOf(func(t *openapi.Token, e *env) ([]string, []string) {
			revoked := "<none>"
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.UTC().Format(time.RFC3339)
			}
			return []string{t.Name, t.Role, orNone(t.Host), revoked, e.ageOf(t.CreatedAt)}, []string{t.ID}
		})},
}

// rowOf adapts a typed row function to raw JSON.
func rowOf[T any](f func(*T, *env) ([]string, []string)) func([]byte, *env) ([]string, []string, error) {
	return func(raw []byte, e *env) ([]string, []string, error) {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, err
		}
		a, b := f(&v, e)
		return a, b, nil
	}
}

// kindNamed finds a kind by singular, plural or alias.
func kindNamed(s string) (*kind, error) {
	s = strings.ToLower(s)
	for _, k := range kinds {
		if s == k.name || s == k.plural {
			return k, nil
		}
		for _, a := range k.aliases {
			if s == a {
				return k, nil
			}
		}
	}
	return nil, usagef("unknown kind %q (one of %s)", s, kindList())
}

func kindList() string {
	var names []string
	for _, k := range kinds {
		names = append(names, k.plural)
	}
	return strings.Join(names, ", ")
}

// kindArgs splits "container/web1" or "container web1 web2" into a kind and names.
func kindArgs(args []string) (*kind, []string, error) {
	if len(args) == 0 {
		return nil, nil, usagef("name a kind: %s", kindList())
	}
	first, names := args[0], args[1:]
	if k, n, ok := strings.Cut(first, "/"); ok {
		first, names = k, append([]string{n}, names...)
	}
	k, err := kindNamed(first)
	return k, names, err
}

// oneObject reads "KIND NAME" (or "KIND/NAME") for verb, which takes one object.
func oneObject(verb string, args []string) (*kind, string, error) {
	k, names, err := kindArgs(args)
	if err != nil {
		return nil, "", err
	}
	if len(names) != 1 {
		return nil, "", usagef("%s takes one name", verb)
	}
	return k, names[0], nil
}

// objMeta is what syctl handles of any object without knowing its kind:
// the contract's Meta and the members of the same name and meaning in
// every type that has them (a view, not a type of the API).
type objMeta struct {
	openapi.Meta
	Name    string            `json:"name"`
	Network string            `json:"network"`
	Host    string            `json:"host"`
	Labels  map[string]string `json:"labels"`
	Status  string            `json:"status"`
	Detail  string            `json:"statusDetail"`
}

func metaOf(raw []byte) objMeta {
	var m objMeta
	_ = json.Unmarshal(raw, &m)
	return m
}

// objectPath is the URL of one object, with ?network= when given.
func (k *kind) objectPath(ref, network string) string {
	p := k.path() + "/" + url.PathEscape(ref)
	if network != "" && k.scoped {
		p += "?network=" + url.QueryEscape(network)
	}
	return p
}

// get reads one object.
func (k *kind) get(ctx context.Context, c *client.Client, ref, network string) (json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := c.Do(ctx, "GET", k.objectPath(ref, network), nil, &raw); err != nil {
		if client.StatusOf(err) == http.StatusNotFound {
			return nil, notFoundErr{k.name + " " + qualified(ref, network)}
		}
		return nil, fmt.Errorf("get %s %s: %w", k.name, ref, err)
	}
	return raw, nil
}

func qualified(name, network string) string {
	if network == "" {
		return name
	}
	return name + " (network " + network + ")"
}

// listQuery filters a list.
type listQuery struct {
	selector, network, host string
}

// list reads every page of a kind's list.
func (k *kind) list(ctx context.Context, c *client.Client, q listQuery) ([]json.RawMessage, error) {
	v := url.Values{}
	if !k.immutable {
		v.Set("limit", "1000")
	}
	if q.selector != "" {
		if k.immutable {
			return nil, usagef("%s have no labels: -l does not apply", k.plural)
		}
		v.Set("selector", q.selector)
	}
	if q.network != "" && k.scoped {
		v.Set("network", q.network)
	}
	if q.host != "" && k.name == "container" {
		v.Set("host", q.host)
	}
	var out []json.RawMessage
	for {
		var page openapi.List[json.RawMessage]
		p := k.path()
		if len(v) > 0 {
			p += "?" + v.Encode()
		}
		if _, err := c.Do(ctx, "GET", p, nil, &page); err != nil {
			return nil, fmt.Errorf("list %s: %w", k.plural, err)
		}
		out = append(out, page.Items...)
		if page.Continue == "" {
			return out, nil
		}
		v.Set("continue", page.Continue)
	}
}

// readOnlyFields are the properties of each kind a client may not set,
// from the contract (the PUT schema's readOnly properties).
var readOnlyFields = sync.OnceValues(func() (map[string]map[string]bool, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for _, k := range kinds {
		fields := map[string]bool{}
		item := doc.Paths.Find(k.path() + "/{ref}")
		if item != nil {
			op := item.Put
			if op == nil {
				op = item.Get
			}
			if schema := objectSchema(op); schema != nil {
				for name, p := range schema.Properties {
					if p.Value != nil && p.Value.ReadOnly {
						fields[name] = true
					}
				}
			}
		}
		out[k.name] = fields
	}
	return out, nil
})

// objectSchema is the schema of the object an operation takes (its JSON
// body) or, without a body, answers (its 200).
func objectSchema(op *openapi3.Operation) *openapi3.Schema {
	if op == nil {
		return nil
	}
	var mt *openapi3.MediaType
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		mt = op.RequestBody.Value.Content.Get("application/json")
	} else if r := op.Responses.Value("200"); r != nil && r.Value != nil {
		mt = r.Value.Content.Get("application/json")
	}
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// newRequest is a bare authenticated request (for streams and documents
// the JSON client does not read).
func newRequest(ctx context.Context, c *client.Client, method, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	return req, nil
}

func rev(n int64) string { return strconv.FormatInt(n, 10) }

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func publishString(ps []openapi.PublishedPort) string {
	if len(ps) == 0 {
		return "<none>"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%d->%d/%s", p.HostPort, p.Port, protoOr(p.Protocol))
	}
	return strings.Join(parts, ",")
}

func portsString(ps []openapi.ServicePort) string {
	if len(ps) == 0 {
		return "<none>"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		s := strconv.Itoa(p.Port)
		if p.TargetPort != 0 && p.TargetPort != p.Port {
			s += ":" + strconv.Itoa(p.TargetPort)
		}
		if p.NodePort != 0 {
			s += ":" + strconv.Itoa(p.NodePort)
		}
		parts[i] = s + "/" + protoOr(p.Protocol)
	}
	return strings.Join(parts, ",")
}

func protoOr(p string) string {
	if p == "" {
		return "TCP"
	}
	return p
}

// rules counts a policy's rules in one direction; "-" when the direction
// is not restricted (null), 0 when it denies all ([]).
func rules(r []openapi.PolicyRule) string {
	if r == nil {
		return "-"
	}
	return strconv.Itoa(len(r))
}

// humanAge renders the time since an RFC 3339 timestamp like kubectl.
func humanAge(createdAt string) string {
	t, err := time.Parse(time.RFC3339Nano, createdAt)
	if err != nil {
		return "<unknown>"
	}
	d := time.Since(t)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func (e *env) ageOf(t time.Time) string { return e.age(t.Format(time.RFC3339Nano)) }
