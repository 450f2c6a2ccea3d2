package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The delta path in one exchange. A change goes to br-int with a drift
// check: for each cookie it touches, the switch must hold as many flows as
// the adapter installed. Done one after the other, the check, the bundle
// (open, messages, barrier) and its commit are three round trips to
// ovs-vswitchd, and each is a turn of its main loop, which polls every port
// of the userspace datapath: on the container's own host, busy with the new
// port's link, a turn took several milliseconds. So the check's aggregate
// requests, the bundle's open, its messages and its commit go in one write,
// and the answers are read in order.
//
// The commit is then sent before the check's answers are read: when the
// check finds drift, or the switch refuses a message (it commits the
// others), the change is in but the tables it was meant for were not. The
// adapter then forgets what it installed, and the full sync that follows
// puts the whole table right (ovs-ofctl replace-flows against the switch's
// own dump), as it does for any drift. Every flow_mod of a change is
// idempotent (add replaces a flow with the same match, delete_strict of an
// absent flow is no error), so sending the exchange again after a
// connection broke is harmless: if the first did reach the switch, the
// check of the second sees it and the full sync follows.

// errDrift is a drift check that found a count other than the installed
// one.
var errDrift = errors.New("openflow: the switch's flows differ from the installed ones")

// checkedBundle checks the flow count of each of cookies against want and
// commits mods in one atomic bundle, in one exchange (see above). A nil
// error means the switch held want and committed mods. Any error means the
// switch's tables are unknown.
func (q *modConn) checkedBundle(ctx context.Context, cookies []uint64, want []int, mods bundleMods) error {
	var counts []int
	err := q.exchange(ctx, func(o *ofConn, id uint32) (answered bool, err error) {
		// The connection broken before the switch answered anything
		// (ovs-vswitchd restarted, or dropped it while idle) is redialed
		// and the exchange sent again (see above).
		counts, answered, err = o.checkedBundle(id, cookies, mods)
		return answered, err
	})
	if err != nil {
		return err
	}
	if !slices.Equal(counts, want) {
		return errDrift
	}
	return nil
}

// checkedBundle writes the aggregate requests for cookies, then bundle id's
// open, mods and commit, and reads the answers up to the commit's.
// answered is set once the switch answered any of them.
func (o *ofConn) checkedBundle(id uint32, cookies []uint64, mods bundleMods) (counts []int, answered bool, err error) {
	var w msgWriter
	first := o.xid + 1
	for _, ck := range cookies {
		body := make([]byte, 8+40)
		binary.BigEndian.PutUint16(body[0:], ofmpAggregate)
		copy(body[8:], aggregateReq(ck, ^uint64(0)))
		w.put(o, ofMultipartReq, body)
	}
	open := w.put(o, ofBundleControl, bundleCtrl(id, bundleOpenReq))
	w.adds(o, id, mods)
	commit := w.put(o, ofBundleControl, bundleCtrl(id, bundleCommitReq))
	buf := w.buf
	// Written while the answers are read, as in bundle (ofbundle.go).
	wrote := make(chan error, 1)
	go func() {
		_, err := o.c.Write(buf)
		wrote <- err
	}()
	counts = make([]int, len(cookies))
	got := 0
	var refused error
	for {
		typ, xid, b, rerr := o.recv()
		if rerr != nil {
			select {
			case werr := <-wrote:
				if werr != nil {
					return nil, answered, werr
				}
			default:
			}
			return nil, answered, rerr
		}
		if xid < first || xid > commit {
			continue // asynchronous message: not ours
		}
		answered = true
		switch {
		case xid < open:
			if typ != ofMultipartReply || len(b) < 8 {
				return nil, true, fmt.Errorf("openflow drift check: answer type %d", typ)
			}
			n, cerr := aggregateCount15(b[8:])
			if cerr != nil {
				return nil, true, cerr
			}
			counts[xid-first] = n
			got++
		case typ == ofError:
			stage := "commit"
			switch {
			case xid == open:
				stage = "open"
			case xid < commit:
				stage = fmt.Sprintf("message %d", xid-open)
			}
			if xid == commit {
				return nil, true, errors.Join(refused, switchError(stage, b))
			}
			refused = errors.Join(refused, switchError(stage, b))
		case xid == commit:
			if typ != ofBundleControl || len(b) < 8 || binary.BigEndian.Uint16(b[4:]) != bundleCommitRepl {
				return nil, true, fmt.Errorf("openflow bundle commit: unexpected message type %d", typ)
			}
			if werr := <-wrote; werr != nil {
				return nil, true, werr
			}
			if refused != nil {
				return nil, true, refused
			}
			if got != len(cookies) {
				return nil, true, errors.New("openflow drift check: an answer is missing")
			}
			return counts, true, nil
		}
	}
}

// aggregateCount15 reads the flow count of an OpenFlow 1.5 aggregate reply
// body: an ofp_stats (reserved, length) of OXS fields, among them
// OFPXST_OFB_FLOW_COUNT (class 0x8002, field 3, 4 bytes).
func aggregateCount15(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, errors.New("bad aggregate reply")
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < 4 || n > len(b) {
		return 0, errors.New("bad aggregate reply length")
	}
	for p := 4; p+4 <= n; {
		class, field, size := binary.BigEndian.Uint16(b[p:]), b[p+2]>>1, int(b[p+3])
		if p+4+size > n {
			break
		}
		if class == 0x8002 && field == 3 && size == 4 {
			return int(binary.BigEndian.Uint32(b[p+4:])), nil
		}
		p += 4 + size
	}
	return 0, errors.New("aggregate reply without a flow count")
}
