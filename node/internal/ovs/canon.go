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
	// A parse-flows line: "OFPT_FLOW_MOD (OF1.5) (xid=0x1): ADD [table:N ]MATCH [cookie:0x..] actions=A".
	modLine = regexp.MustCompile(`^OFPT_FLOW_MOD \([^)]*\) \([^)]*\): ADD (?:table:(\d+) )?(.*?)\s*(?:cookie:(0x[0-9a-f]+) )?(?:idle:\d+ )?(?:hard:\d+ )?(?:importance:\d+ )?actions=(.*)$`)
	// dumpKeys are the "key=value, " items a dump-flows line starts with
	// (cookie, statistics, timeouts), before the match.
	dumpKeys = map[string]bool{"cookie": true, "duration": true, "table": true, "n_packets": true, "n_bytes": true,
		"n_offload_packets": true, "n_offload_bytes": true, "idle_timeout": true, "hard_timeout": true,
		"importance": true, "idle_age": true, "hard_age": true}
)

// parseDump parses `ovs-ofctl dump-flows` output (with statistics, so that
// cookie and table are always printed). Flows OVS learned (cookie exactly
// openapi.LearnedCookie) are left out: they are in no program, and the
// drift check must neither count nor remove them. It is read by hand, not
// by regular expressions: the resync parses every flow of the host.
func parseDump(out string) (canonFlows, error) {
	c := canonFlows{}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "NXST_FLOW") || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		table, cookie := 0, uint64(0)
		for {
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || !dumpKeys[line[:eq]] {
				break
			}
			rest := line[eq+1:]
			end := strings.IndexAny(rest, ","+space)
			if end < 0 || rest[end] != ',' {
				break
			}
			switch val := rest[:end]; line[:eq] {
			case "cookie":
				cookie, _ = strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64)
			case "table":
				table, _ = strconv.Atoi(val)
			}
			line = strings.TrimLeft(rest[end+1:], space)
		}
		at, after := actionsIndex(line)
		if at < 0 {
			return nil, fmt.Errorf("unparsable flow %q", line)
		}
		if cookie == openapi.LearnedCookie {
			continue
		}
		match := strings.TrimSpace(line[:at])
		c[canonKey(table, cookie, match)] = line[after:]
	}
	return c, nil
}

// space is the white space of ovs-ofctl's output (that of Go's \s).
const space = " \t\n\f\r"

// actionsIndex finds "actions=" at the start of line or after white
// space: where it starts and where the actions begin (-1: not found).
func actionsIndex(line string) (int, int) {
	const a = "actions="
	for from := 0; ; {
		i := strings.Index(line[from:], a)
		if i < 0 {
			return -1, -1
		}
		i += from
		if i == 0 {
			return 0, len(a)
		}
		if strings.IndexByte(space, line[i-1]) >= 0 {
			return i - 1, i + len(a)
		}
		from = i + 1
	}
}

// canonMod is one flow in OVS's canonical spelling: its canonKey and
// actions (and, in Switch.canonOf, the installed line they spell).
type canonMod struct{ key, actions, line string }

// parseModList parses `ovs-ofctl parse-flows` output, one flow_mod per
// flow of its input, in order.
func parseModList(out string) ([]canonMod, error) {
	var mods []canonMod
	for line := range strings.Lines(out) {
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
		mods = append(mods, canonMod{key: canonKey(table, cookie, m[2]), actions: m[4]})
	}
	return mods, nil
}

// canonical returns the canonical form of the installed flows. The
// spelling of a flow depends on its text alone, so a.canonOf keeps it per
// installed flow from one call to the next: only the flows installed (or
// changed) since are sent through `ovs-ofctl parse-flows` (all of them the
// first time).
func (a *Switch) canonical(ctx context.Context) (canonFlows, error) {
	if a.installed.canon != nil {
		return a.installed.canon, nil
	}
	lines := a.installed.flows.lines
	if a.canonOf == nil {
		a.canonOf = map[string]canonMod{}
	}
	for k := range a.canonOf {
		if _, ok := lines[k]; !ok {
			delete(a.canonOf, k)
		}
	}
	var todo []string
	for k, line := range lines {
		if m, ok := a.canonOf[k]; !ok || m.line != line {
			todo = append(todo, k)
		}
	}
	if len(todo) > 0 {
		var in strings.Builder
		for _, k := range todo {
			in.WriteString(lines[k])
			in.WriteByte('\n')
		}
		out, err := a.of.run(ctx, "", []byte(in.String()), "parse-flows")
		if err != nil {
			return nil, err
		}
		mods, err := parseModList(out)
		if err != nil {
			return nil, err
		}
		if len(mods) != len(todo) {
			return nil, fmt.Errorf("parse-flows returned %d flows for %d", len(mods), len(todo))
		}
		for i, k := range todo {
			mods[i].line = lines[k]
			a.canonOf[k] = mods[i]
		}
	}
	c := make(canonFlows, len(lines))
	for k := range lines {
		m := a.canonOf[k]
		c[m.key] = m.actions
	}
	if len(c) != len(lines) {
		return nil, fmt.Errorf("parse-flows gave %d distinct flows for %d installed", len(c), len(lines))
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
