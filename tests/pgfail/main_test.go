package pgfail

import (
	"testing"

	"github.com/switchyard/switchyard/tests/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }
