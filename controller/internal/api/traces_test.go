package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// seedTrace: web on h1 and db on h2 in blue; db takes TCP 5432 from web
// only.
func (e *env) seedTrace() {
	e.t.Helper()
	e.seed()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "web", "network": "blue", "host": "h1", "labels": map[string]string{"app": "web"}})
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "db", "network": "blue", "host": "h2", "labels": map[string]string{"app": "db"}})
	e.must(201, "POST", "/api/v1/policies", map[string]any{"name": "db-in", "network": "blue", "selector": "app=db",
		"ingress": []map[string]any{{"peers": []map[string]any{{"selector": "app=web"}}, "ports": []map[string]any{{"port": 5432}}}}})
}

func (e *env) trace(body map[string]any, opts ...reqOpt) openapi.Trace {
	e.t.Helper()
	var tr openapi.Trace
	e.must(200, "POST", "/api/v1/traces", body, opts...).decode(e.t, &tr)
	return tr
}

func traceBody(src, dst string, port int) map[string]any {
	return map[string]any{"source": map[string]any{"container": src}, "destination": map[string]any{"container": dst}, "port": port}
}

// fakeAgent answers host's jobs with answer until ctx ends.
func (e *env) fakeAgent(ctx context.Context, wg *sync.WaitGroup, host string, answer func(openapi.NodeJob) openapi.NodeJobResult) {
	tok := withToken(e.newToken("agent-"+host, "node", host))
	wg.Go(func() {
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", e.ctl.URL+"/api/v1/nodes/"+host+"/jobs?timeout=2s", nil)
			tok(req)
			r, err := e.http.Do(req)
			if err != nil {
				return
			}
			var jobs openapi.NodeJobs
			if r.StatusCode == http.StatusOK {
				_ = json.NewDecoder(r.Body).Decode(&jobs)
			}
			r.Body.Close()
			for _, j := range jobs.Jobs {
				e.do("POST", "/api/v1/nodes/"+host+"/jobs/"+j.ID+"/result", answer(j), tok)
			}
		}
	})
}

// waitAgents traces body until no host of its path says its agent is
// unavailable (the fake agents' first polls arrived).
func (e *env) waitAgents(body map[string]any, opts ...reqOpt) {
	e.t.Helper()
	for i := 0; ; i++ {
		tr := e.trace(body, opts...)
		ready := true
		for _, r := range tr.Realized {
			ready = ready && r.Switch != nil && r.Switch.Status != "unavailable"
		}
		if ready {
			return
		}
		if i == 200 {
			e.t.Fatalf("the agents never polled: %+v", tr.Realized)
		}
		time.Sleep(10 * time.Millisecond) // between checks of a condition, not a wait for it
	}
}

// TestTraceLayers: without agents the realized layer says unavailable;
// with agents, a switch that drops what the compiled flows deliver is a
// disagreement naming its host, and a probe answered is the live layer.
func TestTraceLayers(t *testing.T) {
	e := newEnv(t, nil)
	e.seedTrace()
	tr := e.trace(traceBody("web", "db", 5432))
	if !tr.Intent.Allowed || tr.Intent.Path != "tunnel" || strings.Join(tr.Intent.Hosts, ",") != "h1,h2" || tr.Intent.Ingress.Decision.Policy != "db-in" {
		t.Fatalf("intent %+v", tr.Intent)
	}
	if len(tr.Compiled) != 2 || tr.Compiled[1].Verdict != "output" || len(tr.Realized) != 2 {
		t.Fatalf("compiled %+v realized %+v", tr.Compiled, tr.Realized)
	}
	for _, r := range tr.Realized {
		if r.Switch == nil || r.Switch.Status != "unavailable" || r.Current {
			t.Fatalf("no agent: realized %+v", r)
		}
	}
	// No agent ever reported: the hosts are behind, which is a disagreement.
	if !tr.Disagreement {
		t.Fatalf("hosts that applied nothing: %+v", tr)
	}

	denied := e.trace(traceBody("db", "web", 80))
	if !denied.Intent.Allowed || denied.Intent.Egress.Container != "db" {
		t.Fatalf("db -> web: %+v", denied.Intent)
	}
	isolated := e.trace(traceBody("web", "db", 80))
	if isolated.Intent.Allowed || isolated.Intent.Ingress.Decision.Reason != "isolated" || isolated.Compiled[1].Verdict != "drop" {
		t.Fatalf("web -> db :80: %+v", isolated)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var mu sync.Mutex
	var flows []string
	e.fakeAgent(ctx, &wg, "h1", func(j openapi.NodeJob) openapi.NodeJobResult {
		switch j.Kind {
		case openapi.NodeJobProbe:
			if j.Probe.Address == "" || j.Probe.Port != 5432 {
				return openapi.NodeJobResult{Status: "error", Error: fmt.Sprintf("probe %+v", j.Probe)}
			}
			return openapi.NodeJobResult{Status: "ok", Probe: &openapi.NodeProbeResult{Outcome: "answered", Micros: 1234}}
		}
		mu.Lock()
		flows = append(flows, j.Trace.Flow)
		mu.Unlock()
		return openapi.NodeJobResult{Status: "error", Error: "ovs-vswitchd is not running"}
	})
	e.fakeAgent(ctx, &wg, "h2", func(j openapi.NodeJob) openapi.NodeJobResult {
		return openapi.NodeJobResult{Status: "ok", Trace: &openapi.NodeTraceResult{Output: " 0. in_port=9, priority 0\n    drop\n\nDatapath actions: drop\n"}}
	})
	op := withToken(e.newToken("op", "operator", ""))
	body := traceBody("web", "db", 5432)
	e.waitAgents(body, op)
	mu.Lock()
	flows = nil
	mu.Unlock()
	body["probe"] = true
	tr = e.trace(body, op)
	if s := tr.Realized[0].Switch; s == nil || s.Status != "error" || !strings.Contains(s.Error, "not running") {
		t.Fatalf("h1's switch %+v", s)
	}
	if s := tr.Realized[1].Switch; s == nil || s.Status != "ok" || s.Verdict != "drop" {
		t.Fatalf("h2's switch %+v", s)
	}
	found := false
	for _, d := range tr.Disagreements {
		if d.Host == "h2" && strings.Join(d.Layers, ",") == "compiled,realized" && strings.Contains(d.Flow, "Classifier") {
			found = true
		}
	}
	if !found || !strings.HasPrefix(tr.Conclusion, "DISAGREEMENT") {
		t.Fatalf("want h2's drop as a disagreement: %+v / %s", tr.Disagreements, tr.Conclusion)
	}
	if tr.Live == nil || tr.Live.Status != "answered" || tr.Live.Micros != 1234 || tr.Live.Host != "h1" {
		t.Fatalf("live %+v", tr.Live)
	}
	mu.Lock()
	if len(flows) != 1 || !strings.HasPrefix(flows[0], "in_port=syc") || !strings.Contains(flows[0], "tcp_dst=5432") {
		t.Fatalf("h1's trace job flows %v", flows)
	}
	mu.Unlock()

	// Probes are rate-limited per token: the burst of 5 was started above.
	var last resp
	for i := 0; i < 6; i++ {
		if last = e.do("POST", "/api/v1/traces", body, op); last.Status == http.StatusTooManyRequests {
			break
		}
	}
	p := e.wantProblem(last, http.StatusTooManyRequests, "probe")
	if last.Header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %v", p)
	}
	delete(body, "probe")
	e.trace(body, op) // tracing without a probe is not limited
}

func TestTraceBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	e.seedTrace()
	for _, tc := range []struct {
		body   map[string]any
		status int
		field  string
	}{
		{traceBody("nope", "db", 80), 422, "source.container"},
		{traceBody("web", "nope", 80), 422, "destination.container"},
		{map[string]any{"source": map[string]any{"container": "web"}, "destination": map[string]any{"container": "db"}}, 400, "port"},
		{map[string]any{"source": map[string]any{"container": "web"}, "destination": map[string]any{"container": "db"}, "protocol": "ICMP", "port": 1}, 400, "port"},
		{map[string]any{"source": map[string]any{"container": "web"}, "destination": map[string]any{}, "port": 80}, 400, "destination"},
		{map[string]any{"source": map[string]any{"address": "nope"}, "destination": map[string]any{"container": "db"}, "port": 80}, 400, "source.address"},
		{map[string]any{"source": map[string]any{"container": "web"}, "destination": map[string]any{"host": "h9"}, "port": 80}, 422, "destination.host"},
		{map[string]any{"source": map[string]any{"address": "192.168.50.1"}, "destination": map[string]any{"host": "h1"}, "port": 8080}, 422, "port"},
		{map[string]any{"source": map[string]any{"container": "web"}, "destination": map[string]any{"container": "db"}, "port": 80, "bogus": 1}, 400, "bogus"},
	} {
		e.wantProblem(e.do("POST", "/api/v1/traces", tc.body), tc.status, tc.field)
	}
	viewer := withToken(e.newToken("v", "viewer", ""))
	e.wantProblem(e.do("POST", "/api/v1/traces", traceBody("web", "db", 80), viewer), 403, "")
	node := withToken(e.newToken("n1", "node", "h1"))
	e.wantProblem(e.do("GET", "/api/v1/nodes/h2/jobs?timeout=1s", nil, node), 403, "")
	e.wantProblem(e.do("POST", "/api/v1/nodes/h1/jobs/0123abcd/result", map[string]any{"status": "ok"}, node), 404, "")
	e.wantProblem(e.do("GET", "/api/v1/nodes/h1/jobs?timeout=1m", nil, node), 400, "timeout")
	if r := e.do("GET", "/api/v1/nodes/h1/jobs?timeout=10ms", nil, node); r.Status != http.StatusNoContent {
		t.Fatalf("an idle jobs poll: %d %s", r.Status, r.Body)
	}
}
