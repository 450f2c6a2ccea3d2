package store

import (
	"context"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// BenchmarkAllocate creates and deletes one object per iteration in the
// extreme cases of allocation. Each must cost about what the empty case
// costs: allocation reads a free list, it never enumerates values in use.
//
//	go test -run '^$' -bench Allocate ./controller/internal/store/
func BenchmarkAllocate(b *testing.B) {
	ctx := context.Background()
	containerLoop := func(b *testing.B, st *Store, network string) {
		for b.Loop() {
			c, err := createContainer(b, st, network, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.DeleteContainer(ctx, "bench", c.ID, "", 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("ip-empty", func(b *testing.B) {
		st, _ := newStore(b, Options{})
		mkHost(b, st, "h1", "192.0.2.1")
		mkNetwork(b, st, "n", "10.1.0.0/16", 0)
		containerLoop(b, st, "n")
	})
	b.Run("ip-nearly-full", func(b *testing.B) {
		// One free address, just behind the cursor: every create wraps.
		st, _ := newStore(b, Options{})
		mkHost(b, st, "h1", "192.0.2.1")
		mkNetwork(b, st, "n", "10.1.0.0/16", 0)
		fill(b, st, "n", 2, 65534, 1, 3)
		vacuum(b, st)
		containerLoop(b, st, "n")
	})
	b.Run("ip-fragmented", func(b *testing.B) {
		st, _ := newStore(b, Options{})
		mkHost(b, st, "h1", "192.0.2.1")
		mkNetwork(b, st, "n", "10.1.0.0/16", 0)
		fill(b, st, "n", 2, 65534, 2)
		vacuum(b, st)
		containerLoop(b, st, "n")
	})
	b.Run("vni-top", func(b *testing.B) {
		st, _ := newStore(b, Options{})
		mkNetwork(b, st, "top", "10.1.0.0/24", MaxVNI)
		for b.Loop() {
			n := mkNetwork(b, st, "bench", "10.2.0.0/24", 0)
			if _, err := st.DeleteNetwork(ctx, "bench", n.ID, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vip-crowded", func(b *testing.B) {
		// The service range is full but for its last address.
		st, _ := newStore(b, Options{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/16")})
		mkNetwork(b, st, "n", "10.1.0.0/24", 0)
		fillServices(b, st, "n", 1, 65533)
		vacuum(b, st)
		svc := openapi.Service{Name: "bench", Network: "n", Ports: []openapi.ServicePort{{Port: 80}}}
		for b.Loop() {
			v, err := st.CreateService(ctx, "bench", svc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.DeleteService(ctx, "bench", v.ID, "", 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
