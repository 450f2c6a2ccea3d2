package soak

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// The checker's pure parts, on canned tool output: no lab needed.

func TestExpectedFlows(t *testing.T) {
	p := &openapi.Program{Flows: []openapi.Flow{
		{Table: 0, Priority: 100, Cookie: 0x11, Match: "in_port=${port:sy-a}", Actions: "resubmit(,1)"},
		{Table: 1, Priority: 0, Cookie: 0x12, Actions: "output:${port:gone}"},
	}}
	file, problems := expectedFlows(p, parseOFPorts("\"sy-a\",7\nbr-int,65534\ngone,-1\n"), 3)
	want := "table=0, priority=100, cookie=0x3000000000011, in_port=7 actions=resubmit(,1)\n"
	if file != want {
		t.Errorf("file %q, want %q", file, want)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "port gone has no ofport") {
		t.Errorf("problems %q", problems)
	}
}

func TestGenerationsAndDiffs(t *testing.T) {
	dump := ` cookie=0x3000000000011, duration=1s, table=0, n_packets=0, priority=100,in_port=7 actions=resubmit(,1)
 cookie=0x5e1ea2ed, duration=1s, table=9, priority=1 actions=drop
 cookie=0x4000000000012, duration=1s, table=1, priority=0 actions=drop
 duration=1s, table=2, priority=0 actions=drop`
	g := generationsOf(dump)
	if len(g) != 3 || g[3] != 1 || g[4] != 1 || g[0] != 1 {
		t.Errorf("generations %v", g)
	}
	diff := "-table=9 priority=1 cookie=0x5e1ea2ed actions=drop\n+table=1 priority=0 actions=drop\n-table=200 priority=7 actions=drop\n"
	if d := flowDiffs(diff); len(d) != 2 {
		t.Errorf("diffs %q: the learned flow must be left out, the others kept", d)
	}
	if d := flowDiffs(""); d != nil {
		t.Errorf("no output, diffs %q", d)
	}
}

func TestSetsAndNAT(t *testing.T) {
	got := diffSets("ports", []string{"a", "b"}, []string{"b", "c"})
	if !slices.Equal(got, []string{"ports: extra c (leaked)", "ports: missing a"}) {
		t.Errorf("diffSets %q", got)
	}
	nft := "table ip switchyard {\n chain external {\n  tcp dport 20005 dnat to 10.61.0.2:80\n  udp dport 20005 dnat to 10.61.0.2:80\n  tcp dport 30001 dnat to 10.62.0.9:80\n }\n}"
	if got := natPorts(nft); !slices.Equal(got, []int{20005, 30001}) {
		t.Errorf("natPorts %v", got)
	}
	p := &openapi.Program{Gateway: &openapi.Gateway{NAT: []openapi.NATRule{{Kind: openapi.NATPublish, HostPort: 30001},
		{Kind: openapi.NATEgress}, {Kind: openapi.NATNodePort, HostPort: 20005}}}}
	if got := programNATPorts(p); !slices.Equal(got, []int{20005, 30001}) {
		t.Errorf("programNATPorts %v", got)
	}
}

func TestIPAMProblems(t *testing.T) {
	nets := []openapi.Network{{Name: "red", CIDR: "10.61.0.0/24", Addresses: &openapi.AddressUsage{Used: 3}}}
	cs := []openapi.Container{{Name: "a", Network: "red", IP: "10.61.0.2"}, {Name: "b", Network: "red", IP: "10.61.0.2"},
		{Name: "c", Network: "red", IP: "10.62.0.2"}}
	got := strings.Join(ipamProblems(nets, cs), "\n")
	for _, want := range []string{"b has 10.61.0.2, as a", `c's "10.62.0.2" is not in 10.61.0.0/24`} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in %q", want, got)
		}
	}
	nets[0].Addresses.Used = 4
	if got := ipamProblems(nets, cs[:1]); len(got) != 1 || !strings.Contains(got[0], "counts 4 addresses used for 1 containers") {
		t.Errorf("count: %q", got)
	}
}

func TestCompareEvents(t *testing.T) {
	e := func(r int64, id string) evKey { return evKey{r, "container", "created", id} }
	fresh := []evKey{e(1, "a"), e(2, "b"), e(3, "c")}
	if got := compareEvents(fresh, fresh); got != nil {
		t.Errorf("equal streams: %q", got)
	}
	got := compareEvents([]evKey{e(1, "a"), e(3, "c"), e(3, "c")}, fresh)
	if len(got) != 2 || !strings.Contains(got[0], "gap: r2") || !strings.Contains(got[1], "r3 container.created c received 1 more") {
		t.Errorf("gap and duplicate: %q", got)
	}
}
