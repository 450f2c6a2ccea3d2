package e2e

import (
	"slices"
	"strings"
	"testing"
)

// The truth-table helpers name the pods a pattern says, build expected
// tables cell by cell, and print a difference where it is (no lab needed).
func TestTruthTable(t *testing.T) {
	for pattern, want := range map[string][]int{
		"x/*": {0, 1, 2}, "*/a": {0, 3, 6}, "x/a,y/b": {0, 4}, "*": {0, 1, 2, 3, 4, 5, 6, 7, 8}, "z/c": {8},
	} {
		if got := pods(pattern); !slices.Equal(got, want) {
			t.Errorf("pods(%q) = %v, want %v", pattern, got, want)
		}
	}

	m := everything().isolateIn("x/*", "y/a").allow("*", "x/c", udp80).loopback()
	for _, c := range []struct {
		k        kind
		from, to string
		want     bool
	}{
		{tcp80, "y/a", "x/b", true}, {tcp80, "y/b", "x/b", false}, {tcp81, "z/c", "x/a", false},
		{udp80, "z/c", "x/c", true}, {tcp80, "z/c", "x/c", false}, {tcp80, "x/a", "x/a", true}, {tcp80, "x/a", "z/c", true},
	} {
		if got := m.ok[c.k][pods(c.from)[0]][pods(c.to)[0]]; got != c.want {
			t.Errorf("%s %s -> %s = %v, want %v", c.k, c.from, c.to, got, c.want)
		}
	}

	got := everything().isolateIn("x/*", "y/a").allow("*", "x/c", udp80).loopback()
	if d := diff(m, got); d != "" || diffCells(m, got) != 0 {
		t.Fatalf("equal tables differ:%s", d)
	}
	got.block("z/b", "y/c", tcp81)
	if n := diffCells(m, got); n != 1 {
		t.Fatalf("%d cells differ, want 1", n)
	}
	d := diff(m, got)
	if !strings.Contains(d, "TCP/81") || strings.Contains(d, "TCP/80") || strings.Contains(d, "UDP/80") {
		t.Fatalf("the diff should show TCP/81 only:%s", d)
	}
	// In the comparison grid (the third), row z/b has its one X under y/c.
	for _, line := range strings.Split(d, "\n") {
		if i := strings.LastIndex(line, "z/b "); i > 0 && strings.HasPrefix(line, "z/b ") {
			if want := "z/b  .   .   .   .   .   X   .   .   .  "; line[i:] != want {
				t.Errorf("comparison row %q, want %q", line[i:], want)
			}
		}
	}
}
