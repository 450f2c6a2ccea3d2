package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestGetFormats checks every kind in every format against golden files.
func TestGetFormats(t *testing.T) {
	l := newLab(t, true)
	for _, k := range kinds {
		for _, f := range formats {
			golden(t, k.plural+"."+f, l.ok("get", k.plural, "-o", f))
		}
	}
	// One object by name is the object itself in JSON, not a List.
	out := l.ok("get", "container", "web1", "-n", "blue", "-o", "json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil || m["kind"] != "container" || m["name"] != "web1" {
		t.Fatalf("get container web1 -o json: %v %s", err, out)
	}
	golden(t, "container-web1.yaml", l.ok("get", "container/web1", "-o", "yaml"))
}

func TestGetSelectorsAndFilters(t *testing.T) {
	l := newLab(t, true)
	if got := l.ok("get", "containers", "-l", "app=web", "-o", "name"); got != "container/web1\ncontainer/web2\n" {
		t.Fatalf("-l app=web: %q", got)
	}
	if got := l.ok("get", "containers", "-l", "app in (db),stack=lab", "-o", "name"); got != "container/db1\n" {
		t.Fatalf("-l set-based: %q", got)
	}
	if got := l.ok("get", "containers", "--host", "h2", "--no-headers"); !strings.HasPrefix(got, "web2   blue ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("--no-headers: %q", got)
	}
	if got := l.ok("get", "containers", "--host", "h2", "-o", "name"); got != "container/web2\n" {
		t.Fatalf("--host h2: %q", got)
	}
	if got := l.ok("get", "ct", "-n", "red", "-o", "name"); got != "container/db1\n" {
		t.Fatalf("-n red: %q", got)
	}
	r := l.run("get", "containers", "-l", "app=nothing")
	if r.code != 0 || r.out != "" || !strings.Contains(r.err, "No containers found.") {
		t.Fatalf("empty list: %+v", r)
	}
	// A selector that does not parse is the API's 400, on one line.
	l.fail(1, `^error: list containers: .*\(field selector, HTTP 400\)$`, "get", "containers", "-l", "app in (")
}

func TestDescribe(t *testing.T) {
	l := newLab(t, true)
	golden(t, "describe-service.txt", l.ok("describe", "service", "web", "-n", "blue"))
	golden(t, "describe-policy.txt", l.ok("describe", "policy", "web-from-web"))
	golden(t, "describe-container.txt", l.ok("describe", "container", "web1"))
	golden(t, "describe-network.txt", l.ok("describe", "network", "blue"))
	golden(t, "describe-host.txt", l.ok("describe", "host/h2"))
	golden(t, "describe-token.txt", l.ok("describe", "token", "bootstrap-admin"))
}
