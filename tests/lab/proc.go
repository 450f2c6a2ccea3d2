package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ProcSpec describes a long-running process a test starts: the controller,
// agents, iperf servers...
type ProcSpec struct {
	// Name names the process in logs; its output goes to <Lab.Dir>/<Name>.log.
	Name string
	// Netns is the namespace to run in; "" is the root namespace.
	Netns string
	// Env is added to the test's environment.
	Env []string
	// Path is the program, Args its arguments.
	Path string
	Args []string
}

// Proc is a process started by Lab.Start. It is stopped by pid when the
// test that started it ends, and with the lab at the latest.
type Proc struct {
	lab  *Lab
	spec ProcSpec
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait's result, valid once done is closed
}

// Start starts a process and registers it for cleanup. Its stdout and
// stderr are appended to LogPath().
func (l *Lab) Start(t T, s ProcSpec) *Proc {
	t.Helper()
	if s.Name == "" || s.Path == "" {
		t.Fatalf("lab %s: ProcSpec needs Name and Path: %+v", l.ID, s)
	}
	p := &Proc{lab: l, spec: s, log: l.uniqueLog(s.Name)}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	t.Cleanup(p.Stop)
	if err := p.start(); err != nil {
		t.Fatalf("lab %s: %v", l.ID, err)
	}
	return p
}

// uniqueLog returns <Dir>/<name>.log, or <name>-2.log etc. when taken.
func (l *Lab) uniqueLog(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	base := name
	for i := 2; l.logNames[base]; i++ {
		base = fmt.Sprintf("%s-%d", name, i)
	}
	l.logNames[base] = true
	return filepath.Join(l.Dir, base+".log")
}

func (p *Proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== lab: %s %v at %s\n", p.spec.Path, p.spec.Args, time.Now().Format(time.RFC3339Nano))
	cmd := command(context.Background(), p.spec.Netns, p.spec.Path, p.spec.Args...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group: a terminal's ^C reaches the test, not its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	if err := p.lab.recordPid(p.spec.Name, cmd.Process.Pid); err != nil && !p.Exited() {
		return err
	}
	return nil
}

func (p *Proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Name is the spec's name.
func (p *Proc) Name() string { return p.spec.Name }

// Pid is the process id of the current incarnation.
func (p *Proc) Pid() int {
	cmd, _ := p.current()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	return cmd.Process.Pid
}

// LogPath is the file holding the process's output (all incarnations).
func (p *Proc) LogPath() string { return p.log }

// Log returns the content of LogPath.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Exited reports whether the current incarnation has exited.
func (p *Proc) Exited() bool {
	_, done := p.current()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to exit on its own and returns its
// exit error (nil for status 0). It does not stop the process.
func (p *Proc) Wait(d time.Duration) error {
	_, done := p.current()
	if done == nil {
		return errors.New("not started")
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %s", p.spec.Name, p.Pid(), d)
	}
}

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
var stopGrace = 5 * time.Second

// Stop sends SIGTERM, then SIGKILL after 5 s, and waits for the exit.
func (p *Proc) Stop() { p.signal(syscall.SIGTERM, stopGrace) }

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 0) }

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) {
	cmd, done := p.current()
	if cmd == nil || p.Exited() {
		return
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	<-done
}

// Restart stops the process (if running) and starts it again with the
// same spec; the new incarnation has a new pid and logs to the same file.
func (p *Proc) Restart() error {
	p.Stop()
	return p.start()
}
