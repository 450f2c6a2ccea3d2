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
