package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi/client"
)

// benchContainers is how many containers the benchmark lists.
const benchContainers = 10000

// seedContainers creates n containers on 10 hosts through the API, with a
// few concurrent writers.
func seedContainers(b *testing.B, url string, n int) {
	b.Helper()
	c := client.New(url, testenv.AdminToken)
	ctx := context.Background()
	if _, err := c.Do(ctx, "POST", "/api/v1/networks", map[string]any{"name": "bench", "cidr": "10.128.0.0/16"}, nil); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		h := map[string]any{"name": fmt.Sprintf("h%d", i), "address": fmt.Sprintf("192.168.201.%d", i+1)}
		if _, err := c.Do(ctx, "POST", "/api/v1/hosts", h, nil); err != nil {
			b.Fatal(err)
		}
	}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				ct := map[string]any{"name": fmt.Sprintf("c%05d", i), "network": "bench", "host": fmt.Sprintf("h%d", i%10),
					"labels": map[string]string{"app": fmt.Sprintf("app%d", i%50)}}
				if _, err := c.Do(ctx, "POST", "/api/v1/containers", ct, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGetContainers10k measures `syctl get containers` on 10,000
// containers: in process per output format (time, bytes and allocations per
// run), and the built binary as a user runs it (wall time and peak RSS).
func BenchmarkGetContainers10k(b *testing.B) {
	ctl := testenv.Start(b, testenv.DatabaseURL(b), nil)
	seedContainers(b, ctl.URL, benchContainers)
	env := map[string]string{"SWITCHYARD_URL": ctl.URL, "SWITCHYARD_TOKEN": testenv.AdminToken, "HOME": b.TempDir()}
	getenv := func(k string) string { return env[k] }
	for _, f := range formats {
		b.Run("o="+f, func(b *testing.B) {
			b.ReportAllocs()
			var out countWriter
			for i := 0; i < b.N; i++ {
				out = 0
				if code := run(context.Background(), []string{"get", "containers", "-o", f}, strings.NewReader(""), &out, io.Discard, getenv); code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
			b.ReportMetric(float64(out), "out-bytes")
		})
	}
	// describe replays the container events up to the object's revision:
	// the first container's, then the last one's (10,000 events later).
	for _, name := range []string{"c00000", fmt.Sprintf("c%05d", benchContainers-1)} {
		b.Run("describe="+name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if code := run(context.Background(), []string{"describe", "container", name}, strings.NewReader(""), io.Discard, io.Discard, getenv); code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
		})
	}
	b.Run("binary", func(b *testing.B) {
		bin := filepath.Join(b.TempDir(), "syctl")
		gocmd, err := exec.LookPath("go")
		if err != nil {
			gocmd = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if out, err := exec.Command(gocmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
		// The peak RSS comes from /usr/bin/time (a child of this process
		// would count the memory it shared with the test process at fork).
		timer, err := exec.LookPath("/usr/bin/time")
		if err != nil {
			b.Skip("no /usr/bin/time to measure the peak RSS")
		}
		b.ResetTimer()
		var maxRSS int64
		for i := 0; i < b.N; i++ {
			var stderr strings.Builder
			cmd := exec.Command(timer, "-f", "maxrss=%M", bin, "get", "containers")
			cmd.Env = append(os.Environ(), "SWITCHYARD_URL="+ctl.URL, "SWITCHYARD_TOKEN="+testenv.AdminToken)
			cmd.Stdout, cmd.Stderr = io.Discard, &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("%v: %s", err, stderr.String())
			}
			_, kb, _ := strings.Cut(stderr.String(), "maxrss=")
			n, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
			if err != nil {
				b.Fatalf("/usr/bin/time said %q", stderr.String())
			}
			maxRSS = max(maxRSS, n)
		}
		b.ReportMetric(float64(maxRSS)/1024, "maxRSS-MB")
	})
}

// countWriter counts what is written to it.
type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) {
	*w += countWriter(len(p))
	return len(p), nil
}
