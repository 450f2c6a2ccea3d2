package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// benchEnv is a controller with a /16 network, 10 hosts and 10,000
// containers already stored, shared by the benchmarks of one run.
type benchEnv struct {
	url    string
	client *http.Client
}

// seeded10k builds a benchmark environment, torn down when b ends.
func seeded10k(b *testing.B) *benchEnv {
	{
		db := testenv.DatabaseURL(b)
		ctl := testenv.Start(b, db, nil)
		e := &benchEnv{url: ctl.URL, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}}
		e.post(b, "/api/v1/networks", `{"name":"bench","cidr":"10.128.0.0/16"}`)
		for i := 0; i < 10; i++ {
			e.post(b, "/api/v1/hosts", fmt.Sprintf(`{"name":"h%d","address":"192.168.201.%d"}`, i, i+1))
		}
		// Bulk-load 10,000 containers the way the store would have.
		ctx := context.Background()
		_, err := ctl.Store.Pool.Exec(ctx, `
			INSERT INTO containers (name, network_id, host_id, labels, ip, ip_offset, mac, revision)
			SELECT 'seed-' || i, n.id, (SELECT id FROM hosts WHERE name = 'h' || (i % 10)),
			       jsonb_build_object('app', 'app' || (i % 50)), n.cidr::inet + (i + 2), i + 2,
			       ('0a:58:0a:80:' || lpad(to_hex((i + 2) / 256), 2, '0') || ':' || lpad(to_hex((i + 2) % 256), 2, '0'))::macaddr,
			       1
			FROM generate_series(0, 9999) i, networks n WHERE n.name = 'bench'`)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ctl.Store.Pool.Exec(ctx, `UPDATE networks SET ipam_cursor = 10002; ANALYZE`); err != nil {
			b.Fatal(err)
		}
		return e
	}
}

func (e *benchEnv) do(method, path, body string) (int, error) {
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var sink [32 << 10]byte
	for {
		if _, err := res.Body.Read(sink[:]); err != nil {
			break
		}
	}
	return res.StatusCode, nil
}

func (e *benchEnv) post(b *testing.B, path, body string) {
	if code, err := e.do("POST", path, body); err != nil || code != 201 {
		b.Fatalf("POST %s: %d %v", path, code, err)
	}
}

var benchSeq atomic.Int64

// BenchmarkContainerCreate measures POST /api/v1/containers through HTTP on
// loopback, with 10,000 containers already stored, at concurrency 1, 8, 64.
// It reports latency percentiles and creates per second.
func BenchmarkContainerCreate(b *testing.B) {
	e := seeded10k(b)
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						body := fmt.Sprintf(`{"name":"b%d","network":"bench","host":"h%d","labels":{"app":"bench"}}`, benchSeq.Add(1), i%10)
						t0 := time.Now()
						code, err := e.do("POST", "/api/v1/containers", body)
						lat[i] = time.Since(t0)
						if err != nil || code != 201 {
							b.Errorf("create: %d %v", code, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
		})
	}
}

// BenchmarkListContainers10k measures listing all 10,000+ containers, in
// pages of 1,000, through HTTP.
func BenchmarkListContainers10k(b *testing.B) {
	e := seeded10k(b)
	var total int
	for i := 0; i < b.N; i++ {
		total = 0
		cont := ""
		for {
			req, _ := http.NewRequest("GET", e.url+"/api/v1/containers?limit=1000&continue="+cont, nil)
			req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
			res, err := e.client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var l openapi.List[openapi.Container]
			if err := decodeJSON(res, &l); err != nil {
				b.Fatal(err)
			}
			total += len(l.Items)
			if l.Continue == "" {
				break
			}
			cont = l.Continue
		}
	}
	if total < 10000 {
		b.Fatalf("listed %d", total)
	}
	b.ReportMetric(float64(total), "containers")
}

func decodeJSON(res *http.Response, v any) error {
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(v)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
