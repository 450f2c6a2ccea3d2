package link

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultNetnsDir is where named network namespaces live, as with `ip netns`.
const DefaultNetnsDir = "/run/netns"

// onThrowawayThread runs fn on an OS thread that is never handed back to
// the Go scheduler: its goroutine exits locked, so the runtime destroys the
// thread, and a namespace change made by fn (unshare) dies with it.
func onThrowawayThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // intentionally never unlocked
		errc <- fn()
	}()
	return <-errc
}

// isNetns reports whether path is a bind-mounted network namespace (a file
// on nsfs), as opposed to a plain file left behind by an earlier run.
func isNetns(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// prepareNetnsDir makes dir a shared mount point, as `ip netns add` does, so
// that namespaces mounted under it propagate to other mount namespaces.
func prepareNetnsDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it onto itself, then retry.
		if err = unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// createNamedNetns creates a new network namespace and pins it by
// bind-mounting it at path (which must not exist).
func createNamedNetns(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	err = onThrowawayThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount netns at %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
	}
	return err
}

// deleteNamedNetns unmounts and removes a pinned namespace, as
// `ip netns delete` does. A missing path is not an error.
func deleteNamedNetns(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// listNamedNetns returns the names in dir that start with prefix.
func listNamedNetns(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// validSandboxName rejects names that could escape the netns directory.
func validSandboxName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') ||
		filepath.Base(name) != name {
		return fmt.Errorf("invalid sandbox name %q", name)
	}
	return nil
}
