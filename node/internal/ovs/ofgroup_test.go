package ovs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// goldenGroups are the groups of the compiler's golden programs
// (controller/internal/compile/testdata, specs without group_id), plus
// forms the compiler may emit tomorrow (register writes in a bucket, one
// bucket, no selection method, a chained group).
func goldenGroups(t testing.TB) []openapi.Group {
	t.Helper()
	files, err := filepath.Glob("../../../controller/internal/compile/testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("golden files: %v", err)
	}
	head := regexp.MustCompile(`^group_id=\d+,(.*)$`)
	seen := map[string]bool{}
	var out []openapi.Group
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			m := head.FindStringSubmatch(line)
			if m == nil || seen[m[1]] {
				continue
			}
			seen[m[1]] = true // ids repeat across files: numbered anew
			out = append(out, openapi.Group{ID: uint32(100 + len(out)), Spec: m[1]})
		}
	}
	if len(out) == 0 {
		t.Fatal("no golden groups")
	}
	for i, spec := range []string{
		"type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:100,actions=set_field:0xa010002->reg3,load:0x1f90->NXM_NX_REG4[0..15],ct(commit,table=8,zone=NXM_NX_REG0[0..15],nat(dst=10.1.0.2:8080))",
		"type=select,selection_method=dp_hash,bucket=bucket_id:7,weight:1,actions=ct(commit,table=9,zone=NXM_NX_REG0[0..15],nat(dst=10.1.0.9))",
		"type=select,bucket=bucket_id:0,weight:65535,actions=set_field:5->reg2,resubmit(,9),bucket=bucket_id:1,weight:0,actions=output:3",
		"type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:10,actions=group:4001,bucket=bucket_id:1,weight:20,actions=group:4001",
	} {
		out = append(out, openapi.Group{ID: uint32(4001 + i), Spec: spec})
	}
	return out
}

// ofctlSends runs `ovs-ofctl -O OpenFlow15 bundle` on the bundle text
// against a stand-in switch and returns the messages it put in the
// bundle, in order: exactly what ovs-ofctl sends.
func ofctlSends(t *testing.T, text string) bundleMods {
	t.Helper()
	if _, err := exec.LookPath("ovs-ofctl"); err != nil {
		t.Skip("needs ovs-ofctl")
	}
	dir := t.TempDir()
	sock, file := filepath.Join(dir, "sw.sock"), filepath.Join(dir, "bundle.txt")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan bundleMods, 1)
	go func() {
		var mods bundleMods
		defer func() { got <- mods }()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		o := &ofConn{c: c, version: ofVersion15}
		if o.send(ofHello, nil) != nil {
			return
		}
		for {
			typ, xid, body, err := o.recvAny()
			if err != nil {
				return
			}
			switch typ {
			case ofEchoRequest:
				o.reply(ofEchoReply, xid, body)
			case ofBarrierRequest:
				o.reply(ofBarrierReply, xid, nil)
			case ofBundleControl: // open or commit: reply with type+1
				r := append([]byte(nil), body...)
				binary.BigEndian.PutUint16(r[4:], binary.BigEndian.Uint16(r[4:])+1)
				o.reply(ofBundleControl, xid, r)
			case ofBundleAdd:
				inner := body[8:]
				mods = append(mods, ofMod{typ: inner[1], body: inner[ofHeaderLen:]})
			}
		}
	}()
	out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow15", "--no-names", "bundle", "unix:"+sock, file).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl bundle: %v\n%s", err, out)
	}
	ln.Close()
	return <-got
}

// TestEncodeGroupsLikeOVSOFCtl: a delta that adds every golden group,
// flows sending to them, modifies groups and deletes others is encoded
// byte for byte as `ovs-ofctl bundle` sends the same bundle text: the
// group_mods (commands, types, buckets, weights, selection method,
// actions), the flow_mods, and their order.
func TestEncodeGroupsLikeOVSOFCtl(t *testing.T) {
	gs := goldenGroups(t)
	r := resolver{}
	var oldGs, newGs []openapi.Group
	var flows []openapi.Flow
	for i, g := range gs {
		// old: every other group, with another bucket weight; new: all.
		if i%2 == 0 {
			oldGs = append(oldGs, openapi.Group{ID: g.ID, Spec: strings.Replace(g.Spec, "weight:", "weight:9", 1)})
		}
		newGs = append(newGs, g)
		flows = append(flows, openapi.Flow{Table: 5, Priority: 100 + i, Cookie: 0x42, Match: "tcp,reg0=" + fmt.Sprint(i), Actions: fmt.Sprintf("group:%d", g.ID)})
	}
	oldGs = append(oldGs, openapi.Group{ID: 77, Spec: gs[0].Spec}, openapi.Group{ID: 78, Spec: gs[1].Spec})
	oldF, oldG, dropped := resolve(nil, oldGs, r, 3)
	newF, newG, dropped2 := resolve(flows, newGs, r, 3)
	if len(dropped)+len(dropped2) > 0 {
		t.Fatalf("dropped: %v %v", dropped, dropped2)
	}
	d := diff(oldF, newF, oldG, newG)
	if len(d.setIDs) != len(gs) || len(d.modified) != (len(gs)+1)/2 || len(d.delIDs) != 2 {
		t.Fatalf("diff: %d group sets (%d modified), %d deletes", len(d.setIDs), len(d.modified), len(d.delIDs))
	}
	mods, err := encodeDiff(d, newF, newG)
	if err != nil {
		t.Fatalf("the compiler's groups must encode: %v", err)
	}
	want := ofctlSends(t, strings.Join(d.lines, "\n")+"\n")
	if len(mods) != len(want) || len(mods) != len(d.lines) {
		t.Fatalf("%d lines: encoded %d messages, ovs-ofctl sent %d", len(d.lines), len(mods), len(want))
	}
	// Group mods byte for byte; flow_mods as ovs-ofctl decodes them (it
	// writes registers as OF1.5 packet registers, the encoder as NXM
	// registers: the same flow, see TestEncodeLikeOVSOFCtl).
	got, exp := ofpParse(t, mods), ofpParse(t, want)
	for i := range mods {
		if mods[i].typ != want[i].typ || got[i] != exp[i] ||
			mods[i].typ == ofGroupMod && !bytes.Equal(mods[i].body, want[i].body) {
			t.Errorf("%s\nencoded:   type %d %x\n  %s\novs-ofctl: type %d %x\n  %s", d.lines[i], mods[i].typ, mods[i].body, got[i], want[i].typ, want[i].body, exp[i])
		}
	}
	t.Logf("%d group_mods (%d golden specs) byte for byte and %d flow_mods as ovs-ofctl sends them", len(d.setIDs)+len(d.delIDs), len(gs)-4, len(d.addKeys))
}

// TestEncodeGroupsRefusesUnknown: group forms the encoder does not know
// are declined (the change goes through ovs-ofctl), never approximated.
func TestEncodeGroupsRefusesUnknown(t *testing.T) {
	ok := "bucket=bucket_id:0,weight:1,actions=output:1"
	for _, spec := range []string{
		"type=all," + ok,
		"type=select,selection_method=hash," + ok,
		"type=select,selection_method=dp_hash,selection_method_param=1," + ok,
		"type=select,fields=ip_src," + ok,
		"type=select,bucket=weight:1,actions=output:1",
		"type=select,bucket=bucket_id:0,actions=output:1",
		"type=select,bucket=bucket_id:0,weight:1,watch_port=1,actions=output:1",
		"type=select,bucket=bucket_id:0,weight:0x1,actions=output:1",
		"type=select,bucket=bucket_id:0,weight:65536,actions=output:1",
		"type=select,bucket=bucket_id:4294967041,weight:1,actions=output:1",
		"type=select,bucket=bucket_id:first,weight:1,actions=output:1",
		"type=select," + ok + "," + ok, // repeated bucket id
		"type=select,bucket=bucket_id:0,weight:1,actions=",
		"type=select,bucket=bucket_id:0,weight:1,actions=goto_table:3",
		"type=select,bucket=bucket_id:0,weight:1,actions=drop",
		"type=select,bucket=bucket_id:0,weight:1,actions=learn(table=1)",
		"type=select,bucket=bucket_id:0,weight:1,actions=group:0x5",
		"type=select",
		"type=select,",
	} {
		_, gt, dropped := resolve(nil, []openapi.Group{{ID: 5, Spec: spec}}, resolver{}, 0)
		if len(dropped) > 0 {
			t.Fatal(dropped)
		}
		for _, modify := range []bool{false, true} {
			if _, err := encodeGroupSet(modify, gt[5]); !isUnsupported(err) {
				t.Errorf("%s: want unsupported, got %v", spec, err)
			}
		}
	}
	if _, err := encodeGroupDelete(0xffffff01); !isUnsupported(err) {
		t.Errorf("reserved group id: want unsupported, got %v", err)
	}
}

// ofpParse has ovs-ofctl decode mods (ofp-parse) and returns one line per
// message, without its xid.
func ofpParse(t *testing.T, mods bundleMods) []string {
	t.Helper()
	var bin []byte
	for i, m := range mods {
		bin = append(bin, ofMessage(ofVersion15, m.typ, uint32(i+1), m.body)...)
	}
	file := filepath.Join(t.TempDir(), "mods.bin")
	if err := os.WriteFile(file, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ovs-ofctl", "ofp-parse", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl ofp-parse: %v\n%s", err, out)
	}
	xid := regexp.MustCompile(`\(xid=0x[0-9a-f]+\):`)
	var ls []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "OFPT_") || len(ls) == 0 {
			ls = append(ls, xid.ReplaceAllString(l, ""))
		} else {
			ls[len(ls)-1] += " " + strings.TrimSpace(l)
		}
	}
	if len(ls) != len(mods) {
		t.Fatalf("ofp-parse printed %d messages for %d:\n%s", len(ls), len(mods), out)
	}
	return ls
}
