package compile

import (
	"math/rand/v2"
	"testing"
)

// TestPolicySemanticsRandom: on random snapshots with random policies and
// labels, every probe between containers (and outside addresses) gets from
// the compiled policy tables the verdict the contract's semantics give, by
// a flow carrying the cookie of a deciding rule.
func TestPolicySemanticsRandom(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	total := 0
	for seed := uint64(0); seed < uint64(seeds); seed++ {
		w := &randomWorld{r: rand.New(rand.NewPCG(seed, 99))}
		s := w.snapshot()
		progs := Compile(s)
		checkInvariants(t, s, progs)
		total += checkPolicies(t, s, progs)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
	t.Logf("%d verdicts checked", total)
}
