package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
	"github.com/switchyard/switchyard/tests/pgtest"
)

func TestMain(m *testing.M) { cluster.Main(m) }

const testToken = "sy_demo_test_admin_token"

// TestDemo runs the demo lab as `make run` does (the binaries, a real
// controller and database, real OVS), twice: the printed service, DNS and
// published-port (from the lab's outside) commands work as printed, the VIP balances over both backends, the
// backends are healthy, and a stop leaves nothing behind. The second run
// takes the first run's objects over, the service included.
func TestDemo(t *testing.T) {
	if err := lab.Requirements(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("demo lab: %v (CI=true, not skipping)", err)
		}
		t.Skipf("demo lab: %v", err)
	}
	db := pgtest.DatabaseURL(t)
	bins := cluster.Build(t)
	dir := t.TempDir()
	sylab := filepath.Join(dir, "sylab")
	if out, err := exec.Command("go", "build", "-o", sylab, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build sylab: %v\n%s", err, out)
	}
	base := startController(t, bins.Controller, db, dir)
	api := client.New(base, testToken)

	first := startDemo(t, sylab, bins, base, dir)
	svc := first.check(t, api)
	first.stop(t, api)

	second := startDemo(t, sylab, bins, base, dir)
	again := second.check(t, api)
	if again.ID != svc.ID || again.VIP != svc.VIP {
		t.Errorf("second run: service %s %s, want the first run's %s %s", again.ID, again.VIP, svc.ID, svc.VIP)
	}
	var l openapi.List[openapi.Service]
	if _, err := api.Do(context.Background(), "GET", "/api/v1/services?network=blue", nil, &l); err != nil || len(l.Items) != 1 {
		t.Errorf("services of blue after two runs: %d, %v; want 1", len(l.Items), err)
	}
	second.stop(t, api)
}

// startController runs the controller binary on a free loopback port and
// waits until it is ready; it is stopped with t.
func startController(t *testing.T, bin, db, dir string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "SWITCHYARD_DATABASE_URL="+db, "SWITCHYARD_LISTEN="+addr,
		"SWITCHYARD_ADMIN_TOKEN="+testToken, "SWITCHYARD_HEARTBEAT_TIMEOUT=5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return base
			}
		}
		select {
		case <-done:
			t.Fatalf("controller exited (log %s)", logf.Name())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller not ready: %v (log %s)", err, logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// demoRun is one running sylab.
type demoRun struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *os.File
	info string // its try-this file
	text string // what it printed
	id   string // its lab id
}

var labID = regexp.MustCompile(`demo lab is up: lab (\w+),`)

// startDemo starts sylab as run.sh does and waits for its try-this text.
func startDemo(t *testing.T, sylab string, bins cluster.Binaries, base, dir string) *demoRun {
	out, err := os.CreateTemp(dir, "sylab-*.log")
	if err != nil {
		t.Fatal(err)
	}
	d := &demoRun{done: make(chan struct{}), out: out, info: filepath.Join(dir, "demo.txt")}
	d.cmd = exec.Command(sylab, "-controller", base, "-agent", bins.Agent, "-probe", bins.Probe, "-info", d.info)
	d.cmd.Env = append(os.Environ(), "SWITCHYARD_ADMIN_TOKEN="+testToken)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(60 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			_ = lab.CleanupStale()
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(d.info); err == nil && len(b) > 0 {
			d.text = string(b)
			break
		}
		select {
		case <-d.done:
			t.Fatalf("sylab exited before its demo was up:\n%s", d.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no demo text after 3 minutes:\n%s", d.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := labID.FindStringSubmatch(d.text)
	if m == nil {
		t.Fatalf("no lab id in the demo text:\n%s", d.text)
	}
	d.id = m[1]
	t.Logf("demo text:%s", d.text)
	return d
}

func (d *demoRun) log() string {
	b, _ := os.ReadFile(d.out.Name())
	return string(b)
}

// line is the printed command that contains s, without sudo.
func (d *demoRun) line(t *testing.T, s string) []string {
	for _, l := range strings.Split(d.text, "\n") {
		if strings.Contains(l, s) && strings.Contains(l, "ip netns exec") {
			f := strings.Fields(l)
			if f[0] == "sudo" {
				f = f[1:]
			}
			return f
		}
	}
	t.Fatalf("no command with %q in the demo text:\n%s", s, d.text)
	return nil
}

// check runs the printed service and DNS commands and asks the API about
// the service's backends; it returns the service.
func (d *demoRun) check(t *testing.T, api *client.Client) openapi.Service {
	t.Helper()
	if strings.Contains(d.text, "NOT as expected") || strings.Contains(d.text, "WARNING") {
		t.Errorf("the demo's own checks failed:\n%s\n%s", d.text, d.log())
	}
	ctx := context.Background()
	var svc openapi.Service
	if _, err := api.Do(ctx, "GET", "/api/v1/services/web?network=blue", nil, &svc); err != nil {
		t.Fatalf("service web: %v", err)
	}
	curl := d.line(t, "curl -s http://"+svc.VIP+"/")
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 2; i++ {
		out, err := run(curl)
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(curl, " "), err, out)
		}
		seen[strings.TrimSpace(string(out))] = true
	}
	t.Logf("answers through the VIP %s: %v", svc.VIP, seen)
	if len(seen) != 2 || !seen["web1"] || !seen["web2"] {
		t.Errorf("answers through the VIP: %v, want web1 and web2", seen)
	}
	getent := d.line(t, "getent hosts web.blue.switchyard.local")
	out, err := run(getent)
	if f := strings.Fields(string(out)); err != nil || len(f) < 2 || f[0] != svc.VIP {
		t.Errorf("%s: %v: %q, want %s", strings.Join(getent, " "), err, out, svc.VIP)
	}
	// The published port, from the outside, as printed.
	pub := d.line(t, fmt.Sprintf(":%d/", demoPublish.hostPort))
	if out, err := run(pub); err != nil || strings.TrimSpace(string(out)) != demoPublish.container {
		t.Errorf("%s: %v: %q, want %s", strings.Join(pub, " "), err, out, demoPublish.container)
	}
	if ns := lab.NetnsPrefix(d.id) + "out"; !slices.Contains(pub, ns) {
		t.Errorf("the published port's command %q does not run in the outside %s", strings.Join(pub, " "), ns)
	}
	want := `"$API/services/web/endpoints?network=blue"`
	if !strings.Contains(d.text, want) {
		t.Errorf("no endpoints command %s in the demo text:\n%s", want, d.text)
	}
	// Verdicts stored by an earlier run's agents may take a probe interval
	// or two to be replaced.
	err = poll(ctx, 20*time.Second, func() error {
		var eps openapi.EndpointList
		if _, err := api.Do(ctx, "GET", "/api/v1/services/web/endpoints?network=blue", nil, &eps); err != nil {
			return err
		}
		healthy := map[string]bool{}
		for _, e := range eps.Items {
			healthy[e.Container] = e.Health == openapi.HealthHealthy
		}
		if len(healthy) != 2 || !healthy["web1"] || !healthy["web2"] {
			return fmt.Errorf("endpoints of web: %+v, want web1 and web2 healthy", eps.Items)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	return svc
}

// run runs a printed command (at most 10 seconds) and returns its output.
func run(argv []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

// stop stops sylab as run.sh does and checks that nothing of its lab is
// left: no namespace, /etc/netns entry, run dir, process or node token.
func (d *demoRun) stop(t *testing.T, api *client.Client) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("sylab still running 60s after SIGTERM:\n%s", d.log())
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("sylab exited with %d:\n%s", code, d.log())
	}
	prefix := lab.NetnsPrefix(d.id)
	for _, pat := range []string{filepath.Join(lab.NetnsDir, prefix+"*"), "/etc/netns/" + prefix + "*", lab.RunDir(d.id), d.info} {
		if left, _ := filepath.Glob(pat); len(left) > 0 {
			t.Errorf("left after the demo stopped: %v", left)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), lab.RunDir(d.id)) {
			t.Errorf("process left after the demo stopped: %s %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	var toks openapi.List[openapi.Token]
	if _, err := api.Do(context.Background(), "GET", "/api/v1/tokens", nil, &toks); err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks.Items {
		if strings.HasPrefix(tok.Name, tokenPrefix+d.id+"-") && tok.RevokedAt == nil {
			t.Errorf("node token %s not revoked", tok.Name)
		}
	}
}
