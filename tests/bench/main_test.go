package bench

import (
	"testing"

	"github.com/switchyard/switchyard/tests/cluster"
)

// TestMain builds the controller and agent once and removes them after.
func TestMain(m *testing.M) { cluster.Main(m) }
