package lab

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// T is what the lab needs from its caller: the subset of testing.TB it
// uses. *testing.T and *testing.B (any testing.TB) satisfy it; a command
// that runs a lab outside `go test` (the demo lab, tests/lab/cmd/sylab) uses
// a Program.
type T interface {
	Helper()
	Name() string
	Log(args ...any)
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(f func())
	Failed() bool
}

// Program is a T for a command: messages go to its writer, Cleanup
// functions run in reverse order at Exit, Errorf marks it failed, Fatalf
// exits with status 1 after the cleanups and Skipf with status 0.
//
// Call Exit (not os.Exit) at the end of main so the cleanups run. Fatalf
// and Skipf are meant for the goroutine that runs main; a Fatalf inside a
// cleanup ends that cleanup only, and the others still run.
type Program struct {
	name string
	out  io.Writer
	// exit ends the process; tests replace it.
	exit func(code int)

	mu        sync.Mutex
	cleanups  []func()
	failed    bool
	exiting   bool
	inCleanup bool
}

// NewProgram returns a Program that writes "<name>: <message>" lines to out
// (os.Stderr when nil).
func NewProgram(name string, out io.Writer) *Program {
	if out == nil {
		out = os.Stderr
	}
	return &Program{name: name, out: out, exit: os.Exit}
}

// errFatalInCleanup unwinds a cleanup that called Fatalf.
type errFatalInCleanup struct{}

func (p *Program) Helper()      {}
func (p *Program) Name() string { return p.name }

// Log prints its arguments like fmt.Sprint.
func (p *Program) Log(args ...any) { p.print(fmt.Sprint(args...)) }

// Logf prints a formatted message.
func (p *Program) Logf(format string, args ...any) { p.print(fmt.Sprintf(format, args...)) }

// Errorf prints a message and marks the program failed.
func (p *Program) Errorf(format string, args ...any) {
	p.print("error: " + fmt.Sprintf(format, args...))
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
}

// Fatalf prints a message, marks the program failed, runs the cleanups and
// exits with status 1.
func (p *Program) Fatalf(format string, args ...any) {
	p.Errorf(format, args...)
	p.mu.Lock()
	in := p.inCleanup
	p.mu.Unlock()
	if in {
		panic(errFatalInCleanup{})
	}
	p.Exit(1)
}

// Skipf prints why the program cannot do its job, runs the cleanups and
// exits with status 0.
func (p *Program) Skipf(format string, args ...any) {
	p.print("skipped: " + fmt.Sprintf(format, args...))
	p.Exit(0)
}

// Cleanup registers f to run at Exit, before the cleanups registered
// earlier.
func (p *Program) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

// Failed reports whether Errorf or Fatalf was called.
func (p *Program) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Exit runs the cleanups, newest first, and exits with code, or with 1 if
// the program has failed. Only the first call does that; a later call (from
// another goroutine while the first one cleans up) blocks until the process
// ends.
func (p *Program) Exit(code int) {
	p.mu.Lock()
	if p.exiting {
		p.mu.Unlock()
		select {}
	}
	p.exiting = true
	p.mu.Unlock()
	p.RunCleanups()
	if code == 0 && p.Failed() {
		code = 1
	}
	p.exit(code)
}

// RunCleanups runs the registered cleanups, newest first, and forgets them.
// Exit calls it; call it directly only where the process goes on.
func (p *Program) RunCleanups() {
	for {
		p.mu.Lock()
		n := len(p.cleanups)
		if n == 0 {
			p.inCleanup = false
			p.mu.Unlock()
			return
		}
		f := p.cleanups[n-1]
		p.cleanups = p.cleanups[:n-1]
		p.inCleanup = true
		p.mu.Unlock()
		p.runCleanup(f)
	}
}

func (p *Program) runCleanup(f func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(errFatalInCleanup); !ok {
				p.Errorf("cleanup panicked: %v", r)
			}
		}
	}()
	f()
}

func (p *Program) print(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "%s: %s\n", p.name, msg)
}
