// Package e2e holds Switchyard's end-to-end scenarios: real PostgreSQL, the
// real controller and agent binaries, real Open vSwitch in simulated hosts,
// real packets between real network namespaces.
package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/tests/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }
