package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"syscall"
	"unsafe"

	"github.com/switchyard/switchyard/tests/lab"
)

// listenUDP listens on addr with IP_PKTINFO on, so that serveUDP learns
// the address each datagram was sent to and answers from it: in a
// namespace with several addresses on one subnet (the lab's outside) the
// kernel would otherwise answer from the primary one, and a client's
// connected socket drops that answer.
func listenUDP(addr string) (*net.UDPConn, error) {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
	}); err != nil || serr != nil {
		c.Close()
		return nil, fmt.Errorf("udp %s: IP_PKTINFO: %v", addr, errors.Join(err, serr))
	}
	return c, nil
}

// serveUDP answers every datagram with the name (and, seen, the sender's
// address), from the address it was sent to.
func serveUDP(c *net.UDPConn, name string, seen bool) {
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		_, oobn, _, from, err := c.ReadMsgUDP(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Fatalf("syprobe: udp: %v", err)
		}
		answer := name
		if seen {
			answer = lab.SeenReply(name, from.String())
		}
		_, _, _ = c.WriteMsgUDP([]byte(answer), replyFrom(oob[:oobn]), from)
	}
}

// replyFrom turns the IP_PKTINFO control message of a received datagram
// into the one that sends the answer from its destination address (nil
// when there is none).
func replyFrom(oob []byte) []byte {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		if m.Header.Level != syscall.IPPROTO_IP || m.Header.Type != syscall.IP_PKTINFO || len(m.Data) < syscall.SizeofInet4Pktinfo {
			continue
		}
		in := (*syscall.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
		if in.Addr[0] >= 224 || in.Addr == [4]byte{255, 255, 255, 255} {
			return nil // multicast or broadcast: let the kernel pick
		}
		b := make([]byte, syscall.CmsgSpace(syscall.SizeofInet4Pktinfo))
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = syscall.IPPROTO_IP, syscall.IP_PKTINFO
		h.SetLen(syscall.CmsgLen(syscall.SizeofInet4Pktinfo))
		out := (*syscall.Inet4Pktinfo)(unsafe.Pointer(&b[syscall.CmsgLen(0)]))
		out.Spec_dst = in.Addr
		return b
	}
	return nil
}
