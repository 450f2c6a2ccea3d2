package health

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread moved into the network namespace at
// nsPath, and moves the thread back. It runs on a goroutine of its own: a
// thread that cannot be moved back is never unlocked, so the runtime
// destroys it with that goroutine, and no caller ever finds itself in the
// wrong namespace. Sockets fn creates stay in the namespace they were made
// in.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- inNetnsLocked(nsPath, fn) }()
	return <-errc
}

func inNetnsLocked(nsPath string, fn func() error) error {
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own netns: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", nsPath, err)
	}
	err = fn()
	if serr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); serr != nil {
		return fmt.Errorf("leave netns %s: %w", nsPath, serr) // the thread stays locked and dies
	}
	runtime.UnlockOSThread()
	return err
}

// dialIn connects to addr with a socket created inside the network
// namespace at nsPath ("" = the agent's own).
func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := inNetns(nsPath, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}
