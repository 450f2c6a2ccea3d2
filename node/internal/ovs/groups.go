package ovs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Group content drift. Groups compare in OVS's own spelling too, but
// ovs-ofctl has no batch parser for groups (parse-group takes one per
// process), so the canonical form of the installed groups is read back
// once, with dump-groups, right after a sync that changed them
// (a.installed.groupCanon); the drift check then compares each group's
// dump with it. A group changed by hand (another bucket, weight or action)
// is drift: the next apply does a full sync, which puts every group back
// with `group add_or_mod`.

// parseGroupDump maps group id to its line in `ovs-ofctl dump-groups`
// output ("group_id=N,type=...,bucket=...").
func parseGroupDump(out string) (map[uint32]string, error) {
	g := map[uint32]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "group_id=") {
			continue
		}
		rest := strings.TrimPrefix(line, "group_id=")
		end := strings.IndexByte(rest, ',')
		if end < 0 {
			end = len(rest)
		}
		id, err := strconv.ParseUint(rest[:end], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("unparsable group %q", line)
		}
		g[uint32(id)] = line
	}
	return g, nil
}

// dumpGroups reads the bridge's groups in canonical form.
func (a *Applier) dumpGroups(ctx context.Context) (map[uint32]string, error) {
	out, err := a.of.run(ctx, a.opts.Bridge, nil, "dump-groups")
	if err != nil {
		return nil, err
	}
	return parseGroupDump(out)
}

// snapGroups records the canonical form of the groups just installed, when
// the switch holds exactly their ids; otherwise (or when there are none)
// it records nothing and the drift check compares ids only.
func (a *Applier) snapGroups(ctx context.Context) {
	a.installed.groupCanon = nil
	if len(a.installed.groups) == 0 {
		return
	}
	g, err := a.dumpGroups(ctx)
	if err != nil || len(g) != len(a.installed.groups) {
		return
	}
	for id := range a.installed.groups {
		if _, ok := g[id]; !ok {
			return
		}
	}
	a.installed.groupCanon = g
}

// observeGroups lists the installed groups whose content differs from
// what was installed (ids missing or unexpected are the probe's).
func (a *Applier) observeGroups(ctx context.Context, drift func(string, ...any)) (bool, error) {
	want := a.installed.groupCanon
	if want == nil {
		return true, nil
	}
	have, err := a.dumpGroups(ctx)
	if err != nil {
		drift("groups: %v", err)
		return false, nil
	}
	same := true
	for _, id := range sortedIDs(groupTable(want)) {
		if got, ok := have[id]; ok && got != want[id] {
			drift("group %d changed: %s, want %s", id, got, want[id])
			same = false
		}
	}
	return same, nil
}
