package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// 1,000 network creates sent at 1,000 per second against a real store,
// once with a tiny admission limit and once with the defaults: every
// request is answered, 201 or 429 problem+json with Retry-After, never 5xx
// nor a client timeout; exactly the networks answered 201 exist (a refused
// write left nothing behind). Latencies are logged (figures in
// docs/failure-matrix.md), not asserted.
func TestOverloadAnswers429(t *testing.T) {
	db := testenv.DatabaseURL(t)
	for k, tc := range []struct {
		name string
		max  int
		wait time.Duration
	}{
		{"limit 2, wait 20ms", 2, 20 * time.Millisecond},
		{"defaults", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctl := testenv.Start(t, db, func(s *api.Server) { s.MaxInflightWrites, s.AdmissionWait = tc.max, tc.wait })
			overload(t, ctl.URL, fmt.Sprintf("ov%d-", k), 100+k*4)
		})
	}
}

type outcome struct {
	name    string
	code    int
	took    time.Duration
	retry   string
	ctype   string
	problem string
}

// overload sends n creates paced at 1/ms and checks the answers (see
// TestOverloadAnswers429); networks are named prefix<i>, CIDRs from
// 10.<octet>.0.0/22 up.
func overload(t *testing.T, base, prefix string, octet int) {
	const n = 1000
	hc := testenv.Client(nil)
	out := make([]outcome, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s%d", prefix, i)
			body, _ := json.Marshal(map[string]any{"name": name, "cidr": fmt.Sprintf("10.%d.%d.0/24", octet+i/256, i%256)})
			req, _ := http.NewRequest("POST", base+"/api/v1/networks", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
			t0 := time.Now()
			res, err := hc.Do(req)
			o := outcome{name: name, took: time.Since(t0)}
			if err != nil {
				o.problem = err.Error()
			} else {
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(res.Body)
				res.Body.Close()
				o.code, o.retry, o.ctype, o.problem = res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("Content-Type"), buf.String()
			}
			out[i] = o
		}()
	}
	sent := time.Since(start)
	wg.Wait()
	all := time.Since(start)

	tally := map[int]int{}
	var lat, lat429 []time.Duration
	created := map[string]bool{}
	for _, o := range out {
		tally[o.code]++
		switch o.code {
		case http.StatusCreated:
			created[o.name] = true
			lat = append(lat, o.took)
		case http.StatusTooManyRequests:
			lat429 = append(lat429, o.took)
			if o.retry == "" || o.ctype != api.ProblemContentType {
				t.Errorf("429 without Retry-After or problem+json: %q %q %s", o.retry, o.ctype, o.problem)
			}
		default:
			t.Errorf("%s: %d %s", o.name, o.code, o.problem)
		}
	}
	if tally[http.StatusCreated] == 0 {
		t.Fatalf("nothing admitted: %v", tally)
	}
	// Exactly the admitted ones exist.
	var stored []openapi.Network
	for next := ""; ; {
		var l openapi.List[openapi.Network]
		req, _ := http.NewRequest("GET", base+"/api/v1/networks?limit=500&continue="+url.QueryEscape(next), nil)
		req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(res.Body).Decode(&l)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, l.Items...)
		if next = l.Continue; next == "" {
			break
		}
	}
	got := 0
	for _, nw := range stored {
		if len(nw.Name) > len(prefix) && nw.Name[:len(prefix)] == prefix {
			got++
			if !created[nw.Name] {
				t.Errorf("network %s exists but its create was refused", nw.Name)
			}
		}
	}
	if got != len(created) {
		t.Errorf("%d networks %s* exist, %d creates answered 201", got, prefix, len(created))
	}
	t.Logf("%d creates sent in %v, all answered after %v: %v; 201 latency p50 %v p99 %v max %v; 429 latency p50 %v max %v",
		n, sent.Round(time.Millisecond), all.Round(time.Millisecond), tally,
		pct(lat, 50), pct(lat, 99), pct(lat, 100), pct(lat429, 50), pct(lat429, 100))
}

// pct is the p-th percentile of d (0 when empty).
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)].Round(time.Millisecond)
}

// With one write slot: a create waiting until realized (on a host without
// agent, so the wait lasts) has given its slot back once committed, so the
// next write is admitted rather than refused.
func TestAdmissionWaitRealizedFreesSlot(t *testing.T) {
	ctl := testenv.Start(t, testenv.DatabaseURL(t), func(s *api.Server) { s.MaxInflightWrites, s.AdmissionWait = 1, 10*time.Millisecond })
	hc := testenv.Client(nil)
	do := func(method, path string, body any) (int, []byte) { // any goroutine
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, ctl.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := hc.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer res.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		return res.StatusCode, buf.Bytes()
	}
	revision := func() int64 {
		var r struct {
			Revision int64 `json:"revision"`
		}
		code, body := do("GET", "/api/v1/revision", nil)
		if code != 200 || json.Unmarshal(body, &r) != nil {
			t.Fatalf("revision: %d %s", code, body)
		}
		return r.Revision
	}
	for _, w := range []struct {
		path string
		body any
	}{
		{"/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}},
		{"/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.90.0.0/24"}},
	} {
		if code, body := do("POST", w.path, w.body); code != 201 {
			t.Fatalf("POST %s: %d %s", w.path, code, body)
		}
	}
	rev := revision()
	waited := make(chan int, 1)
	go func() {
		code, _ := do("POST", "/api/v1/containers?wait=realized&timeout=5s", map[string]any{"name": "c1", "network": "n1", "host": "h1"})
		waited <- code
	}()
	// Committed (the revision moved) and waiting for h1.
	deadline := time.Now().Add(20 * time.Second)
	for revision() == rev {
		if time.Now().After(deadline) {
			t.Fatal("the waiting create never committed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-waited:
		t.Fatalf("the create did not wait for h1: %d", code)
	default:
	}
	if code, body := do("POST", "/api/v1/networks", map[string]any{"name": "n2", "cidr": "10.91.0.0/24"}); code != 201 {
		t.Errorf("a write while the one slot's holder waits until realized: %d %s", code, body)
	}
	if code := <-waited; code != http.StatusGatewayTimeout {
		t.Errorf("the create waiting for a host without agent: %d, want 504", code)
	}
}
