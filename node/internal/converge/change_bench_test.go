package converge

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
	"github.com/switchyard/switchyard/tests/lab"
)

// scaleProgram is h1's program with remote containers 0..remote-1 on h2
// and the local containers locals.
func scaleProgram(rev int64, remote int, locals []ctr) *openapi.Program {
	p := program("h1", rev, locals, map[string]string{"h2": "192.0.2.2"}, "geneve")
	for i := 0; i < remote; i++ {
		p.Flows = append(p.Flows, remoteFlows(i)...)
	}
	progpkg.SortFlows(p.Flows)
	p.Digest = progpkg.Digest(p)
	return p
}

// BenchmarkApplyOneChange measures a host's apply of a one-container change
// with tables of 100, 1,000 and 5,000 containers: remote (a container on
// another host: flows only) and local (its veth, sandbox and OVS port too).
// Each op alternates adding and removing the container, so every op is a
// one-container change. The program goes to the applier with its delta,
// as the agent hands it over. Both ways of sending the change are measured:
// native flow_mods (the default) and ovs-ofctl (OFCtlDeltas). Between ops,
// with the timer stopped, it waits until the applier's spare ovs-ofctl is
// ready (changes come apart).
func BenchmarkApplyOneChange(b *testing.B) {
	l := lab.New(b, lab.Options{Hosts: 1})
	h := l.Hosts[0]
	locals := []ctr{{N: 1, Host: "h1"}, {N: 2, Host: "h1"}}
	for _, n := range []int{100, 1000, 5000} {
		a := newHost(b, l, h)
		if _, err := a.NewGeneration(context.Background()); err != nil {
			b.Fatal(err)
		}
		base := scaleProgram(1, n-len(locals), locals)
		benchApply(b, a, base)
		for _, way := range []string{"native", "ofctl"} {
			a.sw.Tune(ovs.Tuning{OFCtlDeltas: way == "ofctl"})
			b.Run(fmt.Sprintf("containers=%d/remote/%s", n, way), func(b *testing.B) {
				with := scaleProgram(2, n-len(locals)+1, locals)
				benchChanges(b, h, a, base, with)
			})
			b.Run(fmt.Sprintf("containers=%d/local/%s", n, way), func(b *testing.B) {
				with := scaleProgram(3, n-len(locals), append(slices.Clone(locals), ctr{N: 3, Host: "h1"}))
				benchChanges(b, h, a, base, with)
			})
		}
	}
}

// cpuNow is the CPU time used so far by this process (the applier), by its
// reaped children (ovs-ofctl) and by h's ovs-vswitchd.
func cpuNow(b *testing.B, h *lab.Host) (self, children, vswitchd time.Duration) {
	var ru syscall.Rusage
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = tv(ru.Utime) + tv(ru.Stime)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	children = tv(ru.Utime) + tv(ru.Stime)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.VSwitchdPid()))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	vswitchd = time.Duration(ut+stime) * time.Second / 100 // USER_HZ
	return self, children, vswitchd
}

// benchChanges applies with, base, with, ... starting from base applied,
// and ends with base applied.
// CPU per op is that of the whole loop (the timer stopped too, as the next
// spare ovs-ofctl starts then): the applier's process, its reaped
// children, and ovs-vswitchd.
func benchChanges(b *testing.B, h *lab.Host, a *Host, base, with *openapi.Program) {
	progs := [2]*openapi.Program{with, base}
	deltas := [2]*openapi.ProgramDelta{progpkg.Diff(base, with), progpkg.Diff(with, base)}
	var pt phaseTimes
	var lat []time.Duration
	runs := a.sw.Inspect().OFCtlRuns
	self0, child0, vsw0 := cpuNow(b, h)
	i := 0
	for b.Loop() {
		// Changes come apart, not back to back: give the applier the
		// time to start its next spare ovs-ofctl (spare.go).
		b.StopTimer()
		for w := 0; w < 1000 && a.sw.Inspect().SparePID == 0; w++ {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		t := time.Now()
		pt.add(benchApplyDelta(b, a, progs[i%2], deltas[i%2]))
		lat = append(lat, time.Since(t))
		i++
	}
	b.StopTimer()
	self1, child1, vsw1 := cpuNow(b, h)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(i) }
	b.ReportMetric(ms(self1-self0), "applier-cpu-ms/op")
	b.ReportMetric(ms(child1-child0), "children-cpu-ms/op")
	b.ReportMetric(ms(vsw1-vsw0), "vswitchd-cpu-ms/op")
	b.ReportMetric(float64(a.sw.Inspect().OFCtlRuns-runs)/float64(i), "ovs-ofctl/op")
	if i%2 == 1 {
		benchApplyDelta(b, a, base, deltas[1])
	}
	pt.report(b)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
}

func benchApplyDelta(b *testing.B, a *Host, p *openapi.Program, d *openapi.ProgramDelta) ApplyResult {
	b.Helper()
	res := applyDelta(b, a, p, d)
	if res.OpenFlow != "delta" {
		b.Fatalf("openflow %s, want delta", res.OpenFlow)
	}
	return res
}

// BenchmarkFirstPacket measures, on a host with 100 local containers among
// 1,000, the time from the start of the apply that adds a local container
// until that container gets a ping answered by another one on the host:
// veth, sandbox, OVS port, ofport, flows. ping sends every 2 ms from when
// the apply returns. Each op adds the container, then (timer stopped)
// removes it.
func BenchmarkFirstPacket(b *testing.B) {
	l, h, a, locals, base := hostOfHundred(b)
	c := ctr{N: 200, Host: "h1"}
	with := scaleProgram(2, 900, append(slices.Clone(locals), c))
	// A remote container's change on this host of 100 ports.
	remote := scaleProgram(3, 901, locals)
	var lat []time.Duration
	for i := 0; i < 20; i++ {
		from, to := base, remote
		if i%2 == 1 {
			from, to = remote, base
		}
		for w := 0; w < 1000 && a.sw.Inspect().SparePID == 0; w++ {
			time.Sleep(time.Millisecond)
		}
		t := time.Now()
		benchApplyDelta(b, a, to, progpkg.Diff(from, to))
		lat = append(lat, time.Since(t))
	}
	// The two ways alternate op by op, so that the machine's load hits
	// both alike: the ofport OVS assigns, and the one the applier requests.
	var pt [2]phaseTimes
	var first [2][]time.Duration
	i := 0
	for b.Loop() {
		k := i % 2
		a.sw.Tune(ovs.Tuning{AssignedOFPorts: k == 0})
		t := time.Now()
		pt[k].add(benchApplyDelta(b, a, with, progpkg.Diff(base, with)))
		cmd := exec.Command("ip", "netns", "exec", sandbox(l, h, c), "ping", "-n", "-q", "-i", "0.002", "-w", "5", "-c", "1", locals[0].IP())
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ping: %v\n%s", err, out)
		}
		first[k] = append(first[k], time.Since(t))
		b.StopTimer()
		benchApplyDelta(b, a, base, progpkg.Diff(with, base))
		b.StartTimer()
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "remote-apply-p50-ms")
	for k, name := range []string{"assigned", "requested"} {
		if len(first[k]) == 0 {
			continue
		}
		slices.Sort(first[k])
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		n := float64(pt[k].n)
		b.ReportMetric(ms(first[k][len(first[k])/2]), name+"-first-ping-p50-ms")
		b.ReportMetric(ms(first[k][len(first[k])*99/100]), name+"-first-ping-p99-ms")
		b.ReportMetric(ms(pt[k].ofports)/n, name+"-ofports-ms/op")
		b.ReportMetric(ms(pt[k].openflow)/n, name+"-openflow-ms/op")
		b.ReportMetric(ms(pt[k].links)/n, name+"-links-ms/op")
		b.ReportMetric(ms(pt[k].ovsdb)/n, name+"-ovsdb-ms/op")
		b.ReportMetric(float64(pt[k].late)/n, name+"-ports-after-flows")
		b.ReportMetric(float64(pt[k].ofctl)/n, name+"-ofctl-runs/op")
	}
}

// BenchmarkObserve measures the resync's full check (Observe) of a host
// with 100 local containers among 1,000 (8,000 flows), after each of
// the changes that come between two resyncs (one here: a remote
// container added or removed, timer stopped), with its phases.
func BenchmarkObserve(b *testing.B) {
	_, h, a, locals, base := hostOfHundred(b)
	remote := scaleProgram(2, 901, locals)
	progs := [2]*openapi.Program{remote, base}
	deltas := [2]*openapi.ProgramDelta{progpkg.Diff(base, remote), progpkg.Diff(remote, base)}
	var sum ObserveTiming
	self0, child0, vsw0 := cpuNow(b, h)
	i := 0
	for b.Loop() {
		b.StopTimer()
		benchApplyDelta(b, a, progs[i%2], deltas[i%2])
		b.StartTimer()
		obs, err := a.Observe(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if obs.Drifted() {
			b.Fatalf("drift after a clean apply: %v", obs.Drift)
		}
		t := obs.Timing
		sum.Links += t.Links
		sum.OVSDB += t.OVSDB
		sum.Canonical += t.Canonical
		sum.Dump += t.Dump
		sum.Groups += t.Groups
		i++
	}
	b.StopTimer()
	self1, child1, vsw1 := cpuNow(b, h)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(i) }
	b.ReportMetric(ms(sum.Links), "links-ms/op")
	b.ReportMetric(ms(sum.OVSDB), "ovsdb-ms/op")
	b.ReportMetric(ms(sum.Canonical), "canonical-ms/op")
	b.ReportMetric(ms(sum.Dump), "dump-ms/op")
	b.ReportMetric(ms(sum.Groups), "counts-groups-ms/op")
	b.ReportMetric(ms(self1-self0), "applier-cpu-ms/op")
	b.ReportMetric(ms(child1-child0), "children-cpu-ms/op")
	b.ReportMetric(ms(vsw1-vsw0), "vswitchd-cpu-ms/op")
	if i%2 == 1 {
		benchApplyDelta(b, a, base, deltas[1])
	}
}

// hostOfHundred is a lab host with 100 local containers among 1,000
// (scaleProgram), applied.
func hostOfHundred(b *testing.B) (*lab.Lab, *lab.Host, *Host, []ctr, *openapi.Program) {
	l := lab.New(b, lab.Options{Hosts: 1})
	h := l.Hosts[0]
	var locals []ctr
	for i := 1; i <= 100; i++ {
		locals = append(locals, ctr{N: i, Host: "h1"})
	}
	a := newHost(b, l, h)
	if _, err := a.NewGeneration(context.Background()); err != nil {
		b.Fatal(err)
	}
	base := scaleProgram(1, 900, locals)
	benchApply(b, a, base)
	return l, h, a, locals, base
}
