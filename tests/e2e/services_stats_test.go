package e2e

import (
	"math"
	"testing"
)

// chiSquare is Pearson's statistic of counts against equal shares, and its
// p-value: the chance that a uniform choice gives a statistic at least as
// large (k-1 degrees of freedom).
func chiSquare(counts []int) (stat, p float64) {
	n := 0
	for _, c := range counts {
		n += c
	}
	want := float64(n) / float64(len(counts))
	for _, c := range counts {
		d := float64(c) - want
		stat += d * d / want
	}
	return stat, gammaQ(float64(len(counts)-1)/2, stat/2)
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x), the
// chi-square survival function at Q(df/2, x/2): a series below a+1, a
// continued fraction above (Numerical Recipes, gammq).
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, del := 1/a, 1/a
		for ap := a; math.Abs(del) > math.Abs(sum)*1e-15; {
			ap++
			del *= x / ap
			sum += del
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c, d := 1/tiny, 1/b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// The p-values of known chi-square quantiles, and of the closed forms
// (df 2: exp(-x/2); df 1: erfc(sqrt(x/2))).
func TestChiSquare(t *testing.T) {
	for _, c := range []struct{ df, x, p float64 }{
		{1, 3.841459, 0.05}, {2, 5.991465, 0.05}, {2, 13.81551, 0.001}, {4, 9.487729, 0.05},
		{10, 18.30704, 0.05}, {2, 0.5, math.Exp(-0.25)}, {1, 0.3, math.Erfc(math.Sqrt(0.15))}, {3, 0.1, 0.991837},
	} {
		if got := gammaQ(c.df/2, c.x/2); math.Abs(got-c.p) > 1e-5 {
			t.Errorf("chi-square df %v at %v: p %v, want %v", c.df, c.x, got, c.p)
		}
	}
	if s, p := chiSquare([]int{100, 100, 100}); s != 0 || p != 1 {
		t.Errorf("even counts: %v %v", s, p)
	}
	if _, p := chiSquare([]int{150, 100, 50}); p > 0.001 {
		t.Errorf("150/100/50: p %v, want < 0.001", p)
	}
}
