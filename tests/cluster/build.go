// Package cluster brings up a whole Switchyard in the lab for end-to-end
// tests and benchmarks: N simulated hosts (tests/lab), a fresh PostgreSQL
// database, the controller binary, and one agent binary per host inside the
// host's network namespace. The agents reach the controller over the
// underlay, at the underlay's first address, through a relay this package
// runs into the controller on loopback. It must not reach into the
// controller's or agent's internals: it drives them as a user would, by
// their binaries, environment and REST API.
package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Binaries are the built controller and agent, and the lab's probe server
// (tests/lab/cmd/syprobe, see lab.StartProbe).
type Binaries struct {
	Controller, Agent, Probe string
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
	buildDir  string
)

// Main builds the binaries once for a test binary, runs the tests and
// removes the build. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Build returns the binaries, building them on first use.
func Build(t testing.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		root := repoRoot()
		for _, b := range []struct{ out, pkg string }{{"switchyard", "./controller"}, {"switchyard-agent", "./node"}, {"syprobe", "./tests/lab/cmd/syprobe"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		built = Binaries{Controller: filepath.Join(dir, "switchyard"), Agent: filepath.Join(dir, "switchyard-agent"),
			Probe: filepath.Join(dir, "syprobe")}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// repoRoot is the module root: two levels above this file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
