package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// A minimal OpenFlow client for the two cheap questions the adapter asks a
// bridge between full syncs (OpenFlow 1.3): how many flows (with a cookie)
// are installed, and which group ids exist. What changes the switch goes
// through ovs-ofctl (see ofctl.go), except the delta path's flow_mods and
// group_mods the encoder knows, which go in a bundle over an OpenFlow 1.5
// connection of their own (ofbundle.go); that connection also reads the
// groups' descriptions for the drift check (groups.go).

const (
	ofVersion13       = 0x04
	ofHello           = 0
	ofError           = 1
	ofEchoRequest     = 2
	ofEchoReply       = 3
	ofMultipartReq    = 18
	ofMultipartReply  = 19
	ofmpAggregate     = 2
	ofmpGroupDesc     = 7
	ofmpfReplyMore    = 1
	ofTableAll        = 0xff
	ofPortAny         = 0xffffffff
	ofGroupAny        = 0xffffffff
	ofHeaderLen       = 8
	ofBarrierRequest  = 20
	ofBarrierReply    = 21
	nxVendor          = 0x00002320 // Nicira: NX extensions
	ofMultipartHdrLen = 16
)

type ofConn struct {
	c       net.Conn
	xid     uint32
	version uint8 // OpenFlow version spoken
	peer    uint8 // version of the switch's HELLO
}

// dialOF connects to a bridge's management socket and negotiates OF1.3.
func dialOF(ctx context.Context, socket string) (*ofConn, error) {
	return dialOFVersion(ctx, socket, ofVersion13)
}

// dialOFVersion connects to a bridge's management socket and negotiates
// OpenFlow version (the switch must support it).
func dialOFVersion(ctx context.Context, socket string, version uint8) (*ofConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > 5*time.Second {
		deadline = time.Now().Add(5 * time.Second)
	}
	c.SetDeadline(deadline)
	o := &ofConn{c: c, version: version}
	if err := o.send(ofHello, nil); err != nil {
		c.Close()
		return nil, err
	}
	typ, _, body, err := o.recv()
	if err == nil && typ != ofHello {
		err = fmt.Errorf("expected HELLO, got message type %d", typ)
	}
	if err == nil && o.peer < version {
		err = fmt.Errorf("switch speaks OpenFlow version %#x, want %#x", o.peer, version)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("openflow hello on %s: %w (body %x)", socket, err, body)
	}
	return o, nil
}

func (o *ofConn) Close() error { return o.c.Close() }

func (o *ofConn) send(typ uint8, body []byte) error {
	o.xid++
	_, err := o.c.Write(ofMessage(o.version, typ, o.xid, body))
	return err
}

// ofMessage is an OpenFlow message: header and body.
func ofMessage(version, typ uint8, xid uint32, body []byte) []byte {
	msg := make([]byte, ofHeaderLen+len(body))
	msg[0], msg[1] = version, typ
	binary.BigEndian.PutUint16(msg[2:], uint16(len(msg)))
	binary.BigEndian.PutUint32(msg[4:], xid)
	copy(msg[ofHeaderLen:], body)
	return msg
}

// recv returns the next message from the switch. Echo requests (the
// switch's keepalive) are answered here, with their xid, and never
// returned: no caller has to handle them.
func (o *ofConn) recv() (typ uint8, xid uint32, body []byte, err error) {
	for {
		typ, xid, body, err = o.recvAny()
		if err != nil || typ != ofEchoRequest {
			return typ, xid, body, err
		}
		if err := o.reply(ofEchoReply, xid, body); err != nil {
			return 0, 0, nil, err
		}
	}
}

// recvAny reads one message, whatever it is.
func (o *ofConn) recvAny() (typ uint8, xid uint32, body []byte, err error) {
	var h [ofHeaderLen]byte
	if _, err = io.ReadFull(o.c, h[:]); err != nil {
		return 0, 0, nil, err
	}
	if h[1] == ofHello {
		o.peer = h[0]
	} else if h[0] != o.version {
		return 0, 0, nil, fmt.Errorf("switch speaks OpenFlow version %#x, want %#x", h[0], o.version)
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < ofHeaderLen {
		return 0, 0, nil, errors.New("short openflow message")
	}
	body = make([]byte, n-ofHeaderLen)
	if _, err = io.ReadFull(o.c, body); err != nil {
		return 0, 0, nil, err
	}
	return h[1], binary.BigEndian.Uint32(h[4:]), body, nil
}

// multipart sends one multipart request and returns the bodies of all
// reply parts (after the multipart header).
func (o *ofConn) multipart(mpType uint16, req []byte) ([][]byte, error) {
	body := make([]byte, 8+len(req))
	binary.BigEndian.PutUint16(body[0:], mpType)
	copy(body[8:], req)
	if err := o.send(ofMultipartReq, body); err != nil {
		return nil, err
	}
	want := o.xid
	var parts [][]byte
	for {
		typ, xid, b, err := o.recv()
		if err != nil {
			return nil, err
		}
		switch {
		case xid != want:
			continue // asynchronous message (port status...): not ours
		case typ == ofError:
			return nil, fmt.Errorf("openflow error reply %x", b)
		case typ != ofMultipartReply || len(b) < 8:
			return nil, fmt.Errorf("unexpected openflow message type %d", typ)
		}
		parts = append(parts, b[8:])
		if binary.BigEndian.Uint16(b[2:])&ofmpfReplyMore == 0 {
			return parts, nil
		}
	}
}

// flowCount returns the number of flows whose cookie matches cookie under mask.
func (o *ofConn) flowCount(cookie, mask uint64) (int, error) {
	parts, err := o.multipart(ofmpAggregate, aggregateReq(cookie, mask))
	if err != nil {
		return 0, err
	}
	return aggregateCount(parts)
}

// aggregateReq is the body of an aggregate flow statistics request for the
// flows whose cookie matches cookie under mask, in all tables.
func aggregateReq(cookie, mask uint64) []byte {
	req := make([]byte, 40)
	req[0] = ofTableAll
	binary.BigEndian.PutUint32(req[4:], ofPortAny)
	binary.BigEndian.PutUint32(req[8:], ofGroupAny)
	binary.BigEndian.PutUint64(req[16:], cookie)
	binary.BigEndian.PutUint64(req[24:], mask)
	binary.BigEndian.PutUint16(req[32:], 1) // OFPMT_OXM
	binary.BigEndian.PutUint16(req[34:], 4) // empty match
	return req
}

func aggregateCount(parts [][]byte) (int, error) {
	if len(parts) != 1 || len(parts[0]) < 24 {
		return 0, errors.New("bad aggregate reply")
	}
	return int(binary.BigEndian.Uint32(parts[0][16:])), nil
}

// groupIDs returns the ids of the groups on the switch.
func (o *ofConn) groupIDs() (map[uint32]bool, error) {
	parts, err := o.multipart(ofmpGroupDesc, nil)
	if err != nil {
		return nil, err
	}
	ids := map[uint32]bool{}
	for _, p := range parts {
		for len(p) >= 8 {
			n := int(binary.BigEndian.Uint16(p[0:]))
			if n < 8 || n > len(p) {
				return nil, errors.New("bad group desc reply")
			}
			ids[binary.BigEndian.Uint32(p[4:])] = true
			p = p[n:]
		}
	}
	return ids, nil
}

// switchState is the cheap summary compared against what was installed.
type switchState struct {
	flows, genFlows int
	groups          map[uint32]bool
}

// probe reads the cheap summary of a bridge in one short connection.
// Flows OVS learned (cookie exactly openapi.LearnedCookie: generation 0)
// are not counted: they come and go with traffic, never with a program.
func probe(ctx context.Context, socket string, gen uint16) (switchState, error) {
	var st switchState
	o, err := dialOF(ctx, socket)
	if err != nil {
		return st, err
	}
	defer o.Close()
	// OVS may learn (or expire) a flow between two counts: count the
	// learned flows before and after, and try again when they differ.
	for try := 0; ; try++ {
		var before, after int
		if before, err = o.flowCount(openapi.LearnedCookie, ^uint64(0)); err != nil {
			return st, err
		}
		if st.flows, err = o.flowCount(0, 0); err != nil {
			return st, err
		}
		if st.genFlows, err = o.flowCount(uint64(gen)<<48, ^uint64(CookieOwnerMask)); err != nil {
			return st, err
		}
		if after, err = o.flowCount(openapi.LearnedCookie, ^uint64(0)); err != nil {
			return st, err
		}
		if before == after || try == 2 {
			st.flows -= after
			if gen == 0 { // learned flows have generation 0 too
				st.genFlows -= after
			}
			break
		}
	}
	st.groups, err = o.groupIDs()
	return st, err
}

// queryConn is the adapter's own OpenFlow connection to br-int for the
// cheap questions of the delta path (flow counts by cookie). It is dialed
// when first needed and again after any error; the adapter's lock
// serializes its use.
type queryConn struct {
	socket string
	c      *ofConn
}

// flowCounts returns how many flows carry exactly each of cookies. The
// requests go out together, so a busy ovs-vswitchd answers them in one turn
// of its main loop. A connection that broke while idle (ovs-vswitchd
// restarted, or dropped it) is redialed once.
func (q *queryConn) flowCounts(ctx context.Context, cookies []uint64) ([]int, error) {
	var ns []int
	err := q.do(ctx, func(o *ofConn) error {
		var err error
		ns, err = o.exactCounts(cookies)
		return err
	})
	return ns, err
}

// exactCounts sends one aggregate request per cookie, then reads the
// replies.
func (o *ofConn) exactCounts(cookies []uint64) ([]int, error) {
	at := map[uint32]int{}
	for i, ck := range cookies {
		body := make([]byte, 8+40)
		binary.BigEndian.PutUint16(body[0:], ofmpAggregate)
		copy(body[8:], aggregateReq(ck, ^uint64(0)))
		if err := o.send(ofMultipartReq, body); err != nil {
			return nil, err
		}
		at[o.xid] = i
	}
	out := make([]int, len(cookies))
	for len(at) > 0 {
		typ, xid, b, err := o.recv()
		if err != nil {
			return nil, err
		}
		i, ours := at[xid]
		switch {
		case !ours:
			continue // asynchronous message: not ours
		case typ == ofError:
			return nil, fmt.Errorf("openflow error reply %x", b)
		case typ != ofMultipartReply || len(b) < 8:
			return nil, fmt.Errorf("unexpected openflow message type %d", typ)
		}
		n, err := aggregateCount([][]byte{b[8:]})
		if err != nil {
			return nil, err
		}
		out[i] = n
		delete(at, xid)
	}
	return out, nil
}

// reply sends a message with the given xid (an answer to the switch).
func (o *ofConn) reply(typ uint8, xid uint32, body []byte) error {
	_, err := o.c.Write(ofMessage(o.version, typ, xid, body))
	return err
}

func (q *queryConn) close() {
	if q.c != nil {
		q.c.Close()
		q.c = nil
	}
}
