package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Simulated node agents for the benchmarks: each registers its host through
// the node protocol, long-polls its program, patches it with the deltas it
// gets (digest-checked), optionally spends a modelled apply time, and posts
// its status. No OVS: they measure the controller's side only.

// fleet is a set of simulated agents on one controller.
type fleet struct {
	// urls are the controller replicas; an agent uses urls[i%len] (i: its
	// host's index), admin requests urls[0]. Agents pick it up when they
	// reconnect.
	urls   atomic.Pointer[[]string]
	client *http.Client
	// apply models an agent's apply time per update (0: none).
	apply time.Duration

	mu      sync.Mutex
	digests map[string]string // host -> digest applied
	changed chan struct{}     // closed (and replaced) on every applied update

	index map[string]int // host -> its index (under mu)

	full, deltas, bytes atomic.Int64 // updates received
	errs                atomic.Int64
	firstErr            atomic.Value
	// tolerant: an agent that meets an error (its controller went away)
	// retries with the real agent's backoff instead of failing, and
	// reports its status to the controller it reaches before polling.
	tolerant   atomic.Bool
	reconnects atomic.Int64
	// dead are the addresses (host:port) of replicas that were stopped:
	// the agents' connections to them fail at once, as to a process that
	// died (a test server closes its listener only after its connections,
	// and the HTTP client would retry a long-poll into that gap).
	dead sync.Map
}

func newFleet(url string, apply time.Duration) *fleet {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, 4096
	var f *fleet
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, ok := f.dead.Load(addr); ok {
			return nil, fmt.Errorf("dial %s: the replica was stopped", addr)
		}
		return dial(ctx, network, addr)
	}
	f = &fleet{client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}, apply: apply,
		digests: map[string]string{}, changed: make(chan struct{}), index: map[string]int{}}
	f.setURLs(url)
	return f
}

// setURLs points the fleet at other replicas (see urls).
func (f *fleet) setURLs(urls ...string) {
	for _, u := range urls {
		if p, err := url.Parse(u); err == nil {
			f.dead.Delete(p.Host) // a new replica on a dead one's port
		}
	}
	f.urls.Store(&urls)
}

// kill makes connections to the replica at u fail from now on.
func (f *fleet) kill(u string) {
	if p, err := url.Parse(u); err == nil {
		f.dead.Store(p.Host, true)
	}
}

// base is the URL of host's replica.
func (f *fleet) base(host string) string {
	urls := *f.urls.Load()
	f.mu.Lock()
	i := f.index[host]
	f.mu.Unlock()
	return urls[i%len(urls)]
}

// do sends an admin request to the first replica and decodes a JSON answer
// into out (if any).
func (f *fleet) do(ctx context.Context, method, path string, body, out any) (int, error) {
	return f.doAt(ctx, (*f.urls.Load())[0], method, path, body, out)
}

// doAt is do on the replica at url.
func (f *fleet) doAt(ctx context.Context, url, method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	f.bytes.Add(int64(len(b)))
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		return res.StatusCode, json.Unmarshal(b, out)
	}
	return res.StatusCode, nil
}

func (f *fleet) fail(err error) {
	if f.errs.Add(1) == 1 {
		f.firstErr.Store(err)
	}
}

// check fails b if an agent met an error.
func (f *fleet) check(b testing.TB) {
	if e := f.firstErr.Load(); e != nil {
		b.Fatalf("%d agent errors, the first: %v", f.errs.Load(), e)
	}
}

// register registers host (address from its index) through the node
// protocol.
func (f *fleet) register(ctx context.Context, host string, i int) error {
	f.mu.Lock()
	f.index[host] = i
	f.mu.Unlock()
	reg := openapi.NodeRegistration{Address: fmt.Sprintf("10.%d.%d.%d", 100+i/65536, i/256%256, i%256), TunnelType: "geneve"}
	_, err := f.doAt(ctx, f.base(host), "POST", "/api/v1/nodes/"+host+"/register", reg, nil)
	return err
}

// lost tells whether the agent should retry after err (the fleet is
// tolerant and ctx has not ended), waiting as the real agent does first;
// otherwise it records err (unless ctx ended).
func (f *fleet) lost(ctx context.Context, bo backoff.BackOff, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if !f.tolerant.Load() {
		f.fail(err)
		return false
	}
	f.reconnects.Add(1)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(bo.NextBackOff()): // the agent's retry policy, not a wait for readiness
		return true
	}
}

// agentBackOff is the real agent's retry policy (node/internal/agent):
// 200 ms doubling to 10 s, each delay spread by up to a half either way.
func agentBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor, b.MaxElapsedTime = 200*time.Millisecond, 10*time.Second, 0.5, 0
	b.Reset()
	return b
}

// run is one agent's loop until ctx ends. After an error (tolerant
// fleets) it first reports its status to the replica it reaches, as its
// heartbeat would, then polls with its digest.
func (f *fleet) run(ctx context.Context, host string) {
	var cur *program.Tracked
	bo := agentBackOff()
	report := func() bool {
		st := openapi.NodeStatus{AppliedRevision: cur.P.Revision, Digest: cur.P.Digest, Ports: []openapi.PortStatus{}}
		for {
			_, err := f.doAt(ctx, f.base(host), "POST", "/api/v1/nodes/"+host+"/status", st, nil)
			if err == nil {
				bo.Reset()
				return true
			}
			if !f.lost(ctx, bo, err) {
				return false
			}
		}
	}
	reconnected := false
	for ctx.Err() == nil {
		if reconnected && cur != nil && !report() {
			return
		}
		reconnected = false
		q := url.Values{"timeout": {"60s"}}
		if cur != nil {
			q.Set("digest", cur.P.Digest)
			q.Set("revision", strconv.FormatInt(cur.P.Revision, 10))
		}
		var up openapi.ProgramUpdate
		code, err := f.doAt(ctx, f.base(host), "GET", "/api/v1/nodes/"+host+"/program?"+q.Encode(), nil, &up)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !f.lost(ctx, bo, err) {
				return
			}
			reconnected = true
			continue
		case code == http.StatusNoContent:
			continue
		case up.Full:
			f.full.Add(1)
			cur = program.Track(up.Program)
		default:
			f.deltas.Add(1)
			next, err := cur.Patch(up.Delta)
			if err != nil {
				f.fail(fmt.Errorf("%s: %w", host, err))
				return
			}
			cur = next
		}
		bo.Reset()
		cur.P.Revision = up.Revision
		if f.apply > 0 {
			time.Sleep(f.apply) // the modelled apply, not a wait for readiness
		}
		if !report() {
			return
		}
		f.mu.Lock()
		f.digests[host] = cur.P.Digest
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	}
}

// waitDigests returns once every host of want has applied its digest.
func (f *fleet) waitDigests(b testing.TB, want map[string]string) {
	b.Helper()
	for {
		f.mu.Lock()
		ch, missing := f.changed, 0
		for h, d := range want {
			if f.digests[h] != d {
				missing++
			}
		}
		f.mu.Unlock()
		if missing == 0 {
			return
		}
		f.check(b)
		select {
		case <-ch:
		case <-time.After(2 * time.Minute): // a hang guard, not a timing
			b.Fatalf("%d agents never reached their program", missing)
		}
	}
}

// fill creates n containers named prefix0.. over networks and hosts chosen
// by place (container index -> network, host), through the store with
// concurrent writers (the store commits them in groups).
func fill(b testing.TB, ctl *testenv.Controller, prefix string, n int, place func(i int) (string, string)) {
	b.Helper()
	ctx := context.Background()
	parallel(b, n, func(i int) error {
		netw, host := place(i)
		c := openapi.Container{Name: fmt.Sprint(prefix, i), Network: netw, Host: host}
		_, err := ctl.Store.CreateContainer(ctx, "bench", c)
		return err
	})
}

// cpuTime is the CPU time this process used so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMB is this process's resident set size now, in MB (from /proc).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
