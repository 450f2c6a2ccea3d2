package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// 300 concurrent creates into a /24: exactly 253 get distinct addresses, the
// other 47 are told the network is full, and no address is handed out twice.
func TestConcurrentCreatesIntoSlash24(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	const n = 300
	type result struct {
		status int
		ip     string
		ptype  string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := e.do("POST", "/api/v1/containers", map[string]any{"name": fmt.Sprintf("c%03d", i), "network": "blue", "host": "h1"})
			results[i].status = r.Status
			var body map[string]any
			_ = jsonUnmarshal(r.Body, &body)
			if r.Status == 201 {
				results[i].ip, _ = body["ip"].(string)
			} else {
				results[i].ptype, _ = body["type"].(string)
			}
		}(i)
	}
	wg.Wait()
	seen := map[string]int{}
	created, full := 0, 0
	for i, r := range results {
		switch r.status {
		case 201:
			created++
			if prev, dup := seen[r.ip]; dup {
				t.Errorf("address %s handed to c%03d and c%03d", r.ip, prev, i)
			}
			seen[r.ip] = i
			if r.ip == "10.10.0.0" || r.ip == "10.10.0.1" || r.ip == "10.10.0.255" {
				t.Errorf("handed out reserved address %s", r.ip)
			}
		case 409:
			full++
			if r.ptype != "https://switchyard.dev/problems/exhausted" {
				t.Errorf("409 of type %q", r.ptype)
			}
		default:
			t.Errorf("c%03d: status %d", i, r.status)
		}
	}
	if created != 253 || full != 47 {
		t.Fatalf("%d created, %d refused; want 253 and 47", created, full)
	}
	var l openapi.List[openapi.Container]
	e.must(200, "GET", "/api/v1/containers?limit=1000", nil).decode(t, &l)
	if len(l.Items) != 253 {
		t.Fatalf("%d containers stored", len(l.Items))
	}
}

// Two replicas on one database both serve and see each other's writes, and
// a restarted replica has lost nothing.
func TestReplicasAndRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	second := testenv.Start(t, e.db, nil)
	other := *e
	other.ctl = second
	other.must(201, "POST", "/api/v1/containers", map[string]any{"name": "from-b", "network": "blue", "host": "h1"})
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "from-a", "network": "blue", "host": "h2"})
	e.must(200, "GET", "/api/v1/containers/from-b", nil)
	other.must(200, "GET", "/api/v1/containers/from-a", nil)

	// An event stream on replica B sees a write made through replica A.
	start := other.revision()
	done := make(chan []openapi.Event, 1)
	go func() { done <- readEvents(t, &other, fmt.Sprintf("?since=%d", start), nil, 1) }()
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "late", "network": "blue", "host": "h1"})
	if ev := <-done; ev[0].Name != "late" {
		t.Fatalf("replica B streamed %+v", ev)
	}

	before := e.must(200, "GET", "/api/v1/containers?limit=1000", nil).Body
	rev := e.revision()
	e.ctl.Close()
	second.Close()
	third := testenv.Start(t, e.db, nil)
	e.ctl = third
	after := e.must(200, "GET", "/api/v1/containers?limit=1000", nil).Body
	if string(before) != string(after) || e.revision() != rev {
		t.Fatalf("restart changed state:\n%s\n%s", before, after)
	}
	// IPAM carries on where it was: h1's block has .2 and .3 (from-a on h2
	// is in h2's block, 10.10.0.64/26).
	var c openapi.Container
	e.must(201, "POST", "/api/v1/containers", map[string]any{"name": "after", "network": "blue", "host": "h1"}).decode(t, &c)
	if c.IP != "10.10.0.4" || c.IPBlock != "10.10.0.0/26" {
		t.Fatalf("after restart got %s in %q, want 10.10.0.4 in 10.10.0.0/26", c.IP, c.IPBlock)
	}
}

// Several replicas booting at once against an empty database: migrations
// run once, under the advisory lock, and every replica comes up.
func TestConcurrentBoot(t *testing.T) {
	db := testenv.DatabaseURL(t)
	var wg sync.WaitGroup
	stores := make([]*store.Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := store.Open(context.Background(), db, store.Options{})
			if err == nil {
				err = st.Migrate(context.Background())
			}
			stores[i], errs[i] = st, err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer stores[i].Close()
		if err := stores[i].Ready(context.Background()); err != nil {
			t.Fatalf("replica %d not ready: %v", i, err)
		}
	}
}
