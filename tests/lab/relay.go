package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Relay listens inside a network namespace and forwards every connection
// to a backend address in the caller's own namespace: it is how agents
// inside the lab reach a controller listening on loopback. The backend can
// be switched (a controller restarted on another port, another replica).
type Relay struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	wg      sync.WaitGroup
	once    sync.Once
}

// StartRelay listens on addr inside the namespace nsName and forwards
// connections to backend until t ends (or Close).
func StartRelay(t T, nsName, addr, backend string) *Relay {
	t.Helper()
	ln, err := listenIn(nsName, addr)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &Relay{ln: ln, backend: backend}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.Close)
	return r
}

// Gateway is the underlay subnet's first address, which Expose puts on the
// underlay bridge: the hosts' way to the caller's namespace.
func (l *Lab) Gateway() netip.Addr { return l.Subnet.Addr().Next() }

// Expose makes a TCP service of the caller's namespace (backend, e.g. the
// controller on 127.0.0.1:8080) reachable from the hosts over the
// underlay: it puts Gateway on the underlay bridge (once per lab) and
// starts a Relay listening at Gateway on the backend's port. The relay's
// Addr is what the hosts dial.
func (l *Lab) Expose(t T, backend string) *Relay {
	t.Helper()
	_, port, err := net.SplitHostPort(backend)
	if err != nil {
		t.Fatalf("lab %s: expose %q: %v", l.ID, backend, err)
	}
	if l.Management { // the management network's gateway (buildUnderlay)
		return StartRelay(t, l.Underlay, net.JoinHostPort(MgmtSubnet.Addr().Next().String(), port), backend)
	}
	l.mu.Lock()
	first := !l.gatewaySet
	l.gatewaySet = true
	l.mu.Unlock()
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := runIn(ctx, l.Underlay, nil, "ip", "addr", "add",
			fmt.Sprintf("%s/%d", l.Gateway(), l.Subnet.Bits()), "dev", l.UnderlayBridge); err != nil {
			t.Fatalf("lab %s: underlay address: %v", l.ID, err)
		}
	}
	return StartRelay(t, l.Underlay, net.JoinHostPort(l.Gateway().String(), port), backend)
}

// Addr is the address the relay listens on (inside its namespace).
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// SetBackend makes new connections go to b; open ones stay where they are.
func (r *Relay) SetBackend(b string) {
	r.mu.Lock()
	r.backend = b
	r.mu.Unlock()
}

// Close stops listening and waits for the accept loop to end; connections
// already relayed run on until either side closes them.
func (r *Relay) Close() {
	r.once.Do(func() {
		r.ln.Close()
		r.wg.Wait()
	})
}

// listenIn opens a TCP listener on addr inside the named namespace.
func listenIn(nsName, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(nsName, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

func (r *Relay) serve() {
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
