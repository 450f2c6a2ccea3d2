package bench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pct returns the p-th percentile (0 < p <= 100) of xs by nearest rank:
// the smallest value at least p% of the samples are at or below. xs is not
// modified; an empty xs gives NaN.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// msOf is d in milliseconds.
func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rssMB reads VmRSS of a process from /proc, in MB (10^6 bytes).
func rssMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024 / 1e6, err
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

// cpuUse is CPU time (user + system) of the processes of a cluster.
type cpuUse struct{ agents, vswitchd, controller time.Duration }

func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{u.agents - v.agents, u.vswitchd - v.vswitchd, u.controller - v.controller}
}

func (u cpuUse) add(v cpuUse) cpuUse {
	return cpuUse{u.agents + v.agents, u.vswitchd + v.vswitchd, u.controller + v.controller}
}

// clockTick is the unit of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime is the user + system CPU time pid has used (its threads
// included), plus that of its children it has waited for (the agent's
// ovs-ofctl processes), or 0 when it cannot be read. The resolution is
// 10 ms.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick
}

// applyLog is one "applied" line of an agent's log.
type applyLog struct {
	at      time.Time // when the line was written (millisecond resolution)
	took    time.Duration
	summary string
	// The applier's phases (converge.Timing), when the summary has them.
	links, ovsdb, ofports, openflow time.Duration
}

var (
	appliedLine = regexp.MustCompile(`^time=(\S+) .*msg=applied .*revision=(\d+) .*took=(\S+) summary="([^"]*)"`)
	// summaryPhases is the applier's phases in the summary.
	summaryPhases = regexp.MustCompile(`\(links (\S+) ovsdb (\S+) ofports (\S+) openflow (\S+)\)`)
)

// parseApplied reads an agent log: revision -> its "applied" line.
func parseApplied(log string) map[int64]applyLog {
	out := map[int64]applyLog{}
	for _, line := range strings.Split(log, "\n") {
		m := appliedLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err1 := time.Parse(time.RFC3339Nano, m[1])
		rev, err2 := strconv.ParseInt(m[2], 10, 64)
		took, err3 := time.ParseDuration(m[3])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		l := applyLog{at: at, took: took, summary: m[4]}
		if p := summaryPhases.FindStringSubmatch(m[4]); p != nil {
			l.links, _ = time.ParseDuration(p[1])
			l.ovsdb, _ = time.ParseDuration(p[2])
			l.ofports, _ = time.ParseDuration(p[3])
			l.openflow, _ = time.ParseDuration(p[4])
		}
		out[rev] = l
	}
	return out
}

// pingTimes parses the per-reply round trip times of `ping` output.
var pingTime = regexp.MustCompile(`time=([\d.]+) ms`)

func pingTimes(out string) []float64 {
	var ms []float64
	for _, m := range pingTime.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			ms = append(ms, v)
		}
	}
	return ms
}
