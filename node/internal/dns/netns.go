package dns

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// ListenIn creates the server's UDP and TCP sockets on addr (e.g.
// "0.0.0.0:53") inside the network namespace at nsPath: it locks an OS
// thread, enters the namespace, creates the sockets and switches the
// thread back. A socket belongs to the namespace it was created in, so the
// server then serves them from ordinary goroutines. If the thread cannot
// switch back it is never unlocked, and the runtime destroys it.
func ListenIn(nsPath, addr string) (*net.UDPConn, net.Listener, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	type result struct {
		udp *net.UDPConn
		tcp net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- result{err: err}
			return // the thread stays locked: destroyed
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter netns %s: %w", nsPath, err)}
			return
		}
		var r result
		r.udp, r.tcp, r.err = listen(addr)
		if err := netns.Set(orig); err != nil {
			if r.err == nil {
				r.udp.Close()
				r.tcp.Close()
			}
			done <- result{err: errors.Join(r.err, fmt.Errorf("leave netns %s: %w", nsPath, err))}
			return // the thread stays locked: destroyed
		}
		runtime.UnlockOSThread()
		done <- r
	}()
	r := <-done
	return r.udp, r.tcp, r.err
}

// listen creates both sockets in the calling thread's namespace.
func listen(addr string) (*net.UDPConn, net.Listener, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, nil, err
	}
	u, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		u.Close()
		return nil, nil, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	return u, l, nil
}
