package e2e

import (
	"fmt"
	"strings"
)

// The truth table of the network-policy scenarios, after the Kubernetes
// network-policy e2e tests: nine "pods" x/a ... z/c (namespace and pod are
// labels), and for each probed port a 9x9 matrix of who reaches whom.
// Expected matrices are written by hand in each scenario with the helpers
// below (patterns such as "x/*", "*/a", "x/a,y/b"); nothing here evaluates
// a policy, so the product's own code never decides what is expected.

// podNS and podNames span the nine pods, in table order.
var (
	podNS    = []string{"x", "y", "z"}
	podNames = []string{"a", "b", "c"}
)

// numPods is the size of a side of the truth table.
const numPods = 9

// podName is the name of pod i in table order: "x/a", "x/b", ... "z/c".
func podName(i int) string { return podNS[i/3] + "/" + podNames[i%3] }

// kind is one probed port: a protocol and port (0 for icmp).
type kind struct {
	proto string
	port  int
}

func (k kind) String() string {
	if k.port == 0 {
		return strings.ToUpper(k.proto)
	}
	return fmt.Sprintf("%s/%d", strings.ToUpper(k.proto), k.port)
}

var (
	tcp80  = kind{"tcp", 80}
	tcp81  = kind{"tcp", 81}
	udp80  = kind{"udp", 80}
	icmpEc = kind{"icmp", 0}
	// portKinds are what a scenario probes unless it says otherwise: every
	// port the probe servers serve (lab.ProbePorts).
	portKinds = []kind{tcp80, tcp81, udp80}
)

// truth is a reachability matrix per probed kind: ok[k][from][to].
type truth struct {
	kinds []kind
	ok    map[kind]*[numPods][numPods]bool
}

// everything is a table where every pod reaches every pod on every kind
// (portKinds when none is given): the state without any policy.
func everything(kinds ...kind) *truth {
	if len(kinds) == 0 {
		kinds = portKinds
	}
	m := &truth{kinds: kinds, ok: map[kind]*[numPods][numPods]bool{}}
	for _, k := range kinds {
		m.ok[k] = new([numPods][numPods]bool)
	}
	return m.set(true, "*", "*")
}

// pods returns the table indexes a pattern names: a comma-separated list
// of "ns/pod" where either part may be "*".
func pods(pattern string) []int {
	var out []int
	for _, p := range strings.Split(pattern, ",") {
		ns, name, ok := strings.Cut(strings.TrimSpace(p), "/")
		if p == "*" {
			ns, name, ok = "*", "*", true
		}
		if !ok {
			panic("bad pod pattern " + p)
		}
		n := 0
		for i := 0; i < numPods; i++ {
			if (ns == "*" || ns == podNS[i/3]) && (name == "*" || name == podNames[i%3]) {
				out = append(out, i)
				n++
			}
		}
		if n == 0 {
			panic("pod pattern " + p + " names no pod")
		}
	}
	return out
}

// set marks from -> to as reachable (or not) on the kinds given, or on
// every kind of the table when none is.
func (m *truth) set(v bool, from, to string, kinds ...kind) *truth {
	if len(kinds) == 0 {
		kinds = m.kinds
	}
	for _, k := range kinds {
		g := m.ok[k]
		if g == nil {
			panic("kind " + k.String() + " is not probed in this table")
		}
		for _, f := range pods(from) {
			for _, t := range pods(to) {
				g[f][t] = v
			}
		}
	}
	return m
}

// block says from cannot reach to (on kinds, default all).
func (m *truth) block(from, to string, kinds ...kind) *truth { return m.set(false, from, to, kinds...) }

// allow says from reaches to (on kinds, default all).
func (m *truth) allow(from, to string, kinds ...kind) *truth { return m.set(true, from, to, kinds...) }

// isolateIn says nothing reaches to, except from the patterns in allowed.
func (m *truth) isolateIn(to string, allowed ...string) *truth {
	m.block("*", to)
	for _, a := range allowed {
		m.allow(a, to)
	}
	return m
}

// isolateOut says from reaches nothing, except the patterns in allowed.
func (m *truth) isolateOut(from string, allowed ...string) *truth {
	m.block(from, "*")
	for _, a := range allowed {
		m.allow(from, a)
	}
	return m
}

// loopback marks every pod as reaching itself: a probe to one's own
// address never leaves the pod's namespace (it goes over lo), so no policy
// can stop it, as in Kubernetes (AllowLoopback).
func (m *truth) loopback() *truth {
	for _, k := range m.kinds {
		for i := 0; i < numPods; i++ {
			m.ok[k][i][i] = true
		}
	}
	return m
}

// cells counts the cells that differ between want and got.
func diffCells(want, got *truth) int {
	n := 0
	for _, k := range want.kinds {
		for f := 0; f < numPods; f++ {
			for t := 0; t < numPods; t++ {
				if want.ok[k][f][t] != got.ok[k][f][t] {
					n++
				}
			}
		}
	}
	return n
}

// cells names the cells where got differs from want and pick(want's
// value) holds, e.g. "TCP/80 y/a->x/b: want X, got .".
func cells(want, got *truth, pick func(want bool) bool) []string {
	var out []string
	for _, k := range want.kinds {
		for f := 0; f < numPods; f++ {
			for t := 0; t < numPods; t++ {
				if w, g := want.ok[k][f][t], got.ok[k][f][t]; w != g && pick(w) {
					out = append(out, fmt.Sprintf("%s %s->%s: want %s, got %s", k, podName(f), podName(t), mark(w), mark(g)))
				}
			}
		}
	}
	return out
}

// cellList names up to max cells where got differs from want.
func cellList(want, got *truth, max int) string {
	out := cells(want, got, func(bool) bool { return true })
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("and %d more", len(out)-max))
	}
	return strings.Join(out, "; ")
}

// diff prints, for each kind where got differs from want, the expected,
// observed and comparison grids side by side, rows = from, columns = to:
// "." reaches, "X" blocked; in the comparison "." agrees, "X" differs.
// It returns "" when the tables agree.
func diff(want, got *truth) string {
	var b strings.Builder
	for _, k := range want.kinds {
		w, g := want.ok[k], got.ok[k]
		if *w == *g {
			continue
		}
		fmt.Fprintf(&b, "\n%s (rows: from, columns: to; . reaches, X blocked)\n", k)
		header := "    " + strings.Join(names(), " ")
		fmt.Fprintf(&b, "%-41s %-41s %s\n", "expected", "observed", "comparison (X = wrong)")
		fmt.Fprintf(&b, "%-41s %-41s %s\n", header, header, header)
		for f := 0; f < numPods; f++ {
			var row [3]strings.Builder
			for t := 0; t < numPods; t++ {
				fmt.Fprintf(&row[0], " %s  ", mark(w[f][t]))
				fmt.Fprintf(&row[1], " %s  ", mark(g[f][t]))
				fmt.Fprintf(&row[2], " %s  ", mark(w[f][t] == g[f][t]))
			}
			fmt.Fprintf(&b, "%-41s %-41s %s\n", podName(f)+" "+row[0].String(), podName(f)+" "+row[1].String(), podName(f)+" "+row[2].String())
		}
	}
	return b.String()
}

func names() []string {
	out := make([]string, numPods)
	for i := range out {
		out[i] = podName(i)
	}
	return out
}

func mark(ok bool) string {
	if ok {
		return "."
	}
	return "X"
}
