package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// watch runs a monitor process (ovs-ofctl monitor, ovsdb-client monitor)
// that prints one line per change, and records when each key its parse
// function extracts from a line was first seen. It is event driven: the
// switch pushes every change, so the resolution is the delivery of one
// message through a unix socket and a pipe (well under a millisecond on an
// idle machine), with no polling.
type watch struct {
	name  string
	cmd   *exec.Cmd
	mu    sync.Mutex
	seen  map[string]time.Time
	lines int
	wake  chan struct{} // closed and replaced when a line arrives
	done  chan struct{} // closed when the process's output ends
	tail  []string      // the last lines, for error messages
}

// startWatch starts argv in the root namespace (unix sockets do not care
// about namespaces). The process dies with the benchmark (cleanup, or
// Pdeathsig if the test binary dies first).
func startWatch(tb testing.TB, name string, env []string, parse func(string) []string, argv ...string) *watch {
	tb.Helper()
	w := &watch{name: name, seen: map[string]time.Time{}, wake: make(chan struct{}), done: make(chan struct{})}
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Env = append(os.Environ(), env...)
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	// ovs-ofctl monitor prints the switch's async messages on stderr.
	w.cmd.Stderr = w.cmd.Stdout
	if err := w.cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
	})
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			now := time.Now()
			line := sc.Text()
			keys := parse(line)
			w.mu.Lock()
			for _, k := range keys {
				if _, ok := w.seen[k]; !ok {
					w.seen[k] = now
				}
			}
			w.lines++
			if w.tail = append(w.tail, line); len(w.tail) > 5 {
				w.tail = w.tail[1:]
			}
			close(w.wake)
			w.wake = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	return w
}

// waitLines waits until the process printed at least n lines.
func (w *watch) waitLines(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	if _, err := w.until(timeout, func() bool { return w.lines >= n }); err != nil {
		tb.Fatalf("%s: %v", w.name, err)
	}
}

// first returns when key was first seen, waiting up to timeout.
func (w *watch) first(key string, timeout time.Duration) (time.Time, error) {
	var at time.Time
	_, err := w.until(timeout, func() bool {
		t, ok := w.seen[key]
		at = t
		return ok
	})
	return at, err
}

// until waits for cond (evaluated under mu) to hold.
func (w *watch) until(timeout time.Duration, cond func() bool) (bool, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok, wake := cond(), w.wake
		tail := w.tail
		w.mu.Unlock()
		if ok {
			return true, nil
		}
		select {
		case <-wake:
		case <-w.done:
			return false, fmt.Errorf("monitor exited; last lines %q", tail)
		case <-deadline.C:
			return false, fmt.Errorf("not seen after %s; last lines %q", timeout, tail)
		}
	}
}

var (
	// arpTPA is the answered address of an ARP responder flow.
	arpTPA    = regexp.MustCompile(`arp_tpa=([0-9.]+)`)
	flowEvent = regexp.MustCompile(`event=(ADDED|MODIFIED|INITIAL)`)
)

// arpFlows parses `ovs-ofctl monitor` output: the addresses whose ARP
// responder flow was added (or changed, e.g. by a new generation).
func arpFlows(line string) []string {
	if !flowEvent.MatchString(line) {
		return nil
	}
	if m := arpTPA.FindStringSubmatch(line); m != nil {
		return []string{m[1]}
	}
	return nil
}

// watchARP follows table ARPResponder of h's br-int: for every address it
// answers, when its flow first appeared. The switch sends the flows it has
// first (INITIAL), then every change as it is committed.
func watchARP(tb testing.TB, h *lab.Host, table int) *watch {
	tb.Helper()
	w := startWatch(tb, "flows-"+h.Name, h.Env(), arpFlows, "ovs-ofctl", "-O", "OpenFlow15", "monitor",
		h.MgmtSocket("br-int"), fmt.Sprintf("watch:table=%d,!actions", table))
	w.waitLines(tb, 1, 10*time.Second)
	return w
}

// ofportRow parses `ovsdb-client monitor ... Interface name ofport` CSV: the
// interfaces whose ofport became known ("<name>").
var ofportRow = regexp.MustCompile(`^[0-9a-f-]*,(?:initial|insert|new),"?([^",]+)"?,([0-9]+)$`)

func ofports(line string) []string {
	if m := ofportRow.FindStringSubmatch(line); m != nil && m[2] != "0" {
		return []string{m[1]}
	}
	return nil
}

// watchOFPorts follows h's OVSDB: when each interface got its ofport, i.e.
// when ovs-vswitchd opened it after the agent's transaction.
func watchOFPorts(tb testing.TB, h *lab.Host) *watch {
	tb.Helper()
	return startWatch(tb, "ofports-"+h.Name, h.Env(), ofports, "ovsdb-client", "--format=csv", "--no-headings",
		"monitor", h.DB, "Open_vSwitch", "Interface", "name,ofport")
}

// runCtx is a context for a one-shot command.
func runCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
