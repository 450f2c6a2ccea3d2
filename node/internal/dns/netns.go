package dns

import (
	"fmt"
	"net"

	"github.com/switchyard/switchyard/node/internal/link"
)

// ListenIn creates the server's UDP and TCP sockets on addr (e.g.
// "0.0.0.0:53") inside the network namespace at nsPath: it locks an OS
// thread, enters the namespace, creates the sockets and switches the
// thread back. A socket belongs to the namespace it was created in, so the
// server then serves them from ordinary goroutines. If the thread cannot
// switch back it is never unlocked, and the runtime destroys it.
func ListenIn(nsPath, addr string) (*net.UDPConn, net.Listener, error) {
	var u *net.UDPConn
	var l net.Listener
	err := link.InNetnsPath(nsPath, func() error {
		var err error
		u, l, err = listen(addr)
		return err
	})
	if err != nil {
		if u != nil {
			u.Close()
			l.Close()
		}
		return nil, nil, fmt.Errorf("netns %s: %w", nsPath, err)
	}
	return u, l, nil
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
