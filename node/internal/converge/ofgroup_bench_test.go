package converge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
	"github.com/switchyard/switchyard/tests/lab"
)

// withService is p plus one service as the compiler places it on a host:
// TCP 80 and UDP 53 on a VIP, each a select group of three backends
// (dp_hash, bucket ids and weights, ct(commit,nat) per bucket) and the
// ServiceLB flow sending new connections to it.
func withService(p *openapi.Program, rev int64) *openapi.Program {
	q := *p
	q.Revision = rev
	q.Flows = slices.Clone(p.Flows)
	q.Groups = slices.Clone(p.Groups)
	for i, port := range []struct{ proto, port, target string }{{"tcp", "80", "8080"}, {"udp", "53", "53"}} {
		id := uint32(96 + i)
		var spec strings.Builder
		spec.WriteString("type=select,selection_method=dp_hash")
		for b, w := range []int{16300, 16300, 16300} {
			fmt.Fprintf(&spec, ",bucket=bucket_id:%d,weight:%d,actions=ct(commit,table=9,zone=NXM_NX_REG0[0..15],nat(dst=10.1.0.%d:%s))", b, w, b+2, port.target)
		}
		q.Groups = append(q.Groups, openapi.Group{ID: id, Spec: spec.String()})
		q.Flows = append(q.Flows, openapi.Flow{Table: 5, Priority: 100, Cookie: 0x1e1d8f6a60d,
			Match:   "ct_state=+new+trk," + port.proto + ",reg1=0x1/0x1,reg0=101,nw_dst=10.96.1.3,tp_dst=" + port.port,
			Actions: fmt.Sprintf("group:%d", id)})
	}
	progpkg.SortFlows(q.Flows)
	q.Digest = progpkg.Digest(&q)
	return &q
}

// BenchmarkApplyServiceChange measures a host's apply of a one-service
// change (its two groups and two ServiceLB flows come or go) with tables
// of 100 and 1,000 containers, as BenchmarkApplyOneChange does for a
// container: native (groups and flows in one native bundle, the groups'
// drift reference read over the same connection) and ovs-ofctl
// (OFCtlDeltas: one `ovs-ofctl bundle`).
func BenchmarkApplyServiceChange(b *testing.B) {
	l := lab.New(b, lab.Options{Hosts: 1})
	h := l.Hosts[0]
	locals := []ctr{{N: 1, Host: "h1"}, {N: 2, Host: "h1"}}
	for _, n := range []int{100, 1000} {
		a := newHost(b, l, h)
		if _, err := a.NewGeneration(context.Background()); err != nil {
			b.Fatal(err)
		}
		base := scaleProgram(1, n-len(locals), locals)
		benchApply(b, a, base)
		for _, way := range []string{"native", "ofctl"} {
			a.sw.Tune(ovs.Tuning{OFCtlDeltas: way == "ofctl"})
			b.Run(fmt.Sprintf("containers=%d/%s", n, way), func(b *testing.B) {
				benchChanges(b, h, a, base, withService(base, 2))
			})
		}
	}
}
