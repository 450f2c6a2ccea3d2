package api

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// Failed authentications are limited per client address: past
// DefaultAuthFailures unknown or revoked tokens from one address within
// DefaultAuthFailureWindow, that address gets 429 (Retry-After: until the
// window ends) for every token it has not already authenticated with
// successfully, without looking the token up. So guessing gets no answer,
// neither right nor wrong, while the clients that had authenticated from
// that address (agents behind one NAT or relay) carry on. Successes never
// count. The address is the connection's peer (no X-Forwarded-For: the
// controller trusts no proxy); IPv6 addresses count per /64.
const (
	DefaultAuthFailures      = 10
	DefaultAuthFailureWindow = time.Minute
)

// authLimiter counts failed authentications per address in fixed windows.
type authLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	addrs  map[netip.Prefix]*addrAuth
}

// addrAuth is one address's window: its start, the failures in it, and
// the tokens (SHA-256 of the secret) that authenticated from the address
// lately, with when.
type addrAuth struct {
	start time.Time
	fails int
	good  map[[sha256.Size]byte]time.Time
}

// Bounds on the limiter's memory: addresses tracked (past it, those idle
// for a window go) and tokens remembered per address.
const (
	maxAuthAddrs    = 100000
	maxGoodPerAddr  = 64
	goodTokenMemory = 10 * time.Minute
)

func newAuthLimiter(max int, window time.Duration) *authLimiter {
	if max <= 0 {
		max = DefaultAuthFailures
	}
	if window <= 0 {
		window = DefaultAuthFailureWindow
	}
	return &authLimiter{max: max, window: window, now: time.Now, addrs: map[netip.Prefix]*addrAuth{}}
}

// clientKey is what failures count against: the peer's address, its /64
// for IPv6 (one host usually holds a whole /64).
func clientKey(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, 32)
}

// entry returns key's record with its window current; nil when key has
// none (and create is false).
func (l *authLimiter) entry(key netip.Prefix, create bool) *addrAuth {
	now := l.now()
	e := l.addrs[key]
	if e == nil {
		if !create {
			return nil
		}
		if len(l.addrs) >= maxAuthAddrs {
			l.evict(now)
		}
		e = &addrAuth{start: now}
		l.addrs[key] = e
	}
	if now.Sub(e.start) >= l.window {
		e.start, e.fails = now, 0
	}
	return e
}

// evict drops addresses with no failures in the current window and no
// token to remember; if none qualifies, every record (an attacker with
// that many addresses gains nothing per-address limiting could stop).
func (l *authLimiter) evict(now time.Time) {
	for k, e := range l.addrs {
		if (now.Sub(e.start) >= l.window || e.fails == 0) && len(e.good) == 0 {
			delete(l.addrs, k)
		}
	}
	if len(l.addrs) >= maxAuthAddrs {
		l.addrs = map[netip.Prefix]*addrAuth{}
	}
}

// blocked returns how long key must wait before a token that has not
// authenticated from it may be tried, 0 if it need not.
func (l *authLimiter) blocked(key netip.Prefix, secret string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(key, false)
	if e == nil || e.fails < l.max {
		return 0
	}
	if at, ok := e.good[sha256.Sum256([]byte(secret))]; ok && l.now().Sub(at) < goodTokenMemory {
		return 0
	}
	return e.start.Add(l.window).Sub(l.now())
}

// failed counts a failed authentication from key.
func (l *authLimiter) failed(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entry(key, true).fails++
}

// succeeded remembers that secret authenticated from key.
func (l *authLimiter) succeeded(key netip.Prefix, secret string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(key, true)
	now := l.now()
	if e.good == nil {
		e.good = map[[sha256.Size]byte]time.Time{}
	}
	if len(e.good) >= maxGoodPerAddr {
		for h, at := range e.good {
			if now.Sub(at) >= goodTokenMemory {
				delete(e.good, h)
			}
		}
		if len(e.good) >= maxGoodPerAddr {
			e.good = map[[sha256.Size]byte]time.Time{}
		}
	}
	e.good[sha256.Sum256([]byte(secret))] = now
}

// tooManyFailures is the 429 of a blocked address; Retry-After says when
// (whole seconds, rounded up).
func tooManyFailures(wait time.Duration) (*problem.Error, string) {
	secs := int((wait + time.Second - 1) / time.Second)
	return &problem.Error{Status: http.StatusTooManyRequests, Slug: "too-many-failed-authentications",
		Title:  "Too many failed authentications",
		Detail: fmt.Sprintf("too many unknown or revoked tokens from this address: retry in %d s", secs)}, fmt.Sprint(secs)
}
