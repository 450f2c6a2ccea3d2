package program

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPatchByKeyMerge: patchByKey (the order checked, then the binary
// search), and patchSorted alone, give what the map-and-sort path gives,
// errors included, on random element lists and deltas.
func TestPatchByKeyMerge(t *testing.T) {
	id := func(s *string) string { return *s }
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 2000; n++ {
		var from []string
		for i := 0; i < r.IntN(20); i++ {
			from = append(from, fmt.Sprint(r.IntN(30)))
		}
		slices.Sort(from)
		from = slices.Compact(from)
		var remove, add []string
		for i := 0; i < r.IntN(4); i++ {
			remove = append(remove, fmt.Sprint(r.IntN(30)))
		}
		for i := 0; i < r.IntN(4); i++ {
			add = append(add, fmt.Sprint(r.IntN(30)))
		}
		got, err1 := patchByKey(from, remove, add, id, "x")
		want, err2 := patchByKeyUnsorted(from, remove, add, id, "x")
		if (err1 == nil) != (err2 == nil) || err1 == nil && !slices.Equal(got, want) {
			t.Fatalf("from %v remove %v add %v: merge %v %v, map %v %v", from, remove, add, got, err1, want, err2)
		}
		// The binary-search path for lists known sorted: the same again.
		bs, err3 := patchSorted(from, remove, add, id, "x")
		if (err3 == nil) != (err2 == nil) || err3 == nil && !slices.Equal(bs, want) {
			t.Fatalf("from %v remove %v add %v: sorted %v %v, map %v %v", from, remove, add, bs, err3, want, err2)
		}
	}
}
