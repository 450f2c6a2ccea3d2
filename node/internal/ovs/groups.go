package ovs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"
)

// Group content drift. The reference is the switch's own description of
// each group (its OpenFlow 1.5 group desc entry: type, buckets with their
// ids, weights and actions, selection method), read over the adapter's
// OpenFlow connection after an apply that changed groups, once the change
// is in force (a.installed.groupCanon): one request and its reply, no
// ovs-ofctl process. The drift check reads the entries again and compares them byte
// for byte: the switch encodes the same group the same way, so any change
// made by hand (another bucket, weight, action or method) is drift, and
// the next apply does a full sync, which puts every group back with
// `group add_or_mod`.

const ofpgAll = 0xfffffffc // OFPG_ALL

// groupDescs returns the switch's OF1.5 group desc entry of every group,
// by id. A connection that broke while idle is redialed once.
func (q *modConn) groupDescs(ctx context.Context) (map[uint32][]byte, error) {
	var err error
	for try := 0; try < 2; try++ {
		if q.c == nil {
			if q.c, err = dialOFVersion(ctx, q.socket, ofVersion15); err != nil {
				return nil, err
			}
		}
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) > 5*time.Second {
			deadline = time.Now().Add(5 * time.Second)
		}
		q.c.c.SetDeadline(deadline)
		req := make([]byte, 8) // ofp15_group_desc_request: all groups
		binary.BigEndian.PutUint32(req, ofpgAll)
		var parts [][]byte
		if parts, err = q.c.multipart(ofmpGroupDesc, req); err == nil {
			return splitGroupDescs(parts)
		}
		q.close()
	}
	return nil, err
}

// splitGroupDescs maps each group desc entry of a reply to its group id.
func splitGroupDescs(parts [][]byte) (map[uint32][]byte, error) {
	g := map[uint32][]byte{}
	for _, p := range parts {
		for len(p) > 0 {
			if len(p) < 8 {
				return nil, errors.New("bad group desc reply")
			}
			n := int(binary.BigEndian.Uint16(p[0:]))
			if n < 8 || n > len(p) {
				return nil, errors.New("bad group desc reply")
			}
			g[binary.BigEndian.Uint32(p[4:])] = p[:n:n]
			p = p[n:]
		}
	}
	return g, nil
}

// snapGroups records the switch's description of the groups just
// installed, when the switch holds exactly their ids; otherwise (or when
// there are none) it records nothing and the drift check compares ids
// only.
func (a *Switch) snapGroups(ctx context.Context) {
	a.installed.groupCanon, a.installed.groupsUnread = nil, false
	if len(a.installed.groups) == 0 {
		return
	}
	g, err := a.mods.groupDescs(ctx)
	if err != nil || len(g) != len(a.installed.groups) {
		// Cut short (a resync gave way to an apply): read them next time.
		a.installed.groupsUnread = ctx.Err() != nil
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
func (a *Switch) observeGroups(ctx context.Context, drift func(string, ...any)) (bool, error) {
	if a.installed.groupsUnread && a.installed.valid {
		a.snapGroups(ctx)
	}
	want := a.installed.groupCanon
	if want == nil {
		return true, nil
	}
	have, err := a.mods.groupDescs(ctx)
	if err != nil {
		drift("groups: %v", err)
		return false, nil
	}
	same := true
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if got, ok := have[id]; ok && !bytes.Equal(got, want[id]) {
			drift("group %d changed: its buckets, weights, actions or selection method differ from those installed: %s", id, a.installed.groups[id])
			same = false
		}
	}
	return same, nil
}
