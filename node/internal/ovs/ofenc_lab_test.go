package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// addTestBridge adds an empty bridge (userspace, fail_mode secure) to h.
func addTestBridge(t *testing.T, h *lab.Host, name string) {
	t.Helper()
	h.VSCtl(t, "add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev", "fail_mode=secure")
}

// ofctlBundle sends lines ("flow add ...", "flow delete_strict ...") with
// `ovs-ofctl bundle` to bridge.
func ofctlBundle(t *testing.T, h *lab.Host, bridge string, lines []string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "bundle.txt")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.OFCtl(t, "--no-names", "bundle", bridge, f)
}

func nativeBundle(t *testing.T, q *modConn, mods bundleMods) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return q.bundle(ctx, mods)
}

// TestNativeFlowModsLikeOFCtl installs every golden flow (the compiler's
// programs, ports resolved to numbers) natively on one bridge and through
// `ovs-ofctl bundle` on another: the switch must hold the same flows. Then
// it deletes every other flow both ways (delete_strict by table, priority
// and match, as the delta path does): the same again. A bundle with a flow
// the switch refuses changes nothing and fails with the switch's error,
// and the connection serves the next bundle.
func TestNativeFlowModsLikeOFCtl(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	addTestBridge(t, h, "br-nat")
	addTestBridge(t, h, "br-ctl")
	q := &modConn{socket: h.Path("br-nat.mgmt")}
	defer q.close()

	fs, ports := goldenFlows(t)
	keys, lines := renderAll(t, fs, ports)
	// The services' flows send to groups: stand-ins on both bridges.
	ids := groupTable{}
	for _, f := range fs {
		maps.Copy(ids, groupsNamed(f.Actions))
	}
	for _, id := range sortedIDs(ids) {
		for _, br := range []string{"br-nat", "br-ctl"} {
			h.OFCtl(t, "add-group", br, fmt.Sprintf("group_id=%d,type=select,bucket=bucket_id:0,weight:1,actions=output:1", id))
		}
	}
	mods, err := encodeChange(nil, keys, lines)
	if err != nil {
		t.Fatal(err)
	}
	if err := nativeBundle(t, q, mods); err != nil {
		t.Fatalf("native bundle of %d flows: %v", len(mods), err)
	}
	var text []string
	for _, k := range keys {
		text = append(text, "flow add "+lines[k])
	}
	ofctlBundle(t, h, "br-ctl", text)
	same := func(stage string, want int) {
		t.Helper()
		nat, ctl := flowsOn(t, h, "br-nat"), flowsOn(t, h, "br-ctl")
		if !slices.Equal(nat, ctl) {
			t.Fatalf("%s: native\n%s\novs-ofctl\n%s", stage, lines2(nat), lines2(ctl))
		}
		if len(nat) != want {
			t.Fatalf("%s: %d flows, want %d", stage, len(nat), want)
		}
	}
	same("add", len(keys))

	var dels []string
	text = nil
	for i, k := range keys {
		if i%2 == 0 {
			dels = append(dels, k)
			text = append(text, "flow delete_strict "+k)
		}
	}
	if mods, err = encodeChange(dels, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := nativeBundle(t, q, mods); err != nil {
		t.Fatalf("native deletes: %v", err)
	}
	ofctlBundle(t, h, "br-ctl", text)
	left := len(keys) - len(dels)
	same("delete_strict", left)

	// Atomic: a good flow and one the switch refuses (goto_table back).
	good := openapi.Flow{Table: 9, Priority: 7, Cookie: 0x99, Match: "reg5=1", Actions: "drop"}
	bad := openapi.Flow{Table: 9, Priority: 8, Cookie: 0x99, Match: "reg5=2", Actions: "goto_table:3"}
	keys, lines = renderAll(t, []openapi.Flow{good, bad}, nil)
	if mods, err = encodeChange(nil, keys, lines); err != nil {
		t.Fatal(err)
	}
	var se *ofSwitchError
	if err := nativeBundle(t, q, mods); !errors.As(err, &se) {
		t.Fatalf("a flow the switch refuses: got %v, want the switch's error", err)
	}
	same("refused bundle", left)
	if err := nativeBundle(t, q, mods[:1]); err != nil {
		t.Fatalf("after a refused bundle: %v", err)
	}
	ofctlBundle(t, h, "br-ctl", []string{"flow add " + lines[keys[0]]})
	same("after a refused bundle", left+1)

	// Thousands of refused flows: the switch's errors are read while the
	// bundle is still being written (OVS stops reading a connection whose
	// replies pile up), so the refusal comes back, not a timeout.
	var many []openapi.Flow
	for i := 0; i < 5000; i++ {
		many = append(many, openapi.Flow{Table: 9, Priority: 100 + i, Cookie: 0x98, Match: "reg5=3", Actions: "goto_table:3"})
	}
	keys, lines = renderAll(t, many, nil)
	if mods, err = encodeChange(nil, keys, lines); err != nil {
		t.Fatal(err)
	}
	if err := nativeBundle(t, q, mods); !errors.As(err, &se) {
		t.Fatalf("5,000 refused flows: got %v, want the switch's error", err)
	}
	same("5,000 refused flows", left+1)
}
