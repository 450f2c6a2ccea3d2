package compile

import (
	"math"
	"testing"
)

// TestFineBuckets: the weights keep every backend's share, and the smallest
// bucket makes OVS use 256 hash values (ceil(total/min) in (128, 256]).
func TestFineBuckets(t *testing.T) {
	for _, ws := range [][]int{{100, 100}, {100, 100, 100}, {29491, 29491, 6554}, {58982, 6554}, {6554, 58982}, {1, 1}, {100, 1, 1, 1, 1}} {
		bs := make([]lbBackend, len(ws))
		total := 0
		for i, w := range ws {
			bs[i] = lbBackend{weight: w}
			total += w
		}
		got, split := fineBuckets(bs)
		if split < 0 {
			t.Fatalf("%v: no split", ws)
		}
		gt, minW := 0, math.MaxInt
		for _, w := range got {
			gt += w
			minW = min(minW, w)
			if w < 1 || w > 65535 {
				t.Fatalf("%v: weight %d out of range (%v)", ws, w, got)
			}
		}
		if n := (gt + minW - 1) / minW; n <= 128 || n > 256 {
			t.Fatalf("%v -> %v: ceil(total/min) = %d, want (128, 256]", ws, got, n)
		}
		for i, w := range ws {
			share := float64(got[i])
			if i == split {
				share += float64(got[len(ws)])
			}
			if d := share/float64(gt) - float64(w)/float64(total); math.Abs(d) > 1e-3 {
				t.Fatalf("%v -> %v: backend %d share off by %.4f", ws, got, i, d)
			}
		}
	}
	// One backend, or a smallest share already under 1/128: left alone.
	if _, split := fineBuckets([]lbBackend{{weight: 100}}); split >= 0 {
		t.Fatal("split one bucket")
	}
	if got, split := fineBuckets([]lbBackend{{weight: 65535}, {weight: 100}}); split >= 0 || got[0] != 65535 {
		t.Fatal("split a group that already gets 256 values")
	}
}
