package soak

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// markdown renders the result as the report (docs/soak.md for `make soak`).
func (r *result) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	verdict := "**0 violations**"
	if n := len(r.violations); n > 0 {
		verdict = fmt.Sprintf("**%d violations**", n)
	}
	p("# Chaos soak report\n\n")
	p("Written by `make soak` (tests/soak, `TestSoak`); what it does and checks: tests/soak/README.md. %s.\n\n", verdict)
	if r.interrupted {
		p("The run was stopped early by a signal: the figures cover the rounds it did.\n\n")
	}
	p("| | |\n|---|---|\n")
	p("| run | %s to %s UTC (%v) |\n", r.start.UTC().Format("2006-01-02 15:04:05"), r.end.UTC().Format("15:04:05"), r.end.Sub(r.start).Round(time.Second))
	p("| lab | %d hosts, Geneve, 2 controller replicas, own PostgreSQL; at most %d containers on 2 networks |\n", r.cfg.Hosts, r.cfg.MaxContainers)
	p("| rate | one operation per %v (slower when a write waits to be realized), %d between faults, %d during each |\n", r.cfg.OpInterval, r.cfg.OpsBetween, r.cfg.OpsDuringFault)
	host, _ := os.Hostname()
	p("| machine | %s, %d CPUs, %s; shared with other work |\n", host, runtime.NumCPU(), runtime.Version())
	p("| load average (1/5/15 min) | start %s, end %s, highest seen %s |\n", r.loadStart, r.loadEnd, r.loadMax)
	p("| seed | %d |\n", r.cfg.Seed)
	p("| checker | %d passes, %d probes (%d failed) |\n", r.passes, r.probes, r.probesKO)
	p("| event stream | %d events r%d..r%d received live across %d reconnects, compared with a fresh replay |\n\n", r.events, r.revStart, r.revEnd, r.reconns)

	p("## Operations\n\n| kind | ok | rejected (409/422, realized-wait timeout) | failed | retries |\n|---|---:|---:|---:|---:|\n")
	total := 0
	for _, k := range opKinds {
		s := r.ops[k]
		if s == nil {
			continue
		}
		total += s.OK + s.Rejected + s.Failed
		p("| %s | %d | %d | %d | %d |\n", k, s.OK, s.Rejected, s.Failed, s.Retries)
	}
	p("\n%d operations in all.\n\n", total)

	p("## Faults\n\nConvergence: from the heal to the first checker pass with every invariant holding (every host Ready\n")
	p("and realized, flows/groups/ports/namespaces/NAT equal to its program, IPAM consistent, probes OK).\n\n")
	p("| kind | count | convergence min / median / max | not converged |\n|---|---:|---|---:|\n")
	byKind := map[string][]faultRecord{}
	for _, f := range r.faults {
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}
	for _, k := range faultKinds {
		fs := byKind[k]
		if len(fs) == 0 {
			continue
		}
		var ds []time.Duration
		bad := 0
		for _, f := range fs {
			if f.Problems != nil {
				bad++
				continue
			}
			ds = append(ds, f.Converged)
		}
		p("| %s | %d | %s | %d |\n", k, len(fs), spread(ds), bad)
	}
	p("\nQuiet-time convergence (after the operations between faults): %s over %d rounds.\n\n", spread(r.steady), len(r.steady))
	p("<details><summary>Every fault</summary>\n\n| # | at (UTC) | kind | host | active | converged | detail |\n|---:|---|---|---|---|---|---|\n")
	for i, f := range r.faults {
		conv := f.Converged.Round(time.Millisecond).String()
		if f.Problems != nil {
			conv = "**no**"
		}
		p("| %d | %s | %s | %s | %v | %s | %s |\n", i, f.At.UTC().Format("15:04:05"), f.Kind, f.Host, f.Active.Round(100*time.Millisecond), conv, f.Detail)
	}
	p("\n</details>\n")
	p("\n## Violations\n\n")
	if len(r.violations) == 0 {
		p("None.\n")
	}
	for _, v := range r.violations {
		p("- %s\n", v)
	}
	return b.String()
}

// spread is "min / median / max" of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return r(s[0]) + " / " + r(s[len(s)/2]) + " / " + r(s[len(s)-1])
}
