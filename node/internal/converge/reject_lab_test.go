package converge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// TestRejectOnRealOVS: flows written as the compiler writes them send a new
// TCP connection or UDP datagram to a VIP without backends to the
// controller with the reject userdata through meter 2; the listener
// answers, and the container's connect() fails at once with ECONNREFUSED
// (TCP RST), and its connected UDP socket gets ECONNREFUSED (ICMP port
// unreachable).
func TestRejectOnRealOVS(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h, func(o *Options) { o.RejectRate = 50 })
	c1 := ctr{N: 1, Host: h.Name}
	vip := ctr{N: 99} // answers ARP only: the VIP
	p := program(h.Name, 1, []ctr{c1}, nil, "geneve")
	reject := fmt.Sprintf("controller(userdata=%s,meter_id=%d)", openapi.RejectUserdata, openapi.RejectMeter)
	p.Flows = append(p.Flows, arpResponder(vip),
		openapi.Flow{Table: 0, Priority: 150, Cookie: 0xe001, Match: "ip,in_port=${port:vc1},nw_dst=" + vip.IP(), Actions: "ct(table=2,zone=1)"},
		openapi.Flow{Table: 2, Priority: 100, Cookie: 0xe002, Match: "ct_state=+new+trk,tcp,nw_dst=" + vip.IP() + ",tp_dst=80", Actions: reject},
		openapi.Flow{Table: 2, Priority: 100, Cookie: 0xe003, Match: "ct_state=+new+trk,udp,nw_dst=" + vip.IP() + ",tp_dst=53", Actions: reject})
	if r := apply(t, a, p); r.Degraded() {
		t.Fatalf("degraded: %+v", r)
	}
	if out := h.OFCtl(t, "dump-meters", "br-int"); !strings.Contains(out, "meter=2 pktps bands=\ntype=drop rate=50") {
		t.Fatalf("reject meter:\n%s", out)
	}
	obs := a.sw.PolicyObserver()
	defer obs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{}, 10)
	go obs.ListenLog(ctx, func(openapi.PolicyLogRecord) {}, func() { ready <- struct{}{} })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("listener never subscribed")
	}

	ns := "/run/netns/" + sandbox(l, h, c1)
	err := link.InNetnsPath(ns, func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp", vip.IP()+":80", 10*time.Second)
		if err == nil {
			c.Close()
			return errors.New("TCP connect to a VIP without backends succeeded")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("TCP connect: %v, want ECONNREFUSED", err)
		}
		// A lost SYN would be retried after 1 s: refused at once means the
		// first SYN was answered.
		if d := time.Since(start); d > 900*time.Millisecond {
			return fmt.Errorf("TCP connect refused after %v, want at once", d)
		}
		u, err := net.Dial("udp", vip.IP()+":53")
		if err != nil {
			return err
		}
		defer u.Close()
		if _, err := u.Write([]byte("query")); err != nil {
			return err
		}
		u.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = u.Read(make([]byte, 64))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("UDP read: %v, want ECONNREFUSED (ICMP port unreachable)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := obs.Rejected(); n < 2 {
		t.Fatalf("%d rejects answered, want 2", n)
	}
}
