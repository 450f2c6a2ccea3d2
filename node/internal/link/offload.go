package link

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Tx checksum offload is read and turned off with the legacy
// ETHTOOL_GTXCSUM and ETHTOOL_STXCSUM ioctls: one small ioctl each on a
// socket already open in the namespace. The kernel maps them onto the
// features (NETIF_F_CSUM_MASK and the SCTP/FCoE CRCs), so STXCSUM with 0 does
// what `ethtool -K IFACE tx off` does: every tx-checksum-* feature off, and
// what depends on them (TSO) with them. safchain/ethtool's feature calls
// allocate two 1 MiB string tables per call and need a thread switched into
// the namespace: 3 to 7 ms for the two ends of each new container's veth.

const (
	ethtoolGTxCsum = 0x16 // ETHTOOL_GTXCSUM
	ethtoolSTxCsum = 0x17 // ETHTOOL_STXCSUM
)

// ethtoolSock is an AF_INET datagram socket in one namespace: ethtool
// ioctls act on the namespace the socket was created in.
type ethtoolSock struct {
	fd int
}

func (s *ethtoolSock) Close() error { return unix.Close(s.fd) }

// ethtoolSocketIn opens an ethtool socket inside ns (negative: the current
// namespace).
func ethtoolSocketIn(ns netns.NsHandle) (*ethtoolSock, error) {
	var fd int
	err := inNetns(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ethtool socket: %w", err)
	}
	return &ethtoolSock{fd: fd}, nil
}

// InNetnsPath runs fn on an OS thread switched into the network namespace
// at path, then switches the thread back (see inNetns). Sockets fn creates
// stay in that namespace: the agent's DNS resolver listens, and health
// probes dial, through it.
func InNetnsPath(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return inNetns(ns, fn)
}

// inNetns runs fn on an OS thread switched into ns, then switches the
// thread back. If switching back fails the thread is never unlocked, so the
// runtime destroys it instead of reusing it in the wrong namespace.
func inNetns(ns netns.NsHandle, fn func() error) error {
	if ns < 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return // thread stays locked: destroyed
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return // thread stays locked: destroyed
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

type ifreqValue struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte // ifreq is 40 bytes on 64-bit
}

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// txChecksum reports whether tx checksum offload is on.
func (s *ethtoolSock) txChecksum(iface string) (bool, error) {
	v, err := s.value(iface, ethtoolGTxCsum, 0)
	return v != 0, err
}

// txChecksumOff turns off every tx checksum feature of iface.
func (s *ethtoolSock) txChecksumOff(iface string) error {
	_, err := s.value(iface, ethtoolSTxCsum, 0)
	return err
}

// value runs one ethtool_value ioctl (cmd, data) on iface and returns the
// data the kernel left.
func (s *ethtoolSock) value(iface string, cmd, data uint32) (uint32, error) {
	// v is pinned (which also puts it on the heap): the kernel reaches it
	// through a uintptr the garbage collector does not see.
	v := &ethtoolValue{cmd: cmd, data: data}
	var pin runtime.Pinner
	pin.Pin(v)
	defer pin.Unpin()
	var req ifreqValue
	copy(req.name[:], iface)
	req.data = uintptr(unsafe.Pointer(v))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	if errno != 0 {
		return 0, fmt.Errorf("ethtool %#x %s: %w", cmd, iface, errno)
	}
	return v.data, nil
}

// ensureTxOff checks (and with fix, turns off) tx checksum offload of iface,
// using s (a socket in iface's namespace), and returns what it found wrong.
func ensureTxOff(s *ethtoolSock, iface string, fix bool) (string, error) {
	on, err := s.txChecksum(iface)
	if err != nil || !on {
		return "", err
	}
	diff := iface + ": tx checksum offload on"
	if fix {
		return diff, s.txChecksumOff(iface)
	}
	return diff, nil
}
