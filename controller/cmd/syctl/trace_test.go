package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

var portRE = regexp.MustCompile(`syc[0-9a-f]{12}`)

// TestTrace: the report of a trace through a service and of one between
// containers (the lab has no agents: its hosts are behind and their
// switches unavailable), -o json, and the arguments syctl refuses.
func TestTrace(t *testing.T) {
	l := newLab(t, true)
	// Port names derive from container IDs, which change from run to run.
	golden(t, "trace-web1-web2.txt", portRE.ReplaceAllString(l.ok("trace", "web1", "web2", "tcp/8080"), "syc<port>"))
	// Which backend the trace follows depends on the IDs too (bucket order).
	svc := l.ok("trace", "container/web1", "service/web", "tcp/80", "--network", "blue")
	for _, want := range []string{"service web 10.96.0.1:80 -> port 8080, backends:", "<- traced", "DNAT on h1: 10.96.0.1:80 -> 10.10.0.",
		"ingress at web", "5 ServiceLB        prio 100   service web"} {
		if !strings.Contains(svc, want) {
			t.Errorf("trace to the service: no %q in\n%s", want, svc)
		}
	}
	var tr openapi.Trace
	if err := json.Unmarshal([]byte(l.ok("trace", "192.168.200.50", "host/h2", "tcp/8080", "-o", "json")), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Intent.Path != "inbound" || tr.Intent.Destination.Kind != "published" || len(tr.Compiled) != 1 || tr.Compiled[0].Host != "h2" {
		t.Fatalf("outside -> host/h2: %+v", tr.Intent)
	}
	l.fail(exitUsage, `icmp takes no port`, "trace", "web1", "web2", "icmp/1")
	l.fail(exitUsage, `want tcp/PORT`, "trace", "web1", "web2", "tcp")
	l.fail(exitUsage, `want a container name, an IPv4 address`, "trace", "service/web", "web2", "tcp/80")
	l.fail(exitUsage, `accepts 3 arg`, "trace", "web1", "web2")
	l.fail(exitError, `no container "nope".*field source.container.*HTTP 422`, "trace", "nope", "web2", "tcp/80")
}
