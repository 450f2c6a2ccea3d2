package api

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// The limiter on its own, with a fake clock: per address (IPv6 per /64),
// a fixed window, tokens known good from an address pass while it is
// blocked, and the window's end unblocks.
func TestAuthLimiter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newAuthLimiter(3, time.Minute)
	l.now = func() time.Time { return now }
	key := func(remote string) netip.Prefix { return clientKey(&http.Request{RemoteAddr: remote}) }
	a, b := key("192.0.2.1:5000"), key("192.0.2.2:5000")
	l.succeeded(a, "good")
	for i := 0; i < 3; i++ {
		if w := l.blocked(a, "guess"); w != 0 {
			t.Fatalf("blocked after %d failures", i)
		}
		l.failed(a)
	}
	now = now.Add(20 * time.Second)
	if w := l.blocked(a, "guess"); w != 40*time.Second {
		t.Errorf("blocked for %s, want the window's remaining 40s", w)
	}
	if w := l.blocked(a, "good"); w != 0 {
		t.Errorf("a token that authenticated from the address before is blocked for %s", w)
	}
	if w := l.blocked(b, "guess"); w != 0 {
		t.Errorf("another address is blocked for %s", w)
	}
	now = now.Add(40 * time.Second)
	if w := l.blocked(a, "guess"); w != 0 {
		t.Errorf("still blocked for %s after the window", w)
	}
	// IPv6: the /64 counts as one; a v4-mapped address as its IPv4.
	if key("[2001:db8::1]:1") != key("[2001:db8::ffff]:2") || key("[2001:db8:0:1::1]:1") == key("[2001:db8::1]:1") {
		t.Error("IPv6 addresses do not count per /64")
	}
	if key("[::ffff:192.0.2.1]:1") != a {
		t.Error("a v4-mapped address counts apart from its IPv4")
	}
	// Memory stays bounded by the number of addresses.
	for i := 0; i < maxAuthAddrs+10; i++ {
		l.failed(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	if len(l.addrs) > maxAuthAddrs {
		t.Errorf("%d addresses tracked, bound %d", len(l.addrs), maxAuthAddrs)
	}
}
