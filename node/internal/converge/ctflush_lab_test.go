package converge

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	progpkg "github.com/switchyard/switchyard/openapi/program"
)

// TestUDPConntrackFlush: on a real switch, a UDP service's conntrack entry
// (a client DNATed to backend c1) goes when c1 leaves the service's group,
// one to c2 stays; when the whole group goes, every entry of its VIP and
// port goes; a TCP entry is never touched.
func TestUDPConntrackFlush(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h)
	c1, c2 := ctr{N: 1, Host: h.Name}, ctr{N: 2, Host: h.Name}
	const vni, vip = 101, "10.96.0.9"
	bucket := func(id int, ip string) string {
		return fmt.Sprintf(",bucket=bucket_id:%d,weight:10,actions=ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst=%s:53))", id, ip)
	}
	prog := func(rev int64, backends ...string) *openapi.Program {
		p := program(h.Name, rev, []ctr{c1, c2}, nil, "geneve")
		if len(backends) > 0 {
			spec := "type=select,selection_method=dp_hash"
			for i, b := range backends {
				spec += bucket(i, b)
			}
			p.Groups = []openapi.Group{{ID: 64, Spec: spec}}
			p.Flows = append(p.Flows, openapi.Flow{Table: 5, Priority: 100, Cookie: 0xf064,
				Match: fmt.Sprintf("ct_state=+new+trk,udp,reg1=0x1/0x1,reg0=%d,nw_dst=%s,tp_dst=5300", vni, vip), Actions: "group:64"})
		}
		return seal(p)
	}
	prev := prog(1, c1.IP(), c2.IP())
	apply(t, a, prev)
	// Three connections in the network's zone, as the pipeline would
	// commit them: two UDP ones through the VIP (to c1 and to c2) and a
	// TCP one to c1, from a test bridge of the same switch.
	h.VSCtl(t, "add-br", "br-ct", "--", "set", "bridge", "br-ct", "datapath_type=netdev", "protocols=OpenFlow15")
	for i, c := range []struct {
		proto   byte
		sport   uint16
		backend string
		dport   uint16
	}{{17, 1001, c1.IP(), 5300}, {17, 1002, c2.IP(), 5300}, {6, 1003, c1.IP(), 5300}} {
		h.OFCtl(t, "add-flow", "br-ct", fmt.Sprintf("priority=%d,ip,nw_proto=%d,tp_src=%d,actions=ct(commit,zone=%d,nat(dst=%s:53))", 10+i, c.proto, c.sport, vni, c.backend))
		h.OFCtl(t, "packet-out", "br-ct", "in_port=LOCAL packet="+ctFrame(c.proto, "10.1.0.77", vip, c.sport, c.dport)+" actions=table")
	}
	entries := func() string {
		return h.MustRun(t, "ovs-appctl", "-t", h.CtlSocket(), "dpctl/dump-conntrack", fmt.Sprintf("zone=%d", vni))
	}
	want := func(stage string, c1UDP, c2UDP bool) {
		t.Helper()
		e := entries()
		if got := strings.Contains(e, "udp,orig=(src=10.1.0.77,dst="+vip+",sport=1001"); got != c1UDP {
			t.Fatalf("%s: UDP entry to c1 there: %v, want %v\n%s", stage, got, c1UDP, e)
		}
		if got := strings.Contains(e, "udp,orig=(src=10.1.0.77,dst="+vip+",sport=1002"); got != c2UDP {
			t.Fatalf("%s: UDP entry to c2 there: %v, want %v\n%s", stage, got, c2UDP, e)
		}
		if !strings.Contains(e, "tcp,orig=(src=10.1.0.77,dst="+vip+",sport=1003") {
			t.Fatalf("%s: the TCP entry is gone\n%s", stage, e)
		}
	}
	want("before", true, true)
	step := func(p *openapi.Program) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r, err := a.ApplyDelta(ctx, p, progpkg.Diff(prev, p))
		if err != nil || r.Degraded() || len(r.Warnings) > 0 {
			t.Fatalf("apply: %v, dropped %v, warnings %v", err, r.Dropped, r.Warnings)
		}
		prev = p
	}
	step(prog(2, c2.IP())) // c1 leaves the group
	want("c1 left", false, true)
	step(prog(3)) // the service goes
	want("group gone", false, false)
}

// ctFrame is an Ethernet/IPv4 packet of protocol proto (UDP or TCP SYN) in
// ovs-ofctl packet-out hex.
func ctFrame(proto byte, src, dst string, sport, dport uint16) string {
	var l4 []byte
	if proto == 17 {
		l4 = binary.BigEndian.AppendUint16(nil, sport)
		l4 = binary.BigEndian.AppendUint16(l4, dport)
		l4 = append(l4, 0, 10, 0, 0, 'h', 'i')
	} else {
		l4 = binary.BigEndian.AppendUint16(nil, sport)
		l4 = binary.BigEndian.AppendUint16(l4, dport)
		l4 = append(l4, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0) // SYN
	}
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	ip := []byte{0x45, 0, 0, byte(20 + len(l4)), 0, 1, 0, 0, 64, proto, 0, 0}
	ip = append(append(ip, s[:]...), d[:]...)
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	if proto == 6 { // conntrack checks it
		pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, proto, 0, byte(len(l4)))
		binary.BigEndian.PutUint16(l4[16:], csum(append(pseudo, l4...)))
	}
	e, _ := hex.DecodeString("0a58000000020a58000000010800")
	return hex.EncodeToString(append(append(e, ip...), l4...))
}

func csum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
