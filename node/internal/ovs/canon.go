package ovs

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// Flows compare in OVS's canonical spelling: the compiler may write
// `load:0x0a3c0001->NXM_OF_ARP_SPA[]` where the switch prints
// `set_field:10.60.0.1->arp_spa`. The expected side is canonicalized by
// `ovs-ofctl parse-flows` (which encodes each flow as an OF1.5 flow_mod and
// prints it back), the switch side is `ovs-ofctl dump-flows`; both print
// matches and actions with the same OVS formatters.

// canonFlows maps "table|cookie|match" to the actions of each flow.
type canonFlows map[string]string

func canonKey(table int, cookie uint64, match string) string {
	return fmt.Sprintf("table=%d cookie=%#x %s", table, cookie, match)
}

var (
	// A dump-flows line starts with "key=value, " items (cookie, stats,
	// timeouts) before the match.
	dumpPrefix = regexp.MustCompile(`^(cookie|duration|table|n_packets|n_bytes|n_offload_packets|n_offload_bytes|idle_timeout|hard_timeout|importance|idle_age|hard_age)=([^,\s]*),\s*`)
	// A parse-flows line: "OFPT_FLOW_MOD (OF1.5) (xid=0x1): ADD [table:N ]MATCH [cookie:0x..] actions=A".
	modLine   = regexp.MustCompile(`^OFPT_FLOW_MOD \([^)]*\) \([^)]*\): ADD (?:table:(\d+) )?(.*?)\s*(?:cookie:(0x[0-9a-f]+) )?(?:idle:\d+ )?(?:hard:\d+ )?(?:importance:\d+ )?actions=(.*)$`)
	actionsAt = regexp.MustCompile(`(^|\s)actions=`)
)

// parseDump parses `ovs-ofctl dump-flows` output (with statistics, so that
// cookie and table are always printed). Flows OVS learned (cookie exactly
// openapi.LearnedCookie) are left out: they are in no program, and the
// drift check must neither count nor remove them.
func parseDump(out string) (canonFlows, error) {
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
		match := strings.TrimSpace(line[:loc[0]])
		c[canonKey(table, cookie, match)] = line[loc[1]:]
	}
	return c, nil
}

// parseMods parses `ovs-ofctl parse-flows` output.
func parseMods(out string) (canonFlows, error) {
	c := canonFlows{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "OFPT_FLOW_MOD") {
			continue
		}
		m := modLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("unparsable flow_mod %q", line)
		}
		table, _ := strconv.Atoi(m[1])
		cookie, _ := strconv.ParseUint(strings.TrimPrefix(m[3], "0x"), 16, 64)
		c[canonKey(table, cookie, m[2])] = m[4]
	}
	return c, nil
}

// canonical returns the canonical form of the installed flows, computing it
// once per installed table.
func (a *Applier) canonical(ctx context.Context) (canonFlows, error) {
	if a.installed.canon != nil {
		return a.installed.canon, nil
	}
	out, err := a.of.run(ctx, "", []byte(a.installed.flows.file(a.installed.flows.orderedKeys())), "parse-flows")
	if err != nil {
		return nil, err
	}
	c, err := parseMods(out)
	if err != nil {
		return nil, err
	}
	if len(c) != len(a.installed.flows.lines) {
		return nil, fmt.Errorf("parse-flows returned %d flows for %d installed", len(c), len(a.installed.flows.lines))
	}
	a.installed.canon = c
	return c, nil
}

// compareFlows lists how the switch's flows differ from the expected ones.
func compareFlows(want, have canonFlows) []string {
	var diffs []string
	for k, acts := range want {
		switch got, ok := have[k]; {
		case !ok:
			diffs = append(diffs, "missing: "+k+" actions="+acts)
		case got != acts:
			diffs = append(diffs, "changed: "+k+" actions="+got+", want actions="+acts)
		}
	}
	for k, acts := range have {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected: "+k+" actions="+acts)
		}
	}
	slices.Sort(diffs)
	return diffs
}
