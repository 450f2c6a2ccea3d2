package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/controller/internal/testenv"

	"github.com/switchyard/switchyard/openapi"
)

// newToken creates a token as admin and returns its secret.
func (e *env) newToken(name, role, host string) string {
	e.t.Helper()
	var tok openapi.Token
	e.must(201, "POST", "/api/v1/tokens", map[string]any{"name": name, "role": role, "host": host}, withToken(testenv.AdminToken)).decode(e.t, &tok)
	if tok.Secret == "" {
		e.t.Fatal("token created without a secret")
	}
	return tok.Secret
}

func TestAuthRoles(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	viewer := e.newToken("viewer1", "viewer", "")
	operator := e.newToken("operator1", "operator", "")
	node := e.newToken("node-h1", "node", "h1")
	admin2 := e.newToken("admin2", "admin", "")

	type call struct {
		method, path string
		body         any
	}
	read := call{"GET", "/api/v1/networks", nil}
	write := call{"POST", "/api/v1/networks", map[string]any{"name": "n", "cidr": "10.80.0.0/24"}}
	tokens := call{"GET", "/api/v1/tokens", nil}
	audit := call{"GET", "/api/v1/audit", nil}
	cases := []struct {
		who  string
		tok  string
		call call
		want int
	}{
		{"nobody", "", read, 401},
		{"garbage", "sy_not_a_token", read, 401},
		{"viewer", viewer, read, 200},
		{"viewer", viewer, write, 403},
		{"viewer", viewer, tokens, 403},
		{"operator", operator, read, 200},
		{"operator", operator, write, 201},
		{"operator", operator, audit, 403},
		{"operator", operator, tokens, 403},
		{"node", node, read, 403},
		{"node", node, write, 403},
		{"admin", admin2, tokens, 200},
		{"admin", admin2, audit, 200},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d-%s-%s-%s", i, c.who, c.call.method, c.call.path), func(t *testing.T) {
			e.t = t
			r := e.do(c.call.method, c.call.path, c.call.body, withToken(c.tok))
			if r.Status != c.want {
				t.Fatalf("status %d, want %d: %s", r.Status, c.want, r.Body)
			}
			if c.want >= 400 {
				e.wantProblem(r, c.want, "")
			}
			if c.want == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	e.t = t

	// Revocation takes effect at once.
	e.must(204, "DELETE", "/api/v1/tokens/viewer1", nil)
	e.wantProblem(e.do("GET", "/api/v1/networks", nil, withToken(viewer)), 401, "")
	var list openapi.List[openapi.Token]
	e.must(200, "GET", "/api/v1/tokens", nil).decode(t, &list)
	for _, tok := range list.Items {
		if tok.Secret != "" {
			t.Errorf("token list shows the secret of %s", tok.Name)
		}
		if tok.Name == "viewer1" && tok.RevokedAt == nil {
			t.Error("revoked token has no revokedAt")
		}
	}
	// Token validation.
	e.wantProblem(e.do("POST", "/api/v1/tokens", map[string]any{"name": "x", "role": "root"}), 400, "role")
	e.wantProblem(e.do("POST", "/api/v1/tokens", map[string]any{"name": "x", "role": "node"}), 400, "host")
	e.wantProblem(e.do("POST", "/api/v1/tokens", map[string]any{"name": "operator1", "role": "viewer"}), 409, "name")
	e.wantProblem(e.do("GET", "/api/v1/tokens/nope", nil), 404, "")
}

// Every write lands in the audit log: who, what, which object, revision.
func TestAuditLog(t *testing.T) {
	e := newEnv(t, nil)
	op := e.newToken("alice", "operator", "")
	var n openapi.Network
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "blue", "cidr": "10.10.0.0/24"}, withToken(op)).decode(t, &n)
	e.must(200, "PATCH", "/api/v1/networks/blue", map[string]any{"mtu": 1300}, withToken(op))
	e.must(204, "DELETE", "/api/v1/networks/blue", nil, withToken(op))

	var page openapi.List[openapi.AuditEntry]
	e.must(200, "GET", "/api/v1/audit?actor=alice", nil).decode(t, &page)
	if len(page.Items) != 3 {
		t.Fatalf("audit for alice: %+v", page.Items)
	}
	want := []string{"created", "updated", "deleted"}
	for i, a := range page.Items {
		if a.Action != want[i] || a.Kind != "network" || a.ObjectName != "blue" || a.ObjectID != n.ID || a.Revision == 0 || a.At.IsZero() {
			t.Errorf("audit entry %d: %+v", i, a)
		}
	}
	if page.Items[0].Revision != n.Revision {
		t.Errorf("audit revision %d, object revision %d", page.Items[0].Revision, n.Revision)
	}
	// Token creation is audited too, and the log pages.
	e.must(200, "GET", "/api/v1/audit?kind=token", nil).decode(t, &page)
	if len(page.Items) < 2 {
		t.Fatalf("token audit: %+v", page.Items)
	}
	// One object's history, by id or by name: alice's network, then a
	// second "blue" (created again by the admin) under the same name.
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "blue", "cidr": "10.10.0.0/24"})
	e.must(201, "POST", "/api/v1/networks", map[string]any{"name": "green", "cidr": "10.11.0.0/24"})
	e.must(200, "GET", "/api/v1/audit?kind=network&ref="+n.ID, nil).decode(t, &page)
	if len(page.Items) != 3 || page.Items[0].ObjectID != n.ID || page.Items[2].Action != "deleted" {
		t.Fatalf("audit of network %s by id: %+v", n.ID, page.Items)
	}
	e.must(200, "GET", "/api/v1/audit?ref=blue", nil).decode(t, &page)
	if len(page.Items) != 4 || page.Items[3].Actor != store.BootstrapTokenName || page.Items[3].ObjectID == n.ID {
		t.Fatalf("audit of the name blue: %+v", page.Items)
	}
	e.must(200, "GET", "/api/v1/audit?ref=purple", nil).decode(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("audit of a name never used: %+v", page.Items)
	}
	e.wantProblem(e.do("GET", "/api/v1/audit?ref=", nil), 400, "ref")
	var p1, p2 openapi.List[openapi.AuditEntry]
	e.must(200, "GET", "/api/v1/audit?limit=2", nil).decode(t, &p1)
	e.must(200, "GET", "/api/v1/audit?limit=2&continue="+p1.Continue, nil).decode(t, &p2)
	if len(p1.Items) != 2 || p1.Continue == "" || len(p2.Items) == 0 || p2.Items[0].ID <= p1.Items[1].ID {
		t.Fatalf("audit paging: %+v / %+v", p1, p2)
	}
}

// A token revoked through one replica stops working on the others too,
// although they cache authentications.
func TestRevocationAcrossReplicas(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.newToken("roamer", "viewer", "")
	other := *e
	other.ctl = testenv.Start(t, e.db, nil)
	other.must(200, "GET", "/api/v1/networks", nil, withToken(tok)) // now cached on B
	e.must(204, "DELETE", "/api/v1/tokens/roamer", nil)
	e.wantProblem(e.do("GET", "/api/v1/networks", nil, withToken(tok)), 401, "")
	deadline := time.Now().Add(5 * time.Second)
	for other.do("GET", "/api/v1/networks", nil, withToken(tok)).Status != 401 {
		if time.Now().After(deadline) {
			t.Fatal("the revoked token still works on the other replica")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
