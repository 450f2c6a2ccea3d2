package ovs

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// FuzzParseDump: the agent's parsers of ovs-ofctl's output (dump-flows for
// drift checks, parse-flows for the canonical form, the line an error
// names) never panic on any output; and a dump-flows line built from a
// table, cookie, match and actions parses back to exactly that flow
// (learned flows, cookie openapi.LearnedCookie, left out).
func FuzzParseDump(f *testing.F) {
	f.Add(`OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x2000000000001, duration=1.5s, table=0, n_packets=3, n_bytes=294, idle_age=0, priority=200,arp,arp_tpa=10.0.0.1,arp_op=1 actions=set_field:10.0.0.1->arp_spa,IN_PORT
 cookie=0x0, duration=2s, table=4, n_packets=0, n_bytes=0, idle_age=2, actions=drop
`, uint8(3), uint64(0x2000000000001), "priority=200,ip,nw_dst=10.0.0.1", "ct(commit,zone=5,exec(load:0x1->NXM_NX_CT_MARK[])),output:3")
	f.Add(`usable protocols: OXM,NXM+table_id
chosen protocol: OXM-OpenFlow15
OFPT_FLOW_MOD (OF1.5) (xid=0x1): ADD priority=200,arp cookie:0x2000000000001 actions=IN_PORT
OFPT_FLOW_MOD (OF1.5) (xid=0x2): ADD table:4 actions=drop
ovs-ofctl: <file>:3: unknown keyword foo`, uint8(0), uint64(openapi.LearnedCookie), "", "drop")
	f.Add(" cookie=0xzz, table=x, actions=\nactions=actions=", uint8(255), uint64(1<<63), "n_packets=1, priority=1", "learn(table=3,actions=drop)")
	f.Fuzz(func(t *testing.T, out string, table uint8, cookie uint64, match, actions string) {
		got, err := parseDump(out)
		ref, rerr := regexpParseDump(out)
		if (err == nil) != (rerr == nil) || !maps.Equal(got, ref) {
			t.Fatalf("parseDump(%q) = %q, %v; the regular expressions read %q, %v", out, got, err, ref, rerr)
		}
		_, _ = parseMods(out)
		_ = badLine(&ofctlError{msg: out})

		match, actions = strings.TrimSpace(match), strings.TrimSpace(actions)
		if strings.ContainsAny(match+actions, "\n\r") || actionsAt.MatchString(match) || dumpPrefix.MatchString(match) ||
			actions == "" || strings.HasPrefix(match, "actions=") {
			return // not what ovs-ofctl prints
		}
		line := fmt.Sprintf(" cookie=%#x, duration=0.123s, table=%d, n_packets=0, n_bytes=0, idle_age=1, %s actions=%s", cookie, table, match, actions)
		got, err = parseDump("NXST_FLOW reply (xid=0x4):\n" + line + "\n")
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want := canonFlows{canonKey(int(table), cookie, match): actions}
		if cookie == openapi.LearnedCookie {
			want = canonFlows{}
		}
		if len(got) != len(want) || got[canonKey(int(table), cookie, match)] != want[canonKey(int(table), cookie, match)] {
			t.Fatalf("%q parsed as %q, want %q", line, got, want)
		}
	})
}

// The regular expressions parseDump replaced (it reads by hand, for speed):
// the fuzz checks both read every input alike.
var (
	dumpPrefix = regexp.MustCompile(`^(cookie|duration|table|n_packets|n_bytes|n_offload_packets|n_offload_bytes|idle_timeout|hard_timeout|importance|idle_age|hard_age)=([^,\s]*),\s*`)
	actionsAt  = regexp.MustCompile(`(^|\s)actions=`)
)

func regexpParseDump(out string) (canonFlows, error) {
	c := canonFlows{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "NXST_FLOW") || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		table, cookie := 0, uint64(0)
		for {
			m := dumpPrefix.FindStringSubmatch(line)
			if m == nil {
				break
			}
			switch m[1] {
			case "cookie":
				cookie, _ = strconv.ParseUint(strings.TrimPrefix(m[2], "0x"), 16, 64)
			case "table":
				table, _ = strconv.Atoi(m[2])
			}
			line = line[len(m[0]):]
		}
		loc := actionsAt.FindStringIndex(line)
		if loc == nil {
			return nil, fmt.Errorf("unparsable flow %q", line)
		}
		if cookie == openapi.LearnedCookie {
			continue
		}
		c[canonKey(table, cookie, strings.TrimSpace(line[:loc[0]]))] = line[loc[1]:]
	}
	return c, nil
}
