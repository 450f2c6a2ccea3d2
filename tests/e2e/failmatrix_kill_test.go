package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
)

// Row 4: h2's agent SIGKILLed while it applies a change of about 1,000
// flows (a policy of 1,000 peer addresses over blue, added or removed, and
// a container added and another deleted on h2), at several moments after
// the writes (before the agent received the change, during its apply,
// after: see moment). Restarted, it converges to exactly its program: every flow of
// the new generation, the same table as a host installed from scratch (the
// agent stopped, br-int's flows deleted, the agent started), only the
// containers' ports and sandboxes that exist.
func TestFailMatrixAgentKillMidApply(t *testing.T) {
	s := newScene(t, openapi.TunnelGeneve)
	c := s.c
	defer c.Lab.DumpOnFailure(t)
	peers := make([]map[string]any, 1000)
	for i := range peers {
		peers[i] = map[string]any{"cidr": fmt.Sprintf("10.200.%d.%d/32", i/250, i%250+1)}
	}
	big := map[string]any{"name": "big", "network": "blue", "selector": "",
		"ingress": []map[string]any{
			{"peers": []map[string]any{{"selector": ""}}}, // the network's own containers keep reaching each other
			{"peers": peers, "ports": []map[string]any{{"port": 80, "protocol": "TCP"}}},
		}}
	agent := c.Agents["h2"]
	prev := ""
	// When each round's kill strikes: right after the writes (before the
	// agent heard of them), once the apply has begun (the new container's
	// sandbox made, or the deleted one's removed: links come before the
	// OVSDB transaction and the flow bundle), or well after.
	type moment struct {
		what string
		wait func(t *testing.T, newSandbox, oldSandbox string)
	}
	now := moment{"right after the writes", func(*testing.T, string, string) {}}
	later := moment{"150 ms after the writes", func(*testing.T, string, string) { time.Sleep(150 * time.Millisecond) }}
	made := moment{"mid-apply (new sandbox made)", func(t *testing.T, n, _ string) { waitNetns(t, n, true) }}
	removed := moment{"mid-apply (old sandbox removed)", func(t *testing.T, _, o string) { waitNetns(t, o, false) }}
	for round, when := range []moment{made, now, removed, made, later} {
		old := generations(c.Flows(t, "h2"))
		n0 := len(c.Flows(t, "h2"))
		// The change: the writes below, none waiting.
		if round%2 == 0 {
			c.MustDo(t, 201, "POST", "/api/v1/policies", big, nil)
		} else {
			c.MustDo(t, 204, "DELETE", "/api/v1/policies/big", nil, nil)
		}
		name := "k" + cluster.Itoa(round)
		c.MustDo(t, 201, "POST", "/api/v1/containers", map[string]any{"name": name, "network": "blue", "host": "h2"}, nil)
		if prev != "" {
			c.MustDo(t, 204, "DELETE", "/api/v1/containers/"+prev, nil, nil)
		}
		when.wait(t, c.Sandbox("h2", name, "blue"), c.Sandbox("h2", prev, "blue"))
		agent.Kill()
		atKill := len(c.Flows(t, "h2"))
		rev := c.Revision(t)
		if err := agent.Restart(); err != nil {
			t.Fatalf("restart h2's agent: %v", err)
		}
		converged(t, c, "h2", rev, old)
		got := withoutGeneration(c.Flows(t, "h2"))
		ports := sorted(c.Ports(t, "h2"))
		t.Logf("round %d: killed %s with %d flows installed (%d before the change); converged to %d flows",
			round, when.what, atKill, n0, len(got))

		// The reference: the same program installed on an empty switch.
		agent.Stop()
		old = generations(c.Flows(t, "h2"))
		c.Lab.Host("h2").OFCtl(t, "del-flows", "br-int")
		if err := agent.Restart(); err != nil {
			t.Fatalf("restart h2's agent: %v", err)
		}
		converged(t, c, "h2", rev, old)
		if fresh := withoutGeneration(c.Flows(t, "h2")); !slices.Equal(got, fresh) {
			t.Errorf("round %d: after the kill h2 has %d flows, installed from scratch %d:\n%s", round, len(got), len(fresh), diffLines(got, fresh))
		}
		if fresh := sorted(c.Ports(t, "h2")); !slices.Equal(ports, fresh) {
			t.Errorf("round %d: br-int's ports %v after the kill, %v from scratch", round, ports, fresh)
		}
		if prev != "" {
			if cluster.NetnsExists(c.Sandbox("h2", prev, "blue")) {
				t.Errorf("round %d: the sandbox of deleted container %s is still there", round, prev)
			}
		}
		k := c.WaitContainer(t, name, openapi.ContainerRunning, 30*time.Second)
		if n := len(c.ContainerPorts(t, "h2", k.ID)); n != 1 {
			t.Errorf("round %d: container %s has %d ports on h2", round, name, n)
		}
		s.expectPing(t, s.na, k.IP)
		prev = name
	}
	s.expectPing(t, s.na, s.b.IP)
}

// waitNetns polls (every 100 µs: an apply takes milliseconds) until the
// namespace exists (or not), so that a fault can strike at that moment.
func waitNetns(t *testing.T, name string, exists bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for cluster.NetnsExists(name) != exists {
		if time.Now().After(deadline) {
			t.Fatalf("netns %s: exists=%v after 20 s", name, !exists)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// converged waits until host's agent applied revision rev (or later) in a
// generation not among old, every flow of br-int in it.
func converged(t *testing.T, c *cluster.Cluster, host string, rev int64, old map[uint16]int) {
	t.Helper()
	c.Eventually(t, 60*time.Second, func() error {
		h := c.GetHost(t, host)
		if h.Status != openapi.HostReady || !h.Realized || h.AppliedRevision < rev {
			return fmt.Errorf("%s: %s, applied %d, want %d", host, h.Status, h.AppliedRevision, rev)
		}
		g := generations(c.Flows(t, host))
		if len(g) != 1 {
			return fmt.Errorf("%s: flows of %d generations: %v", host, len(g), g)
		}
		for gen := range g {
			if _, stale := old[gen]; stale {
				return fmt.Errorf("%s: every flow is of the old generation %d", host, gen)
			}
		}
		return nil
	})
}

// diffLines lists the lines of a not in b and of b not in a (sorted
// inputs), at most 20.
func diffLines(a, b []string) string {
	var out []string
	for _, l := range a {
		if _, ok := slices.BinarySearch(b, l); !ok {
			out = append(out, "- "+l)
		}
	}
	for _, l := range b {
		if _, ok := slices.BinarySearch(a, l); !ok {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out[:min(len(out), 20)], "\n")
}

// Row 7: two replicas; the one serving the agents (and the writers) is
// SIGKILLed while three writers create networks and containers and one
// writer counts up
// a label with If-Match. Writers retry a request whose answer was lost on
// the other replica: a create answered 409 there is checked to exist (it
// was committed before the kill), an If-Match update answered 412 is
// checked to carry the writer's own value. So that those paths are always
// taken, the writers also drop the answer of every seventh write
// (committed, answer lost, as when a replica dies between commit and
// reply) and retry it. Afterwards every acknowledged
// create exists exactly once, the counter equals the acknowledged
// increments (none lost, none applied twice), and the agents, moved to
// the surviving replica, realize new intent.
func TestFailMatrixReplicaKillUnderLoad(t *testing.T) {
	s := newScene(t, openapi.TunnelGeneve)
	c := s.c
	defer c.Lab.DumpOnFailure(t)
	r := c.StartReplica(t)
	c.Network(t, "counter", "10.41.0.0/24")
	w := &writers{base: c.URL, other: r.URL, stop: make(chan struct{})}
	var wg sync.WaitGroup
	for k := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); w.creates(t, k) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.counts(t) }()

	// Kill once the writers are well under way.
	c.Eventually(t, 60*time.Second, func() error {
		if n := w.acked.Load(); n < 20 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	})
	before := w.acked.Load()
	c.Controller.Kill()
	killed := time.Now()
	c.SwitchTo(r)
	c.Eventually(t, 60*time.Second, func() error {
		if n := w.acked.Load(); n < before+20 {
			return fmt.Errorf("%d writes acknowledged since the kill", n-before)
		}
		return nil
	})
	close(w.stop)
	wg.Wait()

	// Every acknowledged create exists, once.
	var l openapi.List[openapi.Container]
	c.MustDo(t, 200, "GET", "/api/v1/containers?limit=1000", nil, &l)
	seen := map[string]int{}
	ips := map[string]string{}
	for _, ct := range l.Items {
		seen[ct.Name]++
		if o, dup := ips[ct.IP]; dup {
			t.Errorf("%s and %s share address %s", o, ct.Name, ct.IP)
		}
		ips[ct.IP] = ct.Name
	}
	var nl openapi.List[openapi.Network]
	c.MustDo(t, 200, "GET", "/api/v1/networks?limit=1000", nil, &nl)
	for _, nw := range nl.Items {
		seen[nw.Name]++
	}
	w.mu.Lock()
	for _, name := range w.created {
		if seen[name] != 1 {
			t.Errorf("acknowledged container %s exists %d times", name, seen[name])
		}
	}
	nCreated, nCount, retried, landed, lost := len(w.created), w.count, w.retried, w.landed, w.lost
	w.mu.Unlock()
	var ctr openapi.Network
	c.MustDo(t, 200, "GET", "/api/v1/networks/counter", nil, &ctr)
	if got := ctr.Labels["n"]; got != strconv.Itoa(nCount) {
		t.Errorf("counter label n=%q, %d increments acknowledged", got, nCount)
	}
	t.Logf("%d creates and %d If-Match updates acknowledged (%d before the kill); %d requests without answer retried on the other replica, %d answers dropped on purpose and retried; %d retries found their first attempt committed (409/412)",
		nCreated, nCount, before, retried, lost, landed)
	if lost > 0 && landed < lost {
		t.Errorf("%d committed writes had their answer dropped, only %d retries saw them committed", lost, landed)
	}

	// The agents moved: a change is realized on every host.
	y := c.Container(t, "after-kill", "blue", "h3", nil)
	t.Logf("a realized create through the survivor %v after the kill", time.Since(killed).Round(time.Millisecond))
	s.expectPing(t, s.na, y.IP)
	c.WaitReady(t, 30*time.Second)
}

// writers write through base until a request fails without an answer,
// then through other for good.
type writers struct {
	base, other string
	stop        chan struct{}
	acked       atomic.Int64
	switched    atomic.Bool
	writes      atomic.Int64

	mu      sync.Mutex
	created []string
	count   int
	retried int
	lost    int // answers dropped on purpose (loseEvery)
	// landed counts retries answered 409 or 412 because the first attempt
	// had committed before the replica died.
	landed int
}

func (w *writers) firstLanded() {
	w.mu.Lock()
	w.landed++
	w.mu.Unlock()
}

func (w *writers) url() string {
	if w.switched.Load() {
		return w.other
	}
	return w.base
}

// send sends one request to the current replica, and again when no
// answer came (the replica died under it: then to the other replica from
// now on; or the answer was dropped on purpose, see loseEvery), three
// attempts in all. It returns the answer's status, ETag and body, and
// whether it was a retry.
func (w *writers) send(method, path, ifMatch string, body any) (code int, etag string, data []byte, retry bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, w.url()+path, rd)
		req.Header.Set("Authorization", "Bearer "+cluster.AdminToken)
		if body != nil {
			ct := "application/json"
			if method == "PATCH" {
				ct = "application/merge-patch+json"
			}
			req.Header.Set("Content-Type", ct)
		}
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		res, err := writerHTTP.Do(req)
		if err == nil {
			data, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if err == nil && attempt == 0 && method != "GET" && w.writes.Add(1)%loseEvery == 0 {
			// The answer is dropped as if the connection broke after
			// the commit: the retry below must cope.
			w.mu.Lock()
			w.lost++
			w.mu.Unlock()
			continue
		}
		if err == nil {
			return res.StatusCode, res.Header.Get("ETag"), data, attempt > 0, nil
		}
		w.switched.Store(true) // no answer: the other replica from now on
		w.mu.Lock()
		w.retried++
		w.mu.Unlock()
	}
	return 0, "", nil, true, errors.New("no answer from either replica")
}

var writerHTTP = &http.Client{Timeout: 30 * time.Second}

// loseEvery: the writers drop the answer of every loseEvery-th write
// (committed, answer lost) and retry it, besides the writes in flight when
// the replica dies.
const loseEvery = 7

func (w *writers) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// creates creates, for k 0 and 1, networks w<k>-<i>; for k 2, containers
// w2-<i> on blue, on h1 and h3 in turn (the agents work meanwhile).
func (w *writers) creates(t *testing.T, k int) {
	for i := 0; !w.stopped() && i < 250; i++ {
		name := fmt.Sprintf("w%d-%d", k, i)
		path, body := "/api/v1/networks", map[string]any{"name": name, "cidr": fmt.Sprintf("10.%d.%d.0/24", 50+k, i)}
		if k == 2 {
			path, body = "/api/v1/containers", map[string]any{"name": name, "network": "blue", "host": []string{"h1", "h3"}[i%2]}
		}
		code, _, data, retry, err := w.send("POST", path, "", body)
		switch {
		case err != nil:
			t.Errorf("create %s: %v", name, err)
			return
		case code == 201:
		case code == 409 && retry:
			// Committed before the replica died? Then it exists.
			if c, _, _, _, err := w.send("GET", path+"/"+name, "", nil); err != nil || c != 200 {
				t.Errorf("create %s: 409 on retry, yet GET says %d %v", name, c, err)
				return
			}
			w.firstLanded()
		default:
			t.Errorf("create %s: %d %s", name, code, data)
			return
		}
		w.mu.Lock()
		w.created = append(w.created, name)
		w.mu.Unlock()
		w.acked.Add(1)
	}
}

// counts sets label n of network counter to 1, 2, 3... each with If-Match
// the ETag it read.
func (w *writers) counts(t *testing.T) {
	for n := 1; !w.stopped(); n++ {
		code, etag, data, _, err := w.send("GET", "/api/v1/networks/counter", "", nil)
		if err != nil || code != 200 {
			t.Errorf("read counter: %d %v %s", code, err, data)
			return
		}
		code, _, data, retry, err := w.send("PATCH", "/api/v1/networks/counter", etag, map[string]any{"labels": map[string]string{"n": strconv.Itoa(n)}})
		switch {
		case err != nil:
			t.Errorf("count %d: %v", n, err)
			return
		case code == 200:
		case code == 412 && retry:
			// The first attempt committed: the label must be ours.
			var nw openapi.Network
			c, _, body, _, err := w.send("GET", "/api/v1/networks/counter", "", nil)
			if err == nil {
				err = json.Unmarshal(body, &nw)
			}
			if err != nil || c != 200 || nw.Labels["n"] != strconv.Itoa(n) {
				t.Errorf("count %d: 412 on retry, and the counter says %q (%d %v)", n, nw.Labels["n"], c, err)
				return
			}
			w.firstLanded()
		default:
			t.Errorf("count %d: %d %s", n, code, data)
			return
		}
		w.mu.Lock()
		w.count = n
		w.mu.Unlock()
		w.acked.Add(1)
	}
}
