package ovs

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

func TestCookie(t *testing.T) {
	if got := Cookie(0xffff_1234_5678_9abc, 7); got != 0x0007_1234_5678_9abc {
		t.Fatalf("Cookie = %#x", got)
	}
}

func TestResolve(t *testing.T) {
	r := resolver{ofports: map[string]int{"a": 3, "t": 7}, failed: map[string]string{"b": "netns gone"}}
	flows := []openapi.Flow{
		{Table: 0, Priority: 10, Cookie: 1, Match: "in_port=${port:a}", Actions: "resubmit(,1)"},
		{Table: 1, Priority: 10, Cookie: 2, Match: "dl_dst=02:00:00:00:00:02", Actions: "output:${port:b}"},
		{Table: 1, Priority: 10, Cookie: 3, Match: "dl_dst=02:00:00:00:00:03", Actions: "output:${port:zz}"},
		{Table: 2, Priority: 5, Cookie: 4, Actions: "group:9"},
		{Table: 2, Priority: 6, Cookie: 5, Actions: "group:8"},
		{Table: 0, Priority: 10, Cookie: 6, Match: "in_port=${port:a}", Actions: "drop"}, // duplicate key
		{Table: 300, Priority: 1, Actions: "drop"},
		{Table: 1, Priority: 1},
	}
	groups := []openapi.Group{
		{ID: 8, Spec: "type=select,bucket=output:${port:t}"},
		{ID: 9, Spec: "type=all,bucket=output:${port:b}"},
	}
	ft, gt, dropped := resolve(flows, groups, r, 2)
	if want := "table=0, priority=10, cookie=0x2000000000001, in_port=3 actions=resubmit(,1)"; ft.lines[ft.keys[0]] != want {
		t.Fatalf("flow 0: %q, want %q", ft.lines[ft.keys[0]], want)
	}
	if want := "table=2, priority=6, cookie=0x2000000000005 actions=group:8"; ft.lines[ft.keys[1]] != want {
		t.Fatalf("flow with empty match: %q", ft.lines[ft.keys[1]])
	}
	if len(ft.keys) != 2 || len(gt) != 1 || gt[8] != "group_id=8,type=select,bucket=output:7" {
		t.Fatalf("resolved %v %v", ft.keys, gt)
	}
	var reasons []string
	for _, d := range dropped {
		reasons = append(reasons, d.String())
	}
	for _, want := range []string{"group 9: port b failed: netns gone", "port b failed", "port zz is not in the program",
		"group 9 is not installed", "duplicate", "table 300", "no actions"} {
		if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("no drop reason %q in %v", want, reasons)
		}
	}
}

func TestDiff(t *testing.T) {
	r := resolver{ofports: map[string]int{"a": 1}}
	oldF, oldG, _ := resolve([]openapi.Flow{
		{Table: 0, Priority: 1, Match: "ip", Actions: "drop"},
		{Table: 0, Priority: 2, Match: "arp", Actions: "drop"},
		{Table: 1, Priority: 2, Actions: "group:1"},
	}, []openapi.Group{{ID: 1, Spec: "type=all,bucket=output:1"}, {ID: 2, Spec: "type=all,bucket=output:2"}}, r, 1)
	newF, newG, _ := resolve([]openapi.Flow{
		{Table: 0, Priority: 1, Match: "ip", Actions: "output:${port:a}"}, // changed
		{Table: 1, Priority: 2, Actions: "group:1"},                       // same
		{Table: 3, Priority: 9, Actions: "group:3"},                       // new
	}, []openapi.Group{{ID: 1, Spec: "type=all,bucket=output:9"}, {ID: 3, Spec: "type=all"}}, r, 1)
	d := diff(oldF, newF, oldG, newG)
	want := []string{
		"group modify group_id=1,type=all,bucket=output:9",
		"group add group_id=3,type=all",
		"flow delete_strict table=0, priority=2, arp",
		"flow add table=0, priority=1, cookie=0x1000000000000, ip actions=output:1",
		"flow add table=3, priority=9, cookie=0x1000000000000 actions=group:3",
		"group delete group_id=2",
	}
	if !slices.Equal(d.lines, want) {
		t.Fatalf("diff:\n%s\nwant:\n%s", strings.Join(d.lines, "\n"), strings.Join(want, "\n"))
	}
	if d.flowAdds != 2 || d.flowDels != 1 {
		t.Fatalf("counts %+v", d)
	}
	if !diff(newF, newF, newG, newG).empty() {
		t.Fatal("diff of equal tables is not empty")
	}
}

func TestCanonicalParsers(t *testing.T) {
	dump := `OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x2000000000001, duration=1.5s, table=0, n_packets=3, n_bytes=294, idle_age=0, priority=200,arp,arp_tpa=10.0.0.1,arp_op=1 actions=set_field:10.0.0.1->arp_spa,IN_PORT
 cookie=0x0, duration=2s, table=4, n_packets=0, n_bytes=0, idle_age=2, actions=drop
 cookie=0x5, duration=2s, table=1, n_packets=0, n_bytes=0, idle_age=2, priority=5 actions=group:3
`
	have, err := parseDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	mods := `usable protocols: OXM,NXM+table_id
chosen protocol: OXM-OpenFlow15
OFPT_FLOW_MOD (OF1.5) (xid=0x1): ADD priority=200,arp,arp_tpa=10.0.0.1,arp_op=1 cookie:0x2000000000001 actions=set_field:10.0.0.1->arp_spa,IN_PORT
OFPT_FLOW_MOD (OF1.5) (xid=0x2): ADD table:4 actions=drop
OFPT_FLOW_MOD (OF1.5) (xid=0x3): ADD table:1 priority=5 cookie:0x5 actions=group:3
`
	want, err := parseMods(mods)
	if err != nil {
		t.Fatal(err)
	}
	if d := compareFlows(want, have); len(d) != 0 || len(want) != 3 {
		t.Fatalf("equal flows compare as %v (%v / %v)", d, want, have)
	}
	have[canonKey(0, 0x2000000000001, "priority=200,arp,arp_tpa=10.0.0.1,arp_op=1")] = "drop"
	delete(have, canonKey(4, 0, ""))
	have[canonKey(9, 1, "priority=1")] = "drop"
	d := compareFlows(want, have)
	if len(d) != 3 || !strings.HasPrefix(d[0], "changed:") || !strings.HasPrefix(d[1], "missing:") || !strings.HasPrefix(d[2], "unexpected:") {
		t.Fatalf("compare: %v", d)
	}
}

func TestBadLine(t *testing.T) {
	err := &ofctlError{msg: "ovs-ofctl: <file>:3: unknown keyword foo"}
	if n := badLine(err); n != 3 {
		t.Fatalf("badLine = %d", n)
	}
	if n := badLine(&ofctlError{msg: "OFPT_ERROR"}); n != 0 {
		t.Fatalf("badLine = %d", n)
	}
}

// parseMods parses `ovs-ofctl parse-flows` output into canonical flows
// (the applier keeps them per flow, parseModList).
func parseMods(out string) (canonFlows, error) {
	mods, err := parseModList(out)
	if err != nil {
		return nil, err
	}
	c := canonFlows{}
	for _, m := range mods {
		c[m.key] = m.actions
	}
	return c, nil
}
