package ovs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// TestNativeGroupModsLikeOFCtl: deltas with group adds, modifies and
// deletes and flows sending to the groups, sent as one native bundle
// (encodeDiff) to one bridge and as `ovs-ofctl bundle` of the same
// lines to another, leave both bridges with the same groups and flows:
// every golden group, then half of them modified and others deleted with
// their flows, then none. A bundle the switch refuses (a flow sending to
// a group that does not exist) changes nothing, groups included.
func TestNativeGroupModsLikeOFCtl(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	addTestBridge(t, h, "br-nat")
	addTestBridge(t, h, "br-ctl")
	q := &modConn{socket: h.Path("br-nat.mgmt")}
	defer q.close()

	gs := goldenGroups(t)
	version := func(groups []openapi.Group) (flowTable, groupTable) {
		var fs []openapi.Flow
		for i, g := range groups {
			fs = append(fs, openapi.Flow{Table: 5, Priority: 100 + i, Cookie: 0x42,
				Match: fmt.Sprintf("ct_state=+new+trk,tcp,reg0=%d,nw_dst=10.96.0.1,tp_dst=80", g.ID), Actions: fmt.Sprintf("group:%d", g.ID)})
		}
		ft, gt, dropped := resolve(fs, groups, resolver{}, 3)
		if len(dropped) > 0 {
			t.Fatalf("dropped %v", dropped)
		}
		return ft, gt
	}
	var oldF flowTable
	var oldG groupTable
	step := func(stage string, groups []openapi.Group) {
		t.Helper()
		newF, newG := version(groups)
		d := diff(oldF, newF, oldG, newG)
		mods, err := encodeDiff(d, newF, newG)
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if err := nativeBundle(t, q, mods); err != nil {
			t.Fatalf("%s: native bundle of %d messages: %v", stage, len(mods), err)
		}
		ofctlBundle(t, h, "br-ctl", d.lines)
		natG, ctlG := groupsOn(t, h, "br-nat"), groupsOn(t, h, "br-ctl")
		if !slices.Equal(natG, ctlG) || len(natG) != len(groups) {
			t.Fatalf("%s: groups, native\n%s\novs-ofctl (want %d)\n%s", stage, lines2(natG), len(groups), lines2(ctlG))
		}
		natF, ctlF := flowsOn(t, h, "br-nat"), flowsOn(t, h, "br-ctl")
		if !slices.Equal(natF, ctlF) || len(natF) != len(groups) {
			t.Fatalf("%s: flows, native\n%s\novs-ofctl\n%s", stage, lines2(natF), lines2(ctlF))
		}
		t.Logf("%s: %d group sets (%d modifies), %d group deletes, %d flow adds, %d flow deletes in one bundle",
			stage, len(d.setIDs), len(d.modified), len(d.delIDs), len(d.addKeys), len(d.delKeys))
		oldF, oldG = newF, newG
	}
	step("add", gs)
	var next []openapi.Group
	for i, g := range gs {
		switch i % 3 {
		case 0: // modified: another action in the first bucket
			next = append(next, openapi.Group{ID: g.ID, Spec: strings.Replace(g.Spec, ",actions=", ",actions=set_field:1->reg5,", 1)})
		case 1: // kept
			next = append(next, g)
		} // 2: deleted, with the flow using it
	}
	next = append(next, openapi.Group{ID: 9000, Spec: gs[0].Spec}) // added
	step("modify and delete", next)

	// Refused: a group and a flow sending to a group that is not there.
	_, newG := version(append(slices.Clone(next), openapi.Group{ID: 9001, Spec: gs[1].Spec}))
	bad := openapi.Flow{Table: 5, Priority: 7, Cookie: 0x43, Match: "reg0=7", Actions: "group:9999"}
	line, key, err := renderFlow(&bad, resolver{}, 3, groupTable{9999: "type=select"})
	if err != nil {
		t.Fatal(err)
	}
	newF := flowTable{lines: map[string]string{key: line}, keys: []string{key}}
	for k, v := range oldF.lines {
		newF.lines[k] = v
	}
	newF.keys = append(newF.keys, oldF.orderedKeys()...)
	d := diff(oldF, newF, oldG, newG)
	mods, err := encodeDiff(d, newF, newG)
	if err != nil || len(d.setIDs) != 1 || len(d.addKeys) != 1 {
		t.Fatalf("refused bundle: %v, %d group sets, %d flow adds", err, len(d.setIDs), len(d.addKeys))
	}
	var se *ofSwitchError
	if err := nativeBundle(t, q, mods); !errors.As(err, &se) {
		t.Fatalf("a flow sending to a missing group: got %v, want the switch's error", err)
	}
	if natG, ctlG := groupsOn(t, h, "br-nat"), groupsOn(t, h, "br-ctl"); !slices.Equal(natG, ctlG) {
		t.Fatalf("a refused bundle changed the groups:\n%s\nwant\n%s", lines2(natG), lines2(ctlG))
	}
	if natF, ctlF := flowsOn(t, h, "br-nat"), flowsOn(t, h, "br-ctl"); !slices.Equal(natF, ctlF) {
		t.Fatalf("a refused bundle changed the flows:\n%s\nwant\n%s", lines2(natF), lines2(ctlF))
	}
	step("delete all", nil)
}
