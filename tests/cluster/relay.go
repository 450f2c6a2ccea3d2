package cluster

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
)

// relay listens inside a network namespace and forwards every connection to
// a backend address in the test's own namespace: it is how agents inside
// the lab reach a controller listening on loopback. The backend can be
// switched (a controller restarted on another port, another replica).
type relay struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	wg      sync.WaitGroup
}

// listenIn opens a TCP listener on addr inside the named namespace.
func listenIn(nsName, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", nsName, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace: never let it run Go code again.
		runtime.Goexit()
	}
	return ln, lerr
}

func startRelay(t testing.TB, nsName, addr, backend string) *relay {
	ln, err := listenIn(nsName, addr)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &relay{ln: ln, backend: backend}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.close)
	return r
}

func (r *relay) setBackend(b string) {
	r.mu.Lock()
	r.backend = b
	r.mu.Unlock()
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		b := r.backend
		r.mu.Unlock()
		go pipe(c, b)
	}
}

func pipe(c net.Conn, backend string) {
	defer c.Close()
	s, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
}

func (r *relay) close() {
	r.ln.Close()
	r.wg.Wait()
}
