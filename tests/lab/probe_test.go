package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildProbe builds cmd/syprobe into a temporary directory.
func buildProbe(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "syprobe")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/syprobe")
	cmd.Dir = filepath.Dir(file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build syprobe: %v\n%s", err, out)
	}
	return bin
}

// The probe server answers on every port of ProbePorts and icmp with its
// name, reports a probe to a closed port or an absent address as failed
// (the latter by its timeout), and keeps a TCP connection open across
// requests.
func TestProbe(t *testing.T) {
	_, pa, pb := probePair(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var reqs []ProbeRequest
	for _, pp := range ProbePorts {
		reqs = append(reqs, ProbeRequest{Proto: pp.Proto, Addr: "10.99.0.2:" + strconv.Itoa(pp.Port), TimeoutMs: 2000})
	}
	reqs = append(reqs,
		ProbeRequest{Proto: "icmp", Addr: "10.99.0.2", TimeoutMs: 2000},
		ProbeRequest{Proto: "tcp", Addr: "10.99.0.2:82", TimeoutMs: 2000}, // closed: refused
		ProbeRequest{Proto: "udp", Addr: "10.99.0.2:82", TimeoutMs: 2000}, // closed: port unreachable
		ProbeRequest{Proto: "tcp", Addr: "10.99.0.3:80", TimeoutMs: 300},  // nobody: timeout
		ProbeRequest{Proto: "icmp", Addr: "10.99.0.3", TimeoutMs: 300},    // nobody: timeout
		ProbeRequest{Proto: "tcp", Addr: "10.99.0.1:81", TimeoutMs: 2000}, // itself
	)
	res, err := pa.Run(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x/b", "x/b", "x/b", "", "-", "-", "-", "-", "x/a"}
	for i, r := range res {
		switch {
		case want[i] == "-" && r.OK:
			t.Errorf("%+v succeeded: %+v", reqs[i], r)
		case want[i] != "-" && (!r.OK || r.Reply != want[i]):
			t.Errorf("%+v: %+v, want reply %q", reqs[i], r, want[i])
		}
	}

	c, err := pa.Open(ctx, "10.99.0.2:80", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if r, err := c.Send(ctx, 2*time.Second); err != nil || !r.OK || r.Reply != "x/b" {
			t.Fatalf("send %d on the kept connection: %+v %v", i, r, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Send(ctx, time.Second); err == nil {
		t.Fatalf("send on a closed connection: %+v", r)
	}
	testServe(t, ctx, pa, pb)
	testStreamAndLoad(t, ctx, pa, pb)
}

// probePair is a one-host lab with two namespaces joined by a veth,
// 10.99.0.1 (probe server "x/a") and 10.99.0.2 ("x/b").
func probePair(t *testing.T) (*Lab, *Probe, *Probe) {
	t.Helper()
	l := New(t, Options{Hosts: 1})
	bin := buildProbe(t)
	a, b := l.NewNetns(t, "pa"), l.NewNetns(t, "pb")
	veth := "sy" + l.ID + "pa"
	mustRunIn(t, "", "ip", "link", "add", veth, "netns", a, "type", "veth", "peer", "name", "eth0", "netns", b)
	mustRunIn(t, a, "ip", "link", "set", veth, "name", "eth0")
	for i, ns := range []string{a, b} {
		mustRunIn(t, ns, "ip", "addr", "add", []string{"10.99.0.1/24", "10.99.0.2/24"}[i], "dev", "eth0")
		mustRunIn(t, ns, "ip", "link", "set", "eth0", "up")
	}
	return l, l.StartProbe(t, bin, "x/a", a), l.StartProbe(t, bin, "x/b", b)
}

// testServe: the HTTP port answers with the name; a port stopped refuses
// (at once: Us far below the timeout) and drops its open connections; started
// again it answers.
func testServe(t *testing.T, ctx context.Context, pa, pb *Probe) {
	out, err := RunIn(ctx, pa.Proc.spec.Netns, "curl", "-s", "--max-time", "5", fmt.Sprintf("http://10.99.0.2:%d/healthz", ProbeHTTPPort))
	if err != nil || strings.TrimSpace(out) != "x/b" {
		t.Errorf("HTTP to x/b: %q %v", out, err)
	}
	c, err := pa.Open(ctx, "10.99.0.2:81", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		proto string
		port  int
	}{{"tcp", 81}, {"udp", 80}, {"http", ProbeHTTPPort}} {
		if err := pb.Serve(ctx, s.proto, s.port, false); err != nil {
			t.Fatal(err)
		}
	}
	reqs := []ProbeRequest{
		{Proto: "tcp", Addr: "10.99.0.2:81", TimeoutMs: 3000},
		{Proto: "udp", Addr: "10.99.0.2:80", TimeoutMs: 3000},
		{Proto: "tcp", Addr: fmt.Sprintf("10.99.0.2:%d", ProbeHTTPPort), TimeoutMs: 3000},
		{Proto: "tcp", Addr: "10.99.0.2:80", TimeoutMs: 3000}, // still served
	}
	res, err := pa.Run(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:3] {
		if r.OK || !strings.Contains(r.Error, "connection refused") || r.Us <= 0 || r.Us > 1e6 {
			t.Errorf("%+v on a stopped port: %+v, want connection refused within 1 s", reqs[i], r)
		}
	}
	if r := res[3]; !r.OK || r.Reply != "x/b" || r.Us <= 0 {
		t.Errorf("tcp 80 next to stopped ports: %+v", r)
	}
	if r, err := c.Send(ctx, 2*time.Second); err != nil || r.OK {
		t.Errorf("a connection of a stopped port still answers: %+v %v", r, err)
	}
	for _, s := range []struct {
		proto string
		port  int
	}{{"tcp", 81}, {"udp", 80}, {"http", ProbeHTTPPort}} {
		if err := pb.Serve(ctx, s.proto, s.port, true); err != nil {
			t.Fatal(err)
		}
	}
	if res, err = pa.Run(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.OK || r.Reply != "x/b" && i != 2 {
			t.Errorf("%+v after the restart: %+v", reqs[i], r)
		}
	}
	if err := pb.Serve(ctx, "sctp", 80, true); err == nil {
		t.Errorf("serve sctp: no error")
	}
}

// testStreamAndLoad: a stream of TCP probes every 5 ms sees x/b's port 81
// answer, then refuse while stopped, then answer again, in the order of
// the attempts' start times; a load of 200 probes, 20 at a time, all
// succeed, and to a closed port all fail.
func testStreamAndLoad(t *testing.T, ctx context.Context, pa, pb *Probe) {
	s, err := pa.Stream(ctx, ProbeRequest{Proto: "tcp", Addr: "10.99.0.2:81", TimeoutMs: 1000}, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// waitFor waits until at least n attempts started after t0 finished.
	waitFor := func(t0 time.Time, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			recs, err := s.Records(ctx)
			if err != nil {
				t.Fatal(err)
			}
			k := 0
			for _, r := range recs {
				if r.Time().After(t0) {
					k++
				}
			}
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream: %d attempts after %s, want %d", k, t0, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(time.Time{}, 3)
	downAt := time.Now()
	if err := pb.Serve(ctx, "tcp", 81, false); err != nil {
		t.Fatal(err)
	}
	downDone := time.Now()
	waitFor(downDone, 3)
	upAt := time.Now()
	if err := pb.Serve(ctx, "tcp", 81, true); err != nil {
		t.Fatal(err)
	}
	upDone := time.Now()
	waitFor(upDone, 3)
	recs, err := s.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var phases [3]int
	for _, r := range recs {
		switch at := r.Time(); {
		case at.Before(downAt) && (!r.OK || r.Reply != "x/b"):
			t.Errorf("attempt before the stop: %+v", r)
		case at.After(downDone) && at.Before(upAt) && r.OK:
			t.Errorf("attempt while stopped answered: %+v", r)
		case at.After(upDone) && !r.OK:
			t.Errorf("attempt after the restart: %+v", r)
		case at.Before(downAt):
			phases[0]++
		case at.After(downDone) && at.Before(upAt):
			phases[1]++
		case at.After(upDone):
			phases[2]++
		}
	}
	if phases[0] < 3 || phases[1] < 3 || phases[2] < 3 {
		t.Errorf("stream attempts per phase (up, stopped, up again): %v, want 3 or more each", phases)
	}
	if _, err := s.Records(ctx); err == nil {
		t.Errorf("records of a stopped stream: no error")
	}
	res, err := pa.Load(ctx, LoadRequest{Probe: ProbeRequest{Proto: "tcp", Addr: "10.99.0.2:80", TimeoutMs: 2000}, Count: 200, Concurrency: 20})
	if err != nil || res.OK != 200 || res.Failed != 0 || res.ElapsedUs <= 0 {
		t.Errorf("load of 200: %+v %v", res, err)
	}
	res, err = pa.Load(ctx, LoadRequest{Probe: ProbeRequest{Proto: "tcp", Addr: "10.99.0.2:82", TimeoutMs: 2000}, Count: 10, Concurrency: 5})
	if err != nil || res.OK != 0 || res.Failed != 10 || res.Error == "" {
		t.Errorf("load of 10 to a closed port: %+v %v", res, err)
	}
}
