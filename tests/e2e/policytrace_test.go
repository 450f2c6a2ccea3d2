package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// traceTable checks issue 14's promise on a policy scenario whose table was
// just observed equal to want: a trace (POST /api/v1/traces, no probe) of
// every ordered pair of pods on every kind of the table gives intent's
// verdict as observed, its layers agree (no disagreement: the compiled flows
// and every real switch on the path say the same), and the last switch
// outputs an allowed packet and drops a denied one.
func (e *policyLab) traceTable(t *testing.T, want *truth) {
	t.Helper()
	type job struct {
		k      kind
		f, to  int
		allows bool
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if msg := e.traceOne(j.k, j.f, j.to, j.allows); msg != "" {
					mu.Lock()
					bad = append(bad, msg)
					mu.Unlock()
				}
			}
		}()
	}
	n := 0
	for _, k := range want.kinds {
		for f := 0; f < numPods; f++ {
			for to := 0; to < numPods; to++ {
				if f != to {
					jobs <- job{k, f, to, want.ok[k][f][to]}
					n++
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d traces disagree with the observed table:\n%s", len(bad), n, strings.Join(bad, "\n"))
		return
	}
	t.Logf("%d traces agree with the observed table", n)
}

// traceOne traces pod f -> pod to on k and returns what is wrong ("" when
// nothing is).
func (e *policyLab) traceOne(k kind, f, to int, allowed bool) string {
	body := map[string]any{
		"source":      map[string]any{"container": containerName(f), "network": policyNet},
		"destination": map[string]any{"container": containerName(to), "network": policyNet},
		"protocol":    strings.ToUpper(k.proto),
	}
	if k.port != 0 {
		body["port"] = k.port
	}
	what := fmt.Sprintf("%s %s -> %s (observed allowed=%v)", k, podName(f), podName(to), allowed)
	var tr openapi.Trace
	if code, err := e.Do("POST", "/api/v1/traces", body, &tr); code != 200 {
		return fmt.Sprintf("%s: trace answered %d %v", what, code, err)
	}
	switch {
	case tr.Intent.Allowed != allowed:
		return fmt.Sprintf("%s: intent says allowed=%v: %s", what, tr.Intent.Allowed, tr.Intent.Verdict)
	case tr.Disagreement:
		return fmt.Sprintf("%s: layers disagree: %+v", what, tr.Disagreements)
	case len(tr.Realized) == 0:
		return what + ": no realized layer"
	}
	last := tr.Realized[len(tr.Realized)-1].Switch
	wantVerdict := map[bool]string{true: "output", false: "drop"}[allowed]
	if last == nil || last.Status != "ok" || last.Verdict != wantVerdict {
		return fmt.Sprintf("%s: last switch %+v, want %s", what, last, wantVerdict)
	}
	return ""
}
