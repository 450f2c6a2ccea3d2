package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// needLab skips (or fails under CI=true) when the machine cannot run a lab.
func needLab(t *testing.T) {
	t.Helper()
	if err := Requirements(); err != nil {
		skipOrFatal(t, err)
	}
}

// fakeTB stands in for a test that fails inside New: Fatalf ends the
// goroutine like the real one, and cleanups run when the test says so.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Logf(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, a...))
}
func (f *fakeTB) Log(a ...any) { f.Logf("%s", fmt.Sprint(a...)) }
func (f *fakeTB) Errorf(format string, a ...any) {
	f.Logf(format, a...)
	f.mu.Lock()
	f.failed = true
	f.mu.Unlock()
}
func (f *fakeTB) Fatalf(format string, a ...any) { f.Errorf(format, a...); runtime.Goexit() }
func (f *fakeTB) Fatal(a ...any)                 { f.Fatalf("%s", fmt.Sprint(a...)) }
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run calls body in its own goroutine (so Fatalf can Goexit), then runs
// the registered cleanups, newest first.
func (f *fakeTB) run(body func(tb testing.TB)) {
	done := make(chan struct{})
	go func() { defer close(done); body(f) }()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// TestPartialNew fails New after its second of three hosts and checks the
// cleanup removes the half-built lab.
func TestPartialNew(t *testing.T) {
	needLab(t)
	var got *Lab
	testHookAfterHost = func(l *Lab, i int) error {
		got = l
		if i == 2 {
			return errors.New("injected failure")
		}
		return nil
	}
	t.Cleanup(func() { testHookAfterHost = nil })
	f := &fakeTB{TB: t}
	f.run(func(tb testing.TB) { New(tb, Options{Hosts: 3}); tb.Errorf("New returned despite the failure") })
	if got == nil || !f.Failed() {
		t.Fatalf("hook not reached or New did not fail: %q", f.msgs)
	}
	if len(got.Hosts) != 2 || len(got.man.Procs) != 4 {
		t.Errorf("partial lab: %d hosts, %d procs; want 2 and 4", len(got.Hosts), len(got.man.Procs))
	}
	for _, m := range f.msgs {
		if strings.Contains(m, "teardown") {
			t.Errorf("teardown of the partial lab: %s", m)
		}
	}
	assertGone(t, got)
}

// TestKeep fails a test with SWITCHYARD_KEEP_LAB=1: the lab stays up (OVS
// answering, namespaces there) and its manifest says kept.
func TestKeep(t *testing.T) {
	needLab(t)
	t.Setenv(EnvKeep, "1")
	var l *Lab
	f := &fakeTB{TB: t}
	f.run(func(tb testing.TB) {
		l = New(tb, Options{Hosts: 1})
		p := l.Start(tb, ProcSpec{Name: "sleeper", Path: "sleep", Args: []string{"60"}})
		tb.Cleanup(func() {
			if !p.Exited() {
				tb.Errorf("proc still running at cleanup")
			}
		})
		tb.Errorf("deliberate failure")
	})
	t.Cleanup(func() {
		if err := teardown(l.man, l.Dir); err != nil {
			t.Error(err)
		}
		assertGone(t, l)
	})
	if m, err := readManifest(l.Dir); err != nil || !m.Kept {
		t.Fatalf("manifest: %+v, %v", m, err)
	}
	h := l.Hosts[0]
	if out := h.VSCtl(t, "show"); out == "" {
		t.Errorf("kept lab's OVS does not answer")
	}
	if !strings.Contains(strings.Join(f.msgs, "\n"), "KEPT") || !strings.Contains(strings.Join(f.msgs, "\n"), "dump") {
		t.Errorf("no keep notice or dump in %q", f.msgs)
	}
}

const helperEnv = "SYLAB_STALE_HELPER"

// TestStaleHelper is not a test on its own: TestCleanupStale runs it in a
// child process that builds a lab and is then killed hard.
func TestStaleHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestCleanupStale")
	}
	l := New(t, Options{Hosts: 1})
	l.NewNetns(t, "sandbox")
	l.Start(t, ProcSpec{Name: "root-sleeper", Path: "sleep", Args: []string{"600"}})
	l.Start(t, ProcSpec{Name: "host-sleeper", Netns: l.Hosts[0].Netns, Path: "sleep", Args: []string{"600"}})
	fmt.Printf("LAB %s\n", l.ID)
	time.Sleep(10 * time.Minute)
}

// TestCleanupStale kills a process that built a lab with SIGKILL, so its
// cleanups never run, and checks CleanupStale tears that lab down. Run it
// with SWITCHYARD_CLEAN_KEPT_LABS=1 to also remove kept labs.
func TestCleanupStale(t *testing.T) {
	needLab(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStaleHelper$", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if id != "" && t.Failed() {
			if m, err := readManifest(RootDir + "/" + dirPrefix + id); err == nil {
				_ = teardown(m, RootDir+"/"+dirPrefix+id)
			}
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "LAB "); ok {
				lines <- s
			}
		}
		close(lines)
	}()
	select {
	case id = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("helper built no lab in 30 s")
	}
	dir := RootDir + "/" + dirPrefix + id
	m, err := readManifest(dir)
	if err != nil || m.CreatorPid != cmd.Process.Pid || len(m.Procs) != 4 {
		t.Fatalf("helper's manifest: %+v, %v", m, err)
	}
	// A live creator's lab is left alone.
	if err := CleanupStale(); err != nil {
		t.Logf("CleanupStale: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("CleanupStale removed a live lab: %v", err)
	}
	for _, p := range m.Procs {
		if !alive(p.Pid, p.Start) {
			t.Fatalf("%s (pid %d) is not running: nothing to clean", p.Name, p.Pid)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := CleanupStale(); err != nil {
		t.Errorf("CleanupStale: %v", err)
	}
	assertGone(t, &Lab{ID: id, Dir: dir, man: m})
}

// TestProc checks Stop, Kill, Restart, Exited, and that a process started
// in a namespace has the program's own pid.
func TestProc(t *testing.T) {
	needLab(t)
	l := New(t, Options{Hosts: 1})
	p := l.Start(t, ProcSpec{Name: "sleeper", Netns: l.Hosts[0].Netns, Path: "sleep", Args: []string{"60"}})
	// Start returns once nsenter is forked; it becomes sleep (same pid)
	// when it has entered the namespace and exec'd.
	comm := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid()))
		return strings.TrimSpace(string(b))
	}
	for deadline := time.Now().Add(10 * time.Second); comm() == "nsenter" && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if c := comm(); c != "sleep" {
		t.Errorf("pid %d is %q, want sleep", p.Pid(), c)
	}
	if pids, _ := netnsPids(l.Hosts[0].Netns); !slices.Contains(pids, p.Pid()) {
		t.Errorf("pid %d not in %s: %v", p.Pid(), l.Hosts[0].Netns, pids)
	}
	old := p.Pid()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == old || alive(old, 0) || p.Exited() {
		t.Errorf("restart: old %d (alive %v), new %d (exited %v)", old, alive(old, 0), p.Pid(), p.Exited())
	}
	p.Kill()
	if !p.Exited() || p.Wait(time.Second) == nil {
		t.Errorf("kill: exited %v, wait %v", p.Exited(), p.Wait(time.Second))
	}

	saved := stopGrace
	stopGrace = 300 * time.Millisecond
	t.Cleanup(func() { stopGrace = saved })
	stubborn := l.Start(t, ProcSpec{Name: "stubborn", Path: "sh", Args: []string{"-c", `trap "" TERM; echo ready; exec sleep 60`}})
	for !strings.Contains(stubborn.Log(), "ready") {
		time.Sleep(10 * time.Millisecond)
	}
	stubborn.Stop()
	if !stubborn.Exited() || alive(stubborn.Pid(), 0) {
		t.Errorf("stop did not end a process ignoring SIGTERM")
	}
	if !strings.Contains(stubborn.LogPath(), l.Dir) || !strings.Contains(stubborn.Log(), "=== lab: sh") {
		t.Errorf("log %s: %q", stubborn.LogPath(), stubborn.Log())
	}
}

// TestRestartOVS restarts one host's ovs-vswitchd: new pid, old one gone,
// bridges still in OVSDB, flows gone (as on a real host).
func TestRestartOVS(t *testing.T) {
	needLab(t)
	l := New(t, Options{Hosts: 1})
	h := l.Hosts[0]
	h.VSCtl(t, "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure")
	h.OFCtl(t, "add-flow", "br-int", "table=0,priority=5,actions=drop")
	old := h.VSwitchdPid()
	h.RestartOVS(t)
	if h.VSwitchdPid() == old || alive(old, 0) || !alive(h.VSwitchdPid(), 0) {
		t.Fatalf("vswitchd pid %d -> %d (old alive %v)", old, h.VSwitchdPid(), alive(old, 0))
	}
	h.VSCtl(t, "br-exists", "br-int")
	if flows := h.OFCtl(t, "dump-flows", "br-int"); strings.Contains(flows, "priority=5") {
		t.Errorf("flow survived the restart:\n%s", flows)
	}
	if !strings.Contains(h.AppCtl(t, "version"), "ovs-vswitchd") {
		t.Errorf("appctl version after restart")
	}
}
