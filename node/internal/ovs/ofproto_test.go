package ovs

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// recv answers the switch's echo requests itself, with the request's xid
// and body, and returns the next other message.
func TestRecvAnswersEcho(t *testing.T) {
	mine, sw := net.Pipe()
	defer mine.Close()
	defer sw.Close()
	o := &ofConn{c: mine, version: ofVersion13}
	go func() {
		sw.Write(ofMessage(ofVersion13, ofEchoRequest, 77, []byte("ping")))
		// The echo reply comes back before the switch sends on.
		var h [ofHeaderLen]byte
		if _, err := io.ReadFull(sw, h[:]); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint16(h[2:]))-ofHeaderLen)
		io.ReadFull(sw, body)
		if h[1] != ofEchoReply || binary.BigEndian.Uint32(h[4:]) != 77 || string(body) != "ping" {
			sw.Write(ofMessage(ofVersion13, ofError, 0, []byte("bad echo reply")))
			return
		}
		sw.Write(ofMessage(ofVersion13, ofBarrierReply, 5, nil))
	}()
	typ, xid, body, err := o.recv()
	if err != nil || typ != ofBarrierReply || xid != 5 {
		t.Fatalf("recv: type %d xid %d body %q err %v, want the barrier reply after an answered echo", typ, xid, body, err)
	}
}
