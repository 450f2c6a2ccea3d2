package ovs

import (
	"slices"
	"strconv"
	"testing"
)

// TestStaleUDP: a UDP group that loses a backend flushes that backend's
// entries of its VIP and port; a UDP group that goes flushes the VIP and
// port; TCP groups, unchanged groups and groups that only gain buckets or
// change weights flush nothing.
func TestStaleUDP(t *testing.T) {
	bucket := func(ip string, w int) string {
		return ",bucket=bucket_id:0,weight:" + strconv.Itoa(w) + ",actions=ct(commit,table=9,zone=NXM_NX_REG0[0..15],nat(dst=" + ip + ":53))"
	}
	oldF := flowTable{lines: map[string]string{
		"a": "cookie=0x1,table=5,priority=100,ct_state=+new+trk,udp,reg1=0x1/0x1,reg0=101,nw_dst=10.96.0.2,tp_dst=5300 actions=group:64",
		"b": "cookie=0x1,table=5,priority=100,ct_state=+new+trk,udp,reg1=0x1/0x1,reg0=0x10065,nw_dst=10.96.0.3,tp_dst=53 actions=group:96",
		"c": "cookie=0x1,table=5,priority=100,ct_state=+new+trk,tcp,reg1=0x1/0x1,reg0=101,nw_dst=10.96.0.4,tp_dst=80 actions=group:128",
		"d": "cookie=0x1,table=5,priority=100,ct_state=+new+trk,udp,reg1=0x1/0x1,reg0=101,nw_dst=10.96.0.5,tp_dst=53 actions=group:160",
	}}
	oldG := groupTable{
		64:  "group_id=64,type=select" + bucket("10.1.0.2", 10) + bucket("10.1.0.3", 10),
		96:  "group_id=96,type=select" + bucket("10.1.0.7", 10),
		128: "group_id=128,type=select" + bucket("10.1.0.8", 10),
		160: "group_id=160,type=select" + bucket("10.1.0.9", 10),
	}
	newG := groupTable{
		64:  "group_id=64,type=select" + bucket("10.1.0.3", 10), // 10.1.0.2 left
		160: "group_id=160,type=select" + bucket("10.1.0.9", 20) + bucket("10.1.0.10", 5),
		// 96 (UDP) and 128 (TCP) went
	}
	var got []string
	for _, f := range snapshotLB(oldF, oldG).stale(newG) {
		got = append(got, strconv.Itoa(int(f.zone))+" "+f.orig+" | "+f.reply)
	}
	slices.Sort(got)
	want := []string{
		"101 ct_nw_dst=10.96.0.2,ct_nw_proto=17,ct_tp_dst=5300 | ct_nw_src=10.1.0.2,ct_nw_proto=17,ct_tp_src=53",
		"101 ct_nw_dst=10.96.0.3,ct_nw_proto=17,ct_tp_dst=53 | ",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("flushes\n%v\nwant\n%v", got, want)
	}
	if snapshotLB(oldF, oldG).stale(oldG) != nil {
		t.Fatal("an unchanged table flushes")
	}
}
