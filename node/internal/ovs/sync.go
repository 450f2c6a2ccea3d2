package ovs

import (
	"context"
	"fmt"
	"maps"
	"strings"
)

type syncResult struct {
	mode           string
	added, removed int
	dropped        []Dropped
}

// syncFlows makes br-int hold exactly ft and gt. When the adapter knows
// what is installed and a cheap probe (flow counts per generation, group
// ids, over one OpenFlow connection) agrees, it sends only the differences
// in one bundle, or nothing at all; otherwise it does a full sync.
func (a *Switch) syncFlows(ctx context.Context, ft flowTable, gt groupTable) (syncResult, error) {
	bridge := a.opts.Bridge
	if a.installed.valid && a.installed.gen == a.gen {
		st, err := probe(ctx, a.of.socket(bridge), a.gen)
		if err == nil && a.matches(st) {
			d := diff(a.installed.flows, ft, a.installed.groups, gt)
			if d.empty() {
				return syncResult{mode: "unchanged"}, nil
			}
			err := a.sendDiff(ctx, d, ft, gt)
			if err == nil {
				in := a.installed
				a.installed = switchTables{valid: true, gen: a.gen, flows: ft, groups: gt, groupCanon: in.groupCanon,
					groupsUnread: in.groupsUnread || d.groupSets+d.gDels > 0}
				return syncResult{mode: "delta", added: d.flowAdds, removed: d.flowDels}, nil
			}
			// The bundle changed nothing; the full sync below reports a bad flow.
		}
	}
	return a.fullSync(ctx, ft, gt)
}

// sendDiff sends d in one bundle: natively when the encoder knows every
// flow and group in it (ofbundle.go, ofgroup.go), else through ovs-ofctl.
func (a *Switch) sendDiff(ctx context.Context, d delta, ft flowTable, gt groupTable) error {
	if !a.opts.OFCtlDeltas {
		if mods, err := encodeDiff(d, ft, gt); err == nil {
			return a.mods.bundle(ctx, mods)
		}
	}
	_, err := a.of.run(ctx, a.opts.Bridge, []byte(strings.Join(d.lines, "\n")+"\n"), "bundle")
	return err
}

// matches reports whether the probed switch agrees with what was installed.
func (a *Switch) matches(st switchState) bool {
	n := len(a.installed.flows.lines)
	if st.flows != n || st.genFlows != n || len(st.groups) != len(a.installed.groups) {
		return false
	}
	for id := range a.installed.groups {
		if !st.groups[id] {
			return false
		}
	}
	return true
}

// maxBadFlows bounds how many unparsable flows a full sync drops (one
// ovs-ofctl retry each) before it gives up.
const maxBadFlows = 5

// fullSync installs groups (add or modify), then replaces the whole flow
// table in one bundle (ovs-ofctl computes the difference; unchanged flows
// are not touched), then deletes stale groups. A flow ovs-ofctl cannot parse
// is dropped and reported, and the sync retried without it.
func (a *Switch) fullSync(ctx context.Context, ft flowTable, gt groupTable) (syncResult, error) {
	bridge := a.opts.Bridge
	res := syncResult{mode: "full"}
	a.installed.valid = false
	st, err := probe(ctx, a.of.socket(bridge), a.gen)
	if err != nil {
		return res, fmt.Errorf("openflow connection to %s: %w", bridge, err)
	}
	// Flows that log go through the log meter: it goes in first. Without
	// it (a datapath without meters) those flows are refused and dropped
	// below, the others go in.
	if err := a.ensureLogMeter(ctx); err != nil {
		a.warn("cannot put the policy log meter on the bridge", "meter", LogMeterID, "err", err)
	}
	if len(gt) > 0 {
		var lines []string
		for _, id := range sortedIDs(gt) {
			lines = append(lines, "group add_or_mod "+gt[id])
		}
		if _, err := a.of.run(ctx, bridge, []byte(strings.Join(lines, "\n")+"\n"), "bundle"); err != nil {
			return res, err
		}
	}
	for bad := 0; ; bad++ {
		keys := ft.orderedKeys()
		_, err = a.of.run(ctx, bridge, []byte(ft.file(keys)), "--bundle", "replace-flows")
		n := badLine(err)
		if err == nil || n < 1 || n > len(keys) || bad == maxBadFlows {
			break
		}
		key := keys[n-1]
		res.dropped = append(res.dropped, Dropped{Flow: ft.src[key], Reason: "rejected by ovs-ofctl: " + err.(*ofctlError).msg})
		ft = without(ft, key)
	}
	if err != nil {
		return res, err
	}
	var stale []string
	for _, id := range sortedIDs(groupTable(idsOnly(st.groups))) {
		if _, ok := gt[id]; !ok {
			stale = append(stale, fmt.Sprintf("group delete group_id=%d", id))
		}
	}
	if len(stale) > 0 {
		if _, err := a.of.run(ctx, bridge, []byte(strings.Join(stale, "\n")+"\n"), "bundle"); err != nil {
			return res, err
		}
	}
	a.installed = switchTables{valid: true, gen: a.gen, flows: ft, groups: gt, groupsUnread: true}
	return res, nil
}

func idsOnly(ids map[uint32]bool) groupTable {
	g := groupTable{}
	for id := range ids {
		g[id] = ""
	}
	return g
}

// without returns ft less one key.
func without(ft flowTable, key string) flowTable {
	out := flowTable{lines: maps.Clone(ft.lines), src: maps.Clone(ft.src)}
	delete(out.lines, key)
	delete(out.src, key)
	for _, k := range ft.orderedKeys() {
		if k != key {
			out.keys = append(out.keys, k)
		}
	}
	return out
}
