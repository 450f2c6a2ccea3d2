package cluster

import "testing"

// FreePort asks the kernel for a free loopback port (for servers a test
// starts beside the cluster, e.g. the soak's own PostgreSQL).
func FreePort(t testing.TB) int { return freePort(t) }
