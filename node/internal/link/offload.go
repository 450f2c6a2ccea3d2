package link

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Tx checksum offload is read with the legacy ETHTOOL_GTXCSUM ioctl (one
// small ioctl: the kernel reports whether any NETIF_F_CSUM_MASK feature is
// on) because safchain/ethtool's Features allocates two 1 MiB string tables
// per call, which made every apply of 50 ports churn the GC. Turning it
// off, which is rare, goes through safchain/ethtool (what `ethtool -K IFACE
// tx off` does: every tx-checksum-* feature off).

const (
	ethtoolGTxCsum = 0x16 // ETHTOOL_GTXCSUM
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
	// v is pinned (which also puts it on the heap): the kernel reaches it
	// through a uintptr the garbage collector does not see.
	v := &ethtoolValue{cmd: ethtoolGTxCsum}
	var pin runtime.Pinner
	pin.Pin(v)
	defer pin.Unpin()
	var req ifreqValue
	copy(req.name[:], iface)
	req.data = uintptr(unsafe.Pointer(v))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	if errno != 0 {
		return false, fmt.Errorf("ethtool GTXCSUM %s: %w", iface, errno)
	}
	return v.data != 0, nil
}

// txChecksumOff turns off every tx checksum feature of iface in ns.
func txChecksumOff(ns netns.NsHandle, iface string) error {
	return inNetns(ns, func() error {
		et, err := ethtool.NewEthtool()
		if err != nil {
			return err
		}
		defer et.Close()
		names, err := et.FeatureNames(iface)
		if err != nil {
			return fmt.Errorf("ethtool feature names of %s: %w", iface, err)
		}
		change := map[string]bool{}
		for name := range names {
			if strings.HasPrefix(name, "tx-checksum") {
				change[name] = false
			}
		}
		if err := et.Change(iface, change); err != nil {
			return fmt.Errorf("ethtool -K %s tx off: %w", iface, err)
		}
		return nil
	})
}

// ensureTxOff checks (and with fix, turns off) tx checksum offload of iface
// in ns, using s (a socket in ns), and returns what it found wrong.
func ensureTxOff(s *ethtoolSock, ns netns.NsHandle, iface string, fix bool) (string, error) {
	on, err := s.txChecksum(iface)
	if err != nil || !on {
		return "", err
	}
	diff := iface + ": tx checksum offload on"
	if fix {
		return diff, txChecksumOff(ns, iface)
	}
	return diff, nil
}
