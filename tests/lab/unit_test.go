package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestParsePing(t *testing.T) {
	for _, tc := range []struct {
		out           string
		sent, recv    int
		loss          float64
		min, avg, max time.Duration
		wantErr       bool
	}{
		{out: "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.061 ms\n\n--- 10.0.0.2 ping statistics ---\n5 packets transmitted, 5 received, 0% packet loss, time 4005ms\nrtt min/avg/max/mdev = 0.040/0.050/1.500/0.007 ms\n",
			sent: 5, recv: 5, min: 40 * time.Microsecond, avg: 50 * time.Microsecond, max: 1500 * time.Microsecond},
		{out: "--- 10.0.0.9 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2030ms\n", sent: 3, loss: 100},
		{out: "4 packets transmitted, 2 received, +2 errors, 50% packet loss, time 3004ms\nrtt min/avg/max/mdev = 1.000/2.000/3.000/0.500 ms\n",
			sent: 4, recv: 2, loss: 50, min: time.Millisecond, avg: 2 * time.Millisecond, max: 3 * time.Millisecond},
		{out: "ping: connect: Network is unreachable\n", wantErr: true},
	} {
		r, err := parsePing(tc.out)
		if (err != nil) != tc.wantErr {
			t.Fatalf("parsePing(%q): err %v", tc.out, err)
		}
		if r.Sent != tc.sent || r.Received != tc.recv || r.Loss != tc.loss || r.Min != tc.min || r.Avg != tc.avg || r.Max != tc.max {
			t.Errorf("parsePing(%q) = %+v", tc.out, r)
		}
	}
}

// Lost: the numbers with no reply below the last answered; Trailing: those
// after it.
func TestParsePingLost(t *testing.T) {
	out := "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n"
	for _, n := range []int{1, 2, 4, 7} {
		out += fmt.Sprintf("64 bytes from 10.0.0.2: icmp_seq=%d ttl=64 time=0.061 ms\n", n)
	}
	out += "\n--- 10.0.0.2 ping statistics ---\n8 packets transmitted, 4 received, 50% packet loss, time 70ms\n"
	r, err := parsePing(out)
	if err != nil || !slices.Equal(r.Lost, []int{3, 5, 6}) || r.Trailing != 1 {
		t.Fatalf("parsePing: %+v %v, want Lost [3 5 6], Trailing 1", r, err)
	}
}

// A ping with no count runs until Stop, which gets its summary.
func TestStartPingLoopback(t *testing.T) {
	if err := Requirements(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := StartPing(ctx, "", "127.0.0.1", 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AwaitReply(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for p.Answered() < 5 {
		select {
		case <-ctx.Done():
			t.Fatalf("no 5 replies: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	r, err := p.Stop()
	if err != nil || r.Sent < 5 || r.Received < 5 || len(r.Lost) != 0 || r.Trailing > 1 {
		t.Fatalf("stopped ping: %+v, %v", r, err)
	}
	if _, err := p.Stop(); err == nil {
		t.Errorf("a second Stop found the ping still running")
	}
}

func TestPingLoopback(t *testing.T) {
	if err := Requirements(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := Ping(ctx, "", "127.0.0.1", 2, 10*time.Millisecond)
	if err != nil || r.Sent != 2 || r.Received != 2 {
		t.Fatalf("ping loopback: %+v, %v", r, err)
	}
}

func TestOptions(t *testing.T) {
	o := Options{}
	if err := o.defaults(); err != nil || o.Hosts != 2 || o.Tunnel != "geneve" || o.Subnet.String() != "192.168.200.0/24" || o.MTU != 1500 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, bad := range []Options{{Tunnel: "gre"}, {Hosts: -1}, {Subnet: netip.MustParsePrefix("192.168.1.0/28")}, {Subnet: netip.MustParsePrefix("fd00::/64")}} {
		if err := bad.defaults(); err == nil {
			t.Errorf("defaults(%+v): no error", bad)
		}
	}
	l := &Lab{Subnet: netip.MustParsePrefix("10.1.0.0/16")}
	for i, want := range map[int]string{1: "10.1.0.11/16", 2: "10.1.0.12/16", 250: "10.1.1.4/16"} {
		if got, err := l.hostAddr(i); err != nil || got.String() != want {
			t.Errorf("hostAddr(%d) = %v, %v; want %s", i, got, err, want)
		}
	}
	l.Subnet = netip.MustParsePrefix("192.168.200.0/24")
	if got, err := l.hostAddr(250); err == nil {
		t.Errorf("hostAddr(250) in a /24 = %v, want an error", got)
	}
}
