package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

type fakeTracer struct {
	mu    sync.Mutex
	calls [][]string
}

func (f *fakeTracer) Trace(_ context.Context, bridge, flow string, ctNext []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]string{bridge, flow}, ctNext...))
	if flow == "bad" {
		return "", errors.New("Bad openflow flow syntax")
	}
	return "Datapath actions: 3", nil
}

// jobsController hands out jobs once each and collects the results.
func jobsController(t *testing.T, jobs []openapi.NodeJob) (*httptest.Server, <-chan map[string]openapi.NodeJobResult) {
	results := map[string]openapi.NodeJobResult{}
	done := make(chan map[string]openapi.NodeJobResult, 1)
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/nodes/h1/jobs", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		js := jobs
		jobs = nil
		mu.Unlock()
		if len(js) == 0 {
			select { // an idle long-poll, until the agent stops
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(openapi.NodeJobs{Jobs: js})
	})
	mux.HandleFunc("POST /api/v1/nodes/h1/jobs/{id}/result", func(w http.ResponseWriter, r *http.Request) {
		var res openapi.NodeJobResult
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &res); err != nil {
			t.Errorf("result body: %v", err)
		}
		mu.Lock()
		results[r.PathValue("id")] = res
		if len(results) == 5 {
			done <- results
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, done
}

// TestJobLoop: the agent runs the jobs it polls and posts each result:
// a switch trace through its tracer (with the ct-next flags), the tracer's
// error, a probe of a container it does not have, an unknown kind.
func TestJobLoop(t *testing.T) {
	tr := &fakeTracer{}
	srv, done := jobsController(t, []openapi.NodeJob{
		{ID: "a1", Kind: openapi.NodeJobTrace, TimeoutMillis: 1000, Trace: &openapi.NodeTraceJob{Bridge: "br-int", Flow: "in_port=p,tcp", CtNext: []string{"trk,new"}}},
		{ID: "a2", Kind: openapi.NodeJobTrace, TimeoutMillis: 1000, Trace: &openapi.NodeTraceJob{Bridge: "br-int", Flow: "bad"}},
		{ID: "a3", Kind: openapi.NodeJobProbe, TimeoutMillis: 1000, Probe: &openapi.NodeProbeJob{Container: "nope", Protocol: "TCP", Address: "10.0.0.1", Port: 80}},
		{ID: "a4", Kind: "dance", TimeoutMillis: 1000},
		{ID: "a5", Kind: openapi.NodeJobTrace, Trace: &openapi.NodeTraceJob{Bridge: "br-int", Flow: "in_port=q,udp"}},
	})
	a := New(Config{ControllerURL: srv.URL, Host: "h1", Token: "t", Tracer: tr, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, newFakeDatapath())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); a.jobLoop(ctx) }()
	defer func() { cancel(); <-stopped }()
	var res map[string]openapi.NodeJobResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not answer every job")
	}
	if r := res["a1"]; r.Status != "ok" || r.Trace == nil || r.Trace.Output != "Datapath actions: 3" {
		t.Errorf("trace job: %+v", r)
	}
	if r := res["a2"]; r.Status != "error" || r.Error == "" {
		t.Errorf("failing trace: %+v", r)
	}
	if r := res["a3"]; r.Status != "error" || r.Probe != nil {
		t.Errorf("probe of an unknown container: %+v", r)
	}
	if r := res["a4"]; r.Status != "error" {
		t.Errorf("unknown kind: %+v", r)
	}
	if r := res["a5"]; r.Status != "ok" {
		t.Errorf("a job without a timeout: %+v", r)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !slices.ContainsFunc(tr.calls, func(c []string) bool { return slices.Equal(c, []string{"br-int", "in_port=p,tcp", "trk,new"}) }) {
		t.Errorf("tracer calls %v", tr.calls)
	}
}
