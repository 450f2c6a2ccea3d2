package program

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// bigProgram has n flows; change returns a copy with one flow replaced.
func bigProgram(n int) (*openapi.Program, *openapi.Program) {
	p := &openapi.Program{Host: "h1", Bridge: openapi.BridgeSpec{Name: "br-int", FailMode: "secure"}}
	for i := 0; i < n; i++ {
		p.Flows = append(p.Flows, openapi.Flow{Table: 7, Priority: 100, Cookie: uint64(i),
			Match: fmt.Sprintf("reg0=0x1,dl_dst=0a:58:0a:80:%02x:%02x", i/256, i%256), Actions: "set_field:0x1->tun_id,output:${port:syt0123456789ab}"})
	}
	SortFlows(p.Flows)
	p.Digest = Digest(p)
	q := *p
	q.Flows = append([]openapi.Flow(nil), p.Flows...)
	q.Flows[n/2].Actions = "drop"
	SortFlows(q.Flows)
	q.Digest = Digest(&q)
	return p, &q
}

// BenchmarkPatch10kFlows: one changed flow in a 10,000-flow program, with the
// digest recomputed over everything.
func BenchmarkPatch10kFlows(b *testing.B) {
	from, to := bigProgram(10000)
	d := Diff(from, to)
	for b.Loop() {
		if _, err := Patch(from, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrackedPatch10kFlows: the same through Tracked, whose digest
// follows the delta: "first" is the first patch of a whole program (its
// flows checked for order), "next" a patch of a patched program (the
// agent's steady state: the check skipped).
func BenchmarkTrackedPatch10kFlows(b *testing.B) {
	from, to := bigProgram(10000)
	d := Diff(from, to)
	first := Track(from)
	next, err := first.Patch(Diff(from, from))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tr   *Tracked
	}{{"first", first}, {"next", next}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.tr.Patch(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPatchDNS10k: one DNS record added to a program with 10,000 (a
// host whose networks have 10,000 names; every container create is such a
// change on every host of its network). "merge" is patchByKey (every key
// computed to check the order, then the binary search: a program's first
// patch), "sorted" the binary search alone for a program known sorted (a
// tracked one, an agent's: no key computed but the delta's and O(log n)
// more), and
// "map-and-sort" the map-and-sort path it had before (patchByKeyUnsorted,
// now only for unsorted lists).
func BenchmarkPatchDNS10k(b *testing.B) {
	var from []openapi.DNSRecord
	for i := range 10000 {
		from = append(from, openapi.DNSRecord{Network: fmt.Sprintf("net%d", i%10), VNI: int64(i % 10), Kind: openapi.DNSContainer,
			Name: fmt.Sprintf("c%05d", i), IP: fmt.Sprintf("10.%d.%d.%d", i%10, i/256%256, i%256)})
	}
	key := func(r *openapi.DNSRecord) string { return r.Key() }
	slicesSortByKey(from, key)
	add := []openapi.DNSRecord{{Network: "net3", VNI: 3, Kind: openapi.DNSContainer, Name: "new", IP: "10.3.9.9"}}
	b.Run("merge", func(b *testing.B) {
		for b.Loop() {
			if _, err := patchByKey(from, nil, add, key, "DNS record"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sorted", func(b *testing.B) {
		for b.Loop() {
			if _, err := patchSorted(from, nil, add, key, "DNS record"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map-and-sort", func(b *testing.B) {
		for b.Loop() {
			if _, err := patchByKeyUnsorted(from, nil, add, key, "DNS record"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func slicesSortByKey[T any](s []T, key func(*T) string) {
	slices.SortFunc(s, func(a, b T) int { return strings.Compare(key(&a), key(&b)) })
}
