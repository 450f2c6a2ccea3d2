package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The delta path's flow_mods and group_mods, sent natively: the change's
// flows and groups encoded by ofenc.go and ofgroup.go, in one atomic,
// ordered OpenFlow 1.5 bundle over a connection
// the adapter keeps open to br-int (no process per change). The bundle is
// opened and filled, then a barrier, all in one write while the answers
// are read: the switch has checked every message when it answers the
// barrier, and any error (a flow it refuses) discards the bundle (the
// connection is closed, which discards it) and fails the change, as a
// failing ovs-ofctl does. Only then is it committed. That is the full
// sync's delta (sync.go); the delta path sends its change with its drift
// check and the commit in one exchange instead (ofchecked.go). A change
// the encoder declines goes through ovs-ofctl (spare.go).

const (
	ofBundleControl  = 33
	ofBundleAdd      = 34
	bundleOpenReq    = 0
	bundleOpenReply  = 1
	bundleCommitReq  = 4
	bundleCommitRepl = 5
	bundleAtomic     = 1
	bundleOrdered    = 2
	bundleFlags      = bundleAtomic | bundleOrdered // as ovs-ofctl bundle
)

// ofMod is one message of a bundle: a flow_mod or group_mod body (after
// the OpenFlow header).
type ofMod struct {
	typ  uint8 // ofFlowMod or ofGroupMod
	body []byte
}

// bundleMods are a change's messages, in the bundle's order.
type bundleMods []ofMod

// encodeChange encodes a delta path change: deletions of the keys in dels,
// then additions of the flow lines of adds (as flowChange.bundle writes
// them for ovs-ofctl). An error is the encoder declining some flow.
func encodeChange(dels, adds []string, line map[string]string) (bundleMods, error) {
	mods := make(bundleMods, 0, len(dels)+len(adds))
	for _, k := range dels {
		table, prio, match, err := splitKey(k)
		if err != nil {
			return nil, err
		}
		m, err := encodeDeleteStrict(table, prio, match)
		if err != nil {
			return nil, err
		}
		mods = append(mods, ofMod{ofFlowMod, m})
	}
	for _, k := range adds {
		table, prio, match, err := splitKey(k)
		if err != nil {
			return nil, err
		}
		cookie, actions, err := splitLine(k, match, line[k])
		if err != nil {
			return nil, err
		}
		m, err := encodeAdd(table, prio, cookie, match, actions)
		if err != nil {
			return nil, err
		}
		mods = append(mods, ofMod{ofFlowMod, m})
	}
	return mods, nil
}

// encodeDiff encodes a full delta in diff's order (flows.go), the groups'
// specs in gt. An error is the encoder declining some flow or group.
func encodeDiff(d delta, ft flowTable, gt groupTable) (bundleMods, error) {
	return encodeBundle(groupOps{sets: d.setIDs, modified: d.modified, dels: d.delIDs, specs: gt}, d.delKeys, d.addKeys, ft.lines)
}

// groupOps are a change's groups: added or modified (modified says which),
// with their specs, and deleted.
type groupOps struct {
	sets, dels []uint32
	modified   map[uint32]bool
	specs      groupTable
}

func (g groupOps) empty() bool { return len(g.sets)+len(g.dels) == 0 }

// encodeBundle encodes a change in the order that keeps every step valid:
// groups added or modified (so flows can use them), flows deleted, flows
// added, groups deleted (deleting a group deletes the flows that use it).
func encodeBundle(g groupOps, dels, adds []string, line map[string]string) (bundleMods, error) {
	flows, err := encodeChange(dels, adds, line)
	if err != nil || g.empty() {
		return flows, err
	}
	mods := make(bundleMods, 0, len(g.sets)+len(flows)+len(g.dels))
	for _, id := range g.sets {
		b, err := encodeGroupSet(g.modified[id], g.specs[id])
		if err != nil {
			return nil, err
		}
		mods = append(mods, ofMod{ofGroupMod, b})
	}
	mods = append(mods, flows...)
	for _, id := range g.dels {
		b, err := encodeGroupDelete(id)
		if err != nil {
			return nil, err
		}
		mods = append(mods, ofMod{ofGroupMod, b})
	}
	return mods, nil
}

// splitKey parses a flow key "table=T, priority=P[, MATCH]" (renderFlow).
func splitKey(k string) (table, prio int, match string, err error) {
	rest, ok := strings.CutPrefix(k, "table=")
	t, rest, ok2 := strings.Cut(rest, ", priority=")
	p, match, _ := strings.Cut(rest, ", ")
	table, err1 := strconv.Atoi(t)
	prio, err2 := strconv.Atoi(p)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return 0, 0, "", unsupported("flow key %q", k)
	}
	return table, prio, match, nil
}

// splitLine parses the cookie and actions of a flow line
// "table=T, priority=P, cookie=C[, MATCH] actions=A" (renderFlow).
func splitLine(key, match, line string) (uint64, string, error) {
	head := key[:len(key)-len(match)]
	head = strings.TrimSuffix(head, ", ")
	rest, ok := strings.CutPrefix(line, head+", cookie=")
	c, rest, ok2 := strings.Cut(rest, " ")
	if match != "" {
		c = strings.TrimSuffix(c, ",")
		rest, ok = strings.CutPrefix(rest, match+" ")
	}
	actions, ok3 := strings.CutPrefix(rest, "actions=")
	cookie, err := parseUint(c)
	if !ok || !ok2 || !ok3 || err != nil {
		return 0, "", unsupported("flow line %q", line)
	}
	return cookie, actions, nil
}

// modConn is the adapter's OpenFlow 1.5 connection to br-int for flow_mods.
// It is dialed when first needed and again after any error; the adapter's
// lock serializes its use.
type modConn struct {
	socket string
	c      *ofConn
	id     uint32 // last bundle id
}

// ofSwitchError is an OFPT_ERROR the switch answered a bundle with.
type ofSwitchError struct {
	typ, code uint16
	stage     string
}

func (e *ofSwitchError) Error() string {
	return fmt.Sprintf("openflow bundle %s: switch error type %d code %d", e.stage, e.typ, e.code)
}

// bundle sends mods in one atomic bundle and commits it. A connection that
// broke while idle (ovs-vswitchd restarted, or dropped it) is redialed once
// when nothing was committed yet. On any error the connection is closed
// (an uncommitted bundle is then discarded).
func (q *modConn) bundle(ctx context.Context, mods bundleMods) error {
	return q.exchange(ctx, func(o *ofConn, id uint32) (bool, error) { return o.bundle(id, mods) })
}

// exchange runs one exchange over the connection, dialing it when needed,
// with a bundle id of its own. f says whether the switch may have acted on
// it (then a failure is final); on a failure before that point that is not
// the switch's own error, the connection is redialed and f runs once more.
// On any error the connection is closed.
func (q *modConn) exchange(ctx context.Context, f func(o *ofConn, id uint32) (acted bool, err error)) error {
	var err error
	for try := 0; try < 2; try++ {
		if q.c == nil {
			if q.c, err = dialOFVersion(ctx, q.socket, ofVersion15); err != nil {
				return err
			}
		}
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) > 5*time.Second {
			deadline = time.Now().Add(5 * time.Second)
		}
		q.c.c.SetDeadline(deadline)
		q.id++
		var acted bool
		acted, err = f(q.c, q.id)
		if err == nil {
			return nil
		}
		q.close()
		var se *ofSwitchError
		if acted || errors.As(err, &se) {
			return err
		}
	}
	return err
}

func (q *modConn) close() {
	if q.c != nil {
		q.c.Close()
		q.c = nil
	}
}

// msgWriter gathers messages for one write.
type msgWriter struct{ buf []byte }

// put appends a message with o's next xid and returns the xid.
func (w *msgWriter) put(o *ofConn, typ uint8, body []byte) uint32 {
	o.xid++
	w.buf = append(w.buf, ofMessage(o.version, typ, o.xid, body)...)
	return o.xid
}

// adds appends mods as the messages of bundle id.
func (w *msgWriter) adds(o *ofConn, id uint32, mods bundleMods) {
	for _, m := range mods {
		inner := ofMessage(o.version, m.typ, o.xid+1, m.body)
		body := make([]byte, 8, 8+len(inner))
		binary.BigEndian.PutUint32(body[0:], id)
		binary.BigEndian.PutUint16(body[6:], bundleFlags)
		w.put(o, ofBundleAdd, append(body, inner...))
	}
}

func bundleCtrl(id uint32, typ uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:], id)
	binary.BigEndian.PutUint16(b[4:], typ)
	binary.BigEndian.PutUint16(b[6:], bundleFlags)
	return b
}

// bundle opens bundle id, adds mods and waits for a barrier, then commits.
// committing is set once the commit went out (its outcome may be unknown).
func (o *ofConn) bundle(id uint32, mods bundleMods) (committing bool, err error) {
	var w msgWriter
	open := w.put(o, ofBundleControl, bundleCtrl(id, bundleOpenReq))
	first := o.xid + 1
	w.adds(o, id, mods)
	barrier := w.put(o, ofBarrierRequest, nil)
	buf := w.buf
	// Written while the answers are read: ovs-vswitchd stops reading a
	// connection whose replies (errors) pile up unread. On an early
	// return the caller closes the connection, which ends the write.
	wrote := make(chan error, 1)
	go func() {
		_, err := o.c.Write(buf)
		wrote <- err
	}()
	opened := false
	for done := false; !done; {
		typ, xid, b, err := o.recv()
		if err != nil {
			select {
			case werr := <-wrote:
				if werr != nil {
					return false, werr
				}
			default:
			}
			return false, err
		}
		switch {
		case xid < open || xid > barrier:
			// asynchronous message: not ours
		case typ == ofError:
			stage := "open"
			if xid >= first && xid < barrier {
				stage = fmt.Sprintf("message %d", xid-first+1)
			}
			return false, switchError(stage, b)
		case typ == ofBundleControl && xid == open && len(b) >= 8 && binary.BigEndian.Uint16(b[4:]) == bundleOpenReply:
			opened = true
		case typ == ofBarrierReply && xid == barrier:
			done = true
		}
	}
	if err := <-wrote; err != nil {
		return false, err
	}
	if !opened {
		return false, errors.New("openflow bundle: no open reply before the barrier")
	}
	if err := o.send(ofBundleControl, bundleCtrl(id, bundleCommitReq)); err != nil {
		return true, err
	}
	commit := o.xid
	for {
		typ, xid, b, err := o.recv()
		if err != nil {
			return true, err
		}
		switch {
		case xid != commit:
		case typ == ofError:
			return true, switchError("commit", b)
		case typ == ofBundleControl && len(b) >= 8 && binary.BigEndian.Uint16(b[4:]) == bundleCommitRepl:
			return true, nil
		default:
			return true, fmt.Errorf("openflow bundle commit: unexpected message type %d", typ)
		}
	}
}

func switchError(stage string, b []byte) error {
	e := &ofSwitchError{stage: stage}
	if len(b) >= 4 {
		e.typ, e.code = binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
	}
	return e
}
