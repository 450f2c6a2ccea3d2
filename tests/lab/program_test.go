package lab

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// Compile-time: tests and benchmarks, and a Program, are all a T.
var (
	_ T = (*testing.T)(nil)
	_ T = (*testing.B)(nil)
	_ T = testing.TB(nil)
	_ T = (*Program)(nil)
)

// runProgram runs body with a Program whose exit ends body's goroutine, and
// returns the exit code (-1 if body returned without exiting) and output.
func runProgram(body func(p *Program)) (code int, out string) {
	var buf bytes.Buffer
	p := NewProgram("prog", &buf)
	code = -1
	p.exit = func(c int) { code = c; runtime.Goexit() }
	done := make(chan struct{})
	go func() { defer close(done); body(p) }()
	<-done
	return code, buf.String()
}

func TestProgramCleanupOrderAndExit(t *testing.T) {
	var order []int
	code, out := runProgram(func(p *Program) {
		for i := 1; i <= 3; i++ {
			p.Cleanup(func() { order = append(order, i) })
		}
		p.Logf("hello %d", 42)
		p.Exit(0)
		order = append(order, 99) // not reached
	})
	if code != 0 || len(order) != 3 || order[0] != 3 || order[2] != 1 {
		t.Errorf("code %d, cleanups ran %v; want 0, [3 2 1]", code, order)
	}
	if out != "prog: hello 42\n" {
		t.Errorf("output %q", out)
	}
}

func TestProgramFatalfExitsAfterCleanup(t *testing.T) {
	cleaned, after := false, false
	code, out := runProgram(func(p *Program) {
		p.Cleanup(func() { cleaned = true })
		p.Fatalf("broken: %s", "x")
		after = true
	})
	if code != 1 || !cleaned || after {
		t.Errorf("code %d, cleaned %v, ran on %v; want 1, true, false", code, cleaned, after)
	}
	if !strings.Contains(out, "error: broken: x") {
		t.Errorf("output %q", out)
	}
}

func TestProgramErrorfFailsExit(t *testing.T) {
	code, _ := runProgram(func(p *Program) {
		p.Errorf("something went wrong")
		if !p.Failed() {
			t.Error("Failed() = false after Errorf")
		}
		p.Exit(0)
	})
	if code != 1 {
		t.Errorf("code %d, want 1", code)
	}
}

func TestProgramFatalfInCleanupRunsTheRest(t *testing.T) {
	var order []string
	code, _ := runProgram(func(p *Program) {
		p.Cleanup(func() { order = append(order, "first") })
		p.Cleanup(func() {
			p.Fatalf("cleanup failed")
			order = append(order, "not reached")
		})
		p.Cleanup(func() { order = append(order, "last") })
		p.Exit(0)
	})
	if code != 1 || strings.Join(order, ",") != "last,first" {
		t.Errorf("code %d, order %v; want 1, [last first]", code, order)
	}
}

func TestProgramSkipf(t *testing.T) {
	cleaned := false
	code, out := runProgram(func(p *Program) {
		p.Cleanup(func() { cleaned = true })
		p.Skipf("no %s here", "OVS")
	})
	if code != 0 || !cleaned || !strings.Contains(out, "skipped: no OVS here") {
		t.Errorf("code %d, cleaned %v, output %q", code, cleaned, out)
	}
}
