package soak

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }

// TestSoak is the chaos soak of `make soak`: SOAK_DURATION (required, e.g.
// 30m) of rounds on a 4-host lab, the report written to SOAK_REPORT (make
// soak: docs/soak.md). SOAK_SEED picks the random choices (the report
// gives the one used; timing still differs from run to run). Without SOAK_DURATION it is skipped: it is not part
// of `make test`.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SOAK_DURATION"))
	if err != nil || d <= 0 {
		t.Skip("SOAK_DURATION is not set (make soak sets it)")
	}
	seed, _ := strconv.ParseUint(os.Getenv("SOAK_SEED"), 10, 64) // 0: from the clock
	res := run(t, config{Duration: d, Hosts: 4, OpInterval: 2 * time.Second, OpsBetween: 10, OpsDuringFault: 4,
		MaxContainers: 16, Converge: 2 * time.Minute, Seed: seed, Report: os.Getenv("SOAK_REPORT")})
	finish(t, res)
}

// TestSoakSmoke is the soak in short, in `make test`: a 3-host lab, one
// fault of each kind with a few operations around each, so that every
// fault and every invariant of the checker runs.
func TestSoakSmoke(t *testing.T) {
	res := run(t, config{Rounds: len(faultKinds), Hosts: 3, OpInterval: 200 * time.Millisecond, OpsBetween: 4,
		OpsDuringFault: 2, MaxContainers: 8, Converge: 90 * time.Second, Report: os.Getenv("SOAK_SMOKE_REPORT")})
	finish(t, res)
	if len(res.faults) != len(faultKinds) {
		t.Errorf("%d faults injected, want %d", len(res.faults), len(faultKinds))
	}
	if res.passes == 0 || res.probes == 0 || res.events == 0 {
		t.Errorf("the checker did not run: %d passes, %d probes, %d events", res.passes, res.probes, res.events)
	}
	checkerDetects(t, res.k, "h1")
}

// finish writes the report (when asked) and fails the test on violations.
func finish(t *testing.T, res *result) {
	md := res.markdown()
	if res.cfg.Report != "" {
		if err := os.WriteFile(res.cfg.Report, []byte(md), 0o644); err != nil {
			t.Errorf("write the report: %v", err)
		}
	}
	t.Log("\n" + md)
	for _, v := range res.violations {
		t.Errorf("violation: %s", v)
	}
}
