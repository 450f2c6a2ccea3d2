package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// The OpenFlow step of an apply in O(change). When the agent hands over the
// delta that leads from the program last applied to the new one, and the
// switch is known to hold exactly the last program's tables, only the
// delta's flows are rendered, checked against what is installed, and sent
// in one bundle; the installed tables are then patched in place. Anything
// unusual (a flow or group that does not render, a duplicate, a port whose
// ofport moved, a group removed while a flow still uses it, a degraded
// last apply) makes the apply fall back to the full resolve and diff,
// which handles it and reports it. Groups the delta adds, changes or
// removes go in the same bundle as its flows (groups first, group
// deletions last).

// flowIndex is what the delta path needs to know of the installed flows
// beyond their lines: how many flows name each port (a port may go only
// when none does) and each group (likewise), and how many carry each
// cookie (the drift check).
type flowIndex struct {
	refs    map[string]int
	grefs   map[uint32]int
	cookies map[uint64]int
}

// index returns the index of the installed flows, building it on first use
// after a full sync (one pass over the table).
func (in *switchTables) index() *flowIndex {
	if in.idx != nil {
		return in.idx
	}
	x := &flowIndex{refs: map[string]int{}, grefs: map[uint32]int{}, cookies: map[uint64]int{}}
	for _, f := range in.flows.src {
		x.count(f, in.gen, 1)
	}
	in.idx = x
	return x
}

// count adds n times f to the index.
func (x *flowIndex) count(f *openapi.Flow, gen uint16, n int) {
	x.cookies[Cookie(f.Cookie, gen)] += n
	if strings.Contains(f.Actions, "group:") {
		for _, m := range groupRef.FindAllStringSubmatch(f.Actions, -1) {
			if id, err := strconv.ParseUint(m[1], 10, 32); err == nil {
				x.grefs[uint32(id)] += n
			}
		}
	}
	for _, s := range [2]string{f.Match, f.Actions} {
		for {
			i := strings.Index(s, portRefOpen)
			if i < 0 {
				break
			}
			s = s[i+len(portRefOpen):]
			end := strings.IndexByte(s, '}')
			if end < 0 {
				break
			}
			x.refs[s[:end]] += n
			s = s[end+1:]
		}
	}
}

// flowChange is the OpenFlow side of one program delta.
type flowChange struct {
	dels []string // keys to delete
	adds []string // keys to add or modify
	line map[string]string
	src  map[string]*openapi.Flow
	// gone are the delta's flows leaving the table, came those entering
	// it (for the index).
	gone, came []*openapi.Flow
	// groups are the delta's group changes; after is the group table
	// once they are made (nil: no group changes).
	groups groupOps
	after  groupTable
}

// deltaUsable reports whether prog can be applied from d on the delta path:
// d leads from the program last applied, which the switch holds exactly.
func (a *Switch) deltaUsable(prog *openapi.Program, d *openapi.ProgramDelta) bool {
	l := a.applied
	return d != nil && l != nil && l.exact && prog.Digest != "" &&
		d.FromDigest == l.prog.Digest && d.Digest == prog.Digest &&
		a.installed.valid && a.installed.gen == a.gen
}

// planGroups works out d's group changes against the installed groups:
// ok is false when the delta path cannot take them (a group that does not
// render, or removes what is not installed).
func (a *Switch) planGroups(d *openapi.ProgramDelta, r resolver) (groupOps, groupTable, bool) {
	var g groupOps
	if len(d.AddGroups)+len(d.RemoveGroups) == 0 {
		return g, nil, true
	}
	inst := a.installed.groups
	after := maps.Clone(inst)
	if after == nil {
		after = groupTable{}
	}
	for _, id := range d.RemoveGroups {
		if _, ok := after[id]; !ok {
			return g, nil, false
		}
		delete(after, id)
	}
	g.specs = groupTable{}
	for i := range d.AddGroups {
		ng := &d.AddGroups[i]
		spec, err := r.substitute(ng.Spec)
		if err != nil || strings.Contains(spec, "group_id=") {
			return g, nil, false
		}
		if _, dup := after[ng.ID]; dup {
			return g, nil, false
		}
		full := fmt.Sprintf("group_id=%d,%s", ng.ID, spec)
		after[ng.ID] = full
		switch old, had := inst[ng.ID]; {
		case !had:
			g.sets = append(g.sets, ng.ID)
		case old != full:
			g.sets = append(g.sets, ng.ID)
			if g.modified == nil {
				g.modified = map[uint32]bool{}
			}
			g.modified[ng.ID] = true
		}
		g.specs[ng.ID] = full
	}
	for _, id := range d.RemoveGroups {
		if _, back := after[id]; !back {
			g.dels = append(g.dels, id)
		}
	}
	slices.Sort(g.sets)
	slices.Sort(g.dels)
	return g, after, true
}

// planChange renders d's flows and checks them against the installed table.
// ok is false when the delta path cannot be taken (see above); the ports
// are those of the new program (ofports, failed).
func (a *Switch) planChange(d *openapi.ProgramDelta, ofports map[string]int, failed map[string]string) (flowChange, bool) {
	l := a.applied
	if len(failed) > 0 {
		return flowChange{}, false
	}
	for n, p := range l.ofports {
		if q, ok := ofports[n]; ok && q != p {
			return flowChange{}, false // a port moved: its flows change
		}
	}
	inst := a.installed.flows.lines
	oldR := resolver{ofports: l.ofports, failed: l.failed, off: a.portsOff()}
	newR := resolver{ofports: ofports, failed: failed, off: a.portsOff()}
	c := flowChange{line: map[string]string{}, src: map[string]*openapi.Flow{}}
	var ok bool
	if c.groups, c.after, ok = a.planGroups(d, newR); !ok {
		return flowChange{}, false
	}
	newG := a.installed.groups
	if c.after != nil {
		newG = c.after
	}
	removed := map[string]bool{}
	for i := range d.RemoveFlows {
		f := &d.RemoveFlows[i]
		line, key, err := renderFlow(f, oldR, a.gen, a.installed.groups)
		if errors.Is(err, errPortOff) {
			continue // never installed
		}
		if err != nil || removed[key] || inst[key] != line {
			return flowChange{}, false
		}
		removed[key] = true
		c.gone = append(c.gone, f)
	}
	for i := range d.AddFlows {
		f := &d.AddFlows[i]
		line, key, err := renderFlow(f, newR, a.gen, newG)
		if errors.Is(err, errPortOff) {
			continue // left out, as in a full apply
		}
		if err != nil {
			return flowChange{}, false
		}
		if _, dup := c.line[key]; dup {
			return flowChange{}, false
		}
		if _, there := inst[key]; there && !removed[key] {
			return flowChange{}, false
		}
		c.line[key], c.src[key] = line, f
		c.came = append(c.came, f)
		if inst[key] != line {
			c.adds = append(c.adds, key)
		}
	}
	for k := range removed {
		if _, back := c.line[k]; !back {
			c.dels = append(c.dels, k)
		}
	}
	// A group leaving must leave no flow using it behind.
	x := a.installed.index()
	for _, id := range c.groups.dels {
		left := x.grefs[id]
		for _, f := range c.gone {
			left -= refsToGroup(f, id)
		}
		if left > 0 {
			return flowChange{}, false
		}
	}
	// A port leaving the program must leave no flow naming it behind, nor
	// a group (their specs are not indexed: any group naming a port then
	// takes the full path).
	for n := range l.ofports {
		if _, kept := ofports[n]; kept {
			continue
		}
		if groupsNamePorts(l.prog) {
			return flowChange{}, false
		}
		left := x.refs[n]
		for _, f := range c.gone {
			left -= refsTo(f, n)
		}
		if left > 0 {
			return flowChange{}, false
		}
	}
	slices.Sort(c.dels)
	slices.Sort(c.adds)
	return c, true
}

// portsKept reports whether d leaves the program's ports as they are.
func portsKept(d *openapi.ProgramDelta) bool {
	return len(d.AddTunnels)+len(d.RemoveTunnels)+len(d.AddContainers)+len(d.RemoveContainers) == 0
}

// refsTo counts the ${port:name} references in f.
func refsTo(f *openapi.Flow, name string) int {
	ref := portRefOpen + name + "}"
	return strings.Count(f.Match, ref) + strings.Count(f.Actions, ref)
}

// refsToGroup counts f's group:id actions.
func refsToGroup(f *openapi.Flow, id uint32) int {
	n := 0
	if strings.Contains(f.Actions, "group:") {
		for _, m := range groupRef.FindAllStringSubmatch(f.Actions, -1) {
			if m[1] == strconv.FormatUint(uint64(id), 10) {
				n++
			}
		}
	}
	return n
}

// groupsNamePorts reports whether a group of p names a port.
func groupsNamePorts(p *openapi.Program) bool {
	for i := range p.Groups {
		if strings.Contains(p.Groups[i].Spec, portRefOpen) {
			return true
		}
	}
	return false
}

// bundle is the ovs-ofctl bundle file of the change: groups added or
// modified, flows deleted, flows added, groups deleted.
func (c flowChange) bundle() []byte {
	var b strings.Builder
	for _, id := range c.groups.sets {
		if c.groups.modified[id] {
			b.WriteString("group modify ")
		} else {
			b.WriteString("group add ")
		}
		b.WriteString(c.groups.specs[id])
		b.WriteByte('\n')
	}
	for _, k := range c.dels {
		b.WriteString("flow delete_strict ")
		b.WriteString(k)
		b.WriteByte('\n')
	}
	for _, k := range c.adds {
		b.WriteString("flow add ")
		b.WriteString(c.line[k])
		b.WriteByte('\n')
	}
	for _, id := range c.groups.dels {
		fmt.Fprintf(&b, "group delete group_id=%d\n", id)
	}
	return []byte(b.String())
}

// nativeChange encodes the change's group_mods and flow_mods (ofbundle.go);
// false when there is nothing to send, when the agent sends deltas through
// ovs-ofctl, or when the encoder declines some flow or group.
func (a *Switch) nativeChange(c flowChange) (bundleMods, bool) {
	if a.opts.OFCtlDeltas || !c.sends() {
		return nil, false
	}
	mods, err := encodeBundle(c.groups, c.dels, c.adds, c.line)
	return mods, err == nil
}

// sends reports whether the change has flow_mods or group_mods to send
// (a change may only move flows between cookies' counts).
func (c flowChange) sends() bool { return len(c.adds)+len(c.dels) > 0 || !c.groups.empty() }

// sendChange sends the change's group_mods and flow_mods in one bundle
// through ovs-ofctl (the encoder declined them).
func (a *Switch) sendChange(ctx context.Context, c flowChange) error {
	_, err := a.of.bundle(ctx, a.opts.Bridge, c.bundle())
	return err
}

// cookies are the cookies (with the generation) the change touches.
func (c flowChange) cookies(gen uint16) []uint64 {
	var out []uint64
	for _, fs := range [2][]*openapi.Flow{c.gone, c.came} {
		for _, f := range fs {
			out = append(out, Cookie(f.Cookie, gen))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// installChange checks that the switch still holds, for each cookie the
// change touches, as many flows as installed (a cheap drift check over the
// adapter's OpenFlow connection), sends the change in one bundle and
// patches the installed tables. ok is false when the check found drift or
// the bundle failed, and the caller does a full sync. A change the encoder
// knows goes with its check in one exchange, so on failure it may be in
// (the installed tables are then forgotten, ofchecked.go); one through
// ovs-ofctl goes after the check, and on failure nothing was changed.
func (a *Switch) installChange(ctx context.Context, c flowChange) (syncResult, bool) {
	res := syncResult{mode: "delta", added: len(c.adds), removed: len(c.dels)}
	if len(c.adds)+len(c.dels) == 0 && len(c.gone)+len(c.came) == 0 && c.after == nil {
		return syncResult{mode: "unchanged"}, true
	}
	x := a.installed.index()
	cks := c.cookies(a.gen)
	want := make([]int, len(cks))
	for i, ck := range cks {
		want[i] = x.cookies[ck]
	}
	if mods, ok := a.nativeChange(c); ok {
		// Check and bundle in one exchange (ofchecked.go); on any error
		// the tables are unknown and the full sync puts them right.
		if err := a.mods.checkedBundle(ctx, cks, want, mods); err != nil {
			a.installed.valid = false
			return res, false
		}
	} else {
		ns, err := a.query.flowCounts(ctx, cks)
		if err != nil || !slices.Equal(ns, want) {
			return res, false
		}
		if c.sends() {
			if err := a.sendChange(ctx, c); err != nil {
				return res, false
			}
		}
	}
	t := &a.installed.flows
	for _, k := range c.dels {
		delete(t.lines, k)
		delete(t.src, k)
	}
	for k, line := range c.line {
		t.lines[k], t.src[k] = line, c.src[k]
	}
	for _, f := range c.gone {
		x.count(f, a.gen, -1)
	}
	for _, f := range c.came {
		x.count(f, a.gen, 1)
	}
	t.keys = nil // the order is gone; orderedKeys sorts when asked
	a.installed.canon = nil
	if c.after != nil {
		a.installed.groups = c.after
		if !c.groups.empty() {
			a.installed.groupsUnread = true
		}
	}
	return res, true
}
