// Package golden compares a test's output with a file under testdata and,
// with the test's -update flag, rewrites that file. It is for tests only: it
// must not be imported by code that ships.
package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with testdata/<name>.golden; with update it writes got
// there instead.
func Check(t testing.TB, name, got string, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from what the test produced (review it, then run with -update):\n%s", path, got)
	}
}
