package console

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkConsole loads the console in headless chromium with 100 hosts,
// 10 networks and 2,000 containers (SWITCHYARD_BENCH_CONSOLE_SHAPE
// "HOSTSxCONTAINERS" changes it) and reports, per op:
//   - overview-ms, topology-ms: from the start of navigation (a fresh tab
//     signing in from the URL) until the page shows every host;
//   - dots-ms: the same for the Topology at full detail (one dot per
//     container, ?detail=containers);
//   - overview-bytes, topology-bytes: what the load transferred (encoded:
//     the console's files and the API's answers);
//   - update-p50-ms, update-p99-ms: from an API write (POST a container)
//     until the open Containers page shows it, over 50 writes.
func BenchmarkConsole(b *testing.B) {
	hosts, containers := 100, 2000
	if v := os.Getenv("SWITCHYARD_BENCH_CONSOLE_SHAPE"); v != "" {
		if _, err := fmt.Sscanf(v, "%dx%d", &hosts, &containers); err != nil {
			b.Fatalf("SWITCHYARD_BENCH_CONSOLE_SHAPE=%q: want HOSTSxCONTAINERS", v)
		}
	}
	chromium(b)
	s := startServer(b)
	populate(b, s, hosts, containers)
	br := newBrowser(b, 1280, 900)

	var overview, topology, dots, obytes, tbytes float64
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb := br.tab(b)
		overview += firstRender(tb, s.URL+"/overview", fmt.Sprintf(`document.querySelectorAll('.page-overview tbody tr').length >= %d`, min(hosts, 200)))
		obytes += tb.transferred()
		tb2 := br.tab(b)
		topology += firstRender(tb2, s.URL+"/topology", fmt.Sprintf(`document.querySelectorAll('.topo-host').length === %d`, hosts))
		tbytes += tb2.transferred()
		dots += firstRender(tb2, s.URL+"/topology?detail=containers", fmt.Sprintf(`document.querySelectorAll('.topo-host').length === %d && document.querySelectorAll('a.node').length === %d`, hosts, containers))
		if i == 0 {
			tb2.screenshot("topology-scale-dots")
			firstRender(tb2, s.URL+"/topology", fmt.Sprintf(`document.querySelectorAll('.topo-host').length === %d`, hosts))
			tb2.screenshot("topology-scale")
		}
		lat = append(lat, updates(b, tb, s, i, 50)...)
		if bad := append(tb.unexpected(), tb2.unexpected()...); len(bad) > 0 {
			b.Fatalf("the browser logged: %v", bad)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	slices.Sort(lat)
	b.ReportMetric(overview/n, "overview-ms")
	b.ReportMetric(topology/n, "topology-ms")
	b.ReportMetric(dots/n, "dots-ms")
	b.ReportMetric(obytes/n, "overview-bytes")
	b.ReportMetric(tbytes/n, "topology-bytes")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "update-p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "update-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// firstRender navigates a fresh tab (signing in from the URL) and returns
// the milliseconds from the navigation's start until cond holds.
func firstRender(tb *tab, url, cond string) float64 {
	var ms float64
	tb.run("first render of "+url, 60*time.Second, chromedp.Navigate(url+"#token="+adminToken),
		chromedp.Poll(`(`+cond+`) && performance.now()`, &ms, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(5*time.Millisecond)))
	return ms
}

// updates creates n containers through the API while tab shows the
// Containers page filtered to them, and returns how long each took to show.
func updates(b *testing.B, tb *tab, s *server, round, n int) []time.Duration {
	prefix := fmt.Sprintf("lat-%d-", round)
	tb.run("containers page", 60*time.Second, chromedp.Navigate(s.URL+"/containers?network=net-0&q="+prefix), visible(`table[aria-label=Containers]`))
	var out []time.Duration
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		start := time.Now()
		s.must(b, "POST", "/api/v1/containers", map[string]any{"name": name, "network": "net-0", "host": "host-0"}, nil)
		tb.run("update "+name, 30*time.Second, waitJS(fmt.Sprintf(`document.querySelector('tr[data-key="net-0/%s"]') !== null`, name), 30*time.Second))
		out = append(out, time.Since(start))
	}
	return out
}

// populate creates the hosts (through the API: the pages need no agent),
// 10 networks and the containers spread over both, 16 writes at a time.
func populate(b *testing.B, s *server, hosts, containers int) {
	b.Helper()
	ctx := context.Background()
	nets := 10
	for i := range nets {
		s.must(b, "POST", "/api/v1/networks", map[string]any{"name": fmt.Sprintf("net-%d", i), "cidr": fmt.Sprintf("10.%d.0.0/16", 100+i)}, nil)
	}
	jobs := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := j(); err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range hosts {
		jobs <- func() error {
			_, err := s.do(ctx, adminToken, "POST", "/api/v1/hosts", map[string]any{"name": fmt.Sprintf("host-%d", i), "address": fmt.Sprintf("172.20.%d.%d", i/250, 1+i%250)}, nil)
			return err
		}
	}
	for i := range containers {
		jobs <- func() error {
			_, err := s.do(ctx, adminToken, "POST", "/api/v1/containers", map[string]any{"name": fmt.Sprintf("c-%d", i), "network": fmt.Sprintf("net-%d", i%nets),
				"host": fmt.Sprintf("host-%d", i%hosts), "labels": map[string]string{"app": fmt.Sprintf("app-%d", i%7)}}, nil)
			return err
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
