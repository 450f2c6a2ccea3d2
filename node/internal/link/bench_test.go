package link

import (
	"fmt"
	"testing"
)

// BenchmarkEnsureUnchanged measures the idle convergence check of one
// container port (everything already right), the per-port cost of every
// Apply.
func BenchmarkEnsureUnchanged(b *testing.B) {
	e := newEnvB(b)
	p := port("vbench"+e.id[:4], "c1", "10.77.0.2", "02:00:00:00:00:02")
	if _, err := e.m.Ensure(p); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d, err := e.m.Ensure(p)
		if err != nil || len(d) != 0 {
			b.Fatal(fmt.Sprint(d, err))
		}
	}
}

// BenchmarkEnsureNew measures a new container's port from nothing: its
// sandbox (a named netns), the veth pair and everything on it. "sandbox"
// is the named netns alone, the part a pool of made namespaces would save.
func BenchmarkEnsureNew(b *testing.B) {
	e := newEnvB(b)
	b.Run("port", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			p := port(fmt.Sprintf("vb%s%d", e.id[:4], i), fmt.Sprintf("n%d", i), "10.77.0.2", "02:00:00:00:00:02")
			if _, err := e.m.Ensure(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sandbox", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if err := createNamedNetns(e.m.SandboxPath(fmt.Sprintf("s%d", i))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
