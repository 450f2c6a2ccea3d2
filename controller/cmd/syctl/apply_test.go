package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lines splits output into its lines.
func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// TestApplyRoundTrip: what get -o yaml (or json) prints applies back
// unchanged, for every kind apply handles, and applying the lab twice
// changes nothing.
func TestApplyRoundTrip(t *testing.T) {
	l := newLab(t, true)
	for _, line := range lines(l.ok("apply", "-f", "testdata/lab.yaml")) {
		if !strings.HasSuffix(line, " unchanged") {
			t.Fatalf("second apply of the lab: %q", line)
		}
	}
	for _, k := range []string{"hosts", "networks", "containers", "services", "policies"} {
		for _, f := range []string{"yaml", "json"} {
			doc := l.ok("get", k, "-o", f)
			r := l.runIn(t.Context(), doc, "apply", "-f", "-")
			if r.code != 0 {
				t.Fatalf("apply of get %s -o %s: %+v", k, f, r)
			}
			for _, line := range lines(r.out) {
				if !strings.HasSuffix(line, " unchanged") {
					t.Fatalf("get %s -o %s | apply: %q", k, f, line)
				}
			}
		}
	}
	// The yaml of one object, edited, applies as a change of that field.
	doc := l.ok("get", "container", "web1", "-o", "yaml")
	edited := strings.Replace(doc, "app: web", "app: api", 1)
	if got := l.runIn(t.Context(), edited, "apply", "-f", "-"); got.code != 0 || got.out != "container/web1 configured\n" {
		t.Fatalf("apply of an edited yaml: %+v", got)
	}
	if got := l.ok("get", "containers", "-l", "app=api", "-o", "name"); got != "container/web1\n" {
		t.Fatalf("after the edit: %q", got)
	}
	// The same document again: its revision is stale now (If-Match): 412, exit 4.
	edited = strings.Replace(doc, "app: web", "app: cache", 1)
	r := l.runIn(t.Context(), edited, "apply", "-f", "-")
	if r.code != exitConflict || !strings.Contains(r.err, "HTTP 412") || strings.Count(r.err, "\n") != 1 {
		t.Fatalf("stale apply: %+v", r)
	}
}

func TestApplyDryRun(t *testing.T) {
	l := newLab(t, true)
	dir := t.TempDir()
	doc := `kind: container
name: web1
network: blue
host: h1
labels: {app: web, stack: lab, tier: front}
---
{"kind": "network", "name": "green", "cidr": "10.30.0.0/24"}
`
	// A file of YAML with a JSON document in it, and a directory.
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	before := l.ok("get", "containers", "-o", "yaml")
	got := l.ok("apply", "-f", dir, "--dry-run")
	golden(t, "apply-dry-run.txt", got)
	if after := l.ok("get", "containers", "-o", "yaml"); after != before {
		t.Fatal("a dry run changed containers")
	}
	l.fail(exitNotFound, `^error: network green not found$`, "get", "network", "green")
	// For real now.
	if got := l.ok("apply", "-f", dir); got != "network/green created\ncontainer/web1 configured\n" {
		t.Fatalf("apply: %q", got)
	}
	if got := l.ok("get", "container", "web1", "-o", "wide"); !strings.Contains(got, "app=web,stack=lab,tier=front") {
		t.Fatalf("labels after apply: %s", got)
	}
	// Removing a label from the document removes it from the object.
	l.ok("apply", "-f", "testdata/lab.yaml")
	if got := l.ok("get", "containers", "-l", "tier", "-o", "name"); got != "" {
		t.Fatalf("tier label left after apply: %q", got)
	}
}

func TestApplyPrune(t *testing.T) {
	l := newLab(t, true)
	// The lab without db1 and the policy.
	data, err := os.ReadFile("testdata/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, d := range strings.Split(string(data), "\n---\n") {
		if !strings.Contains(d, "name: db1") && !strings.Contains(d, "kind: policy") {
			kept = append(kept, d)
		}
	}
	smaller := strings.Join(kept, "\n---\n")
	l.fail(exitUsage, `--prune needs -l`, "apply", "-f", "-", "--prune")
	dry := l.runIn(t.Context(), smaller, "apply", "-f", "-", "--prune", "-l", "stack=lab", "--dry-run")
	golden(t, "apply-prune-dry-run.txt", dry.out)
	if got := l.ok("get", "containers", "-o", "name"); !strings.Contains(got, "db1") {
		t.Fatal("a dry run pruned")
	}
	r := l.runIn(t.Context(), smaller, "apply", "-f", "-", "--prune", "-l", "stack=lab")
	if r.code != 0 || !strings.Contains(r.out, "policy/web-from-web pruned\ncontainer/db1 pruned\n") {
		t.Fatalf("prune: %+v", r)
	}
	if got := l.ok("get", "containers", "-o", "name"); got != "container/web1\ncontainer/web2\n" {
		t.Fatalf("after prune: %q", got)
	}
	// Objects outside the selector are never pruned.
	l.ok("create", "container", "other", "network=red", "host=h1")
	l.runIn(t.Context(), smaller, "apply", "-f", "-", "--prune", "-l", "stack=lab")
	l.ok("get", "container", "other")
}

func TestCreateEditDelete(t *testing.T) {
	l := newLab(t, true)
	if got := l.ok("create", "container", "api1", "network=blue", "host=h2", "labels.app=api",
		`publish=[{"hostPort":9090,"port":90}]`); got != "container/api1 created\n" {
		t.Fatalf("create: %q", got)
	}
	if got := l.ok("get", "ct", "api1", "-o", "wide"); !strings.Contains(got, "9090->90/TCP") || !strings.Contains(got, "app=api") {
		t.Fatalf("created from fields: %s", got)
	}
	// It exists: 409, exit 4, one line naming the field.
	l.fail(exitConflict, `^error: create container/api1: .*HTTP 409\)$`, "create", "container", "api1", "network=blue", "host=h2")
	// A token's secret is printed once.
	if got := l.ok("create", "token", "ci", "role=viewer"); !strings.Contains(got, "token/ci created; its secret (shown only now): ") {
		t.Fatalf("create token: %q", got)
	}
	// edit runs the editor on the YAML and applies what it wrote.
	l.env["EDITOR"] = `sed -i 's/app: api/app: backend/'`
	if got := l.ok("edit", "container", "api1"); got != "container/api1 configured\n" {
		t.Fatalf("edit: %q", got)
	}
	if got := l.ok("get", "containers", "-l", "app=backend", "-o", "name"); got != "container/api1\n" {
		t.Fatalf("after edit: %q", got)
	}
	l.env["EDITOR"] = "true"
	if got := l.ok("edit", "container", "api1"); got != "Edit cancelled, no changes made.\n" {
		t.Fatalf("edit without change: %q", got)
	}
	// move keeps the address.
	if got := l.ok("move", "api1", "--to", "h1"); got != "container/api1 moved from h2 to h1\n" {
		t.Fatalf("move: %q", got)
	}
	if got := l.ok("get", "ct", "api1", "-o", "wide"); !strings.Contains(got, "h1 ") {
		t.Fatalf("after move: %s", got)
	}
	// delete by name, by selector, from a file; a missing one is exit 3.
	if got := l.ok("delete", "container", "api1"); got != "container/api1 deleted\n" {
		t.Fatalf("delete: %q", got)
	}
	l.fail(exitNotFound, `^error: container api1 not found$`, "delete", "container", "api1")
	l.ok("delete", "container", "api1", "--ignore-not-found")
	if got := l.ok("delete", "containers", "-l", "app=web"); got != "container/web1 deleted\ncontainer/web2 deleted\n" {
		t.Fatalf("delete -l: %q", got)
	}
	if got := l.ok("delete", "token", "ci"); got != "token/ci deleted\n" {
		t.Fatalf("revoke: %q", got)
	}
	l.ok("delete", "-f", "testdata/lab.yaml", "--ignore-not-found")
	if got := l.ok("get", "networks", "-o", "name"); got != "" {
		t.Fatalf("networks left: %q", got)
	}
}

func TestErrors(t *testing.T) {
	l := newLab(t, true)
	l.fail(exitUsage, `^error: unknown kind "gadgets"`, "get", "gadgets")
	l.fail(exitUsage, `^error: unknown command "frobnicate"`, "frobnicate")
	l.fail(exitUsage, `^error: unknown flag: --frob`, "get", "containers", "--frob")
	l.fail(exitUsage, `^error: unknown output format "xml"`, "get", "containers", "-o", "xml")
	l.fail(exitUsage, `requires at least 1 arg`, "get")
	l.fail(exitNotFound, `^error: container nope \(network blue\) not found$`, "get", "container", "nope", "-n", "blue")
	// The API's problems, on one line with their field and status.
	l.fail(1, `^error: create network/bad: invalid value: .*is not an IPv4 CIDR.*\(field cidr, HTTP 400\)$`, "create", "network", "bad", "cidr=300.1.0.0/24")
	l.fail(exitConflict, `^error: create network/blue2: .*\(.*HTTP 409\)$`, "create", "network", "blue2", "cidr=10.10.0.0/25")
	l.fail(1, `^error: create container/x: .*\(.*HTTP 422\)$`, "create", "container", "x", "network=nowhere", "host=h1")
	l.fail(exitConflict, `^error: delete network/blue: .*HTTP 409\)$`, "delete", "network", "blue")
	noKind := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(noKind, []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.fail(exitUsage, `x.yaml: document 1: no kind \(one of hosts,`, "apply", "-f", noKind)
	l.env["SWITCHYARD_TOKEN"] = "wrong"
	l.fail(1, `^error: list containers: .*HTTP 401\)$`, "get", "containers")
	l.env["SWITCHYARD_TOKEN"] = ""
	l.fail(exitUsage, `^error: no token`, "get", "containers")
}

func TestLoginAndVersion(t *testing.T) {
	l := newLab(t, false)
	cfg := filepath.Join(t.TempDir(), "sy", "config.yaml")
	l.env["SWITCHYARD_CONFIG"] = cfg
	l.env["SWITCHYARD_TOKEN"] = ""
	l.env["SWITCHYARD_URL"] = ""
	r := l.runIn(t.Context(), "sy_test_admin_token\n", "login", "--server", l.url+"/api/v1", "--token-stdin")
	if r.code != 0 || !strings.HasPrefix(r.out, "Logged in to "+l.url+" (revision ") {
		t.Fatalf("login: %+v", r)
	}
	st, err := os.Stat(cfg)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st.Mode(), err)
	}
	// The config file is enough now.
	if got := l.ok("version"); !strings.Contains(got, "Client: syctl dev (API 1.0.0)\nServer: "+l.url+" (API 1.0.0, revision ") {
		t.Fatalf("version: %q", got)
	}
	l.fail(1, `^error: login to .*HTTP 401\)$`, "login", "--server", l.url, "--token", "nope")
	if got := l.ok("completion", "bash"); !strings.Contains(got, "__start_syctl") {
		t.Fatal("no bash completion")
	}
	// Dynamic completion of names.
	l.ok("create", "network", "blue", "cidr=10.10.0.0/24")
	if got := l.ok("__complete", "get", "networks", "bl"); !strings.HasPrefix(got, "blue\n") {
		t.Fatalf("completion of names: %q", got)
	}
}
