package link

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A container's netns path comes from whoever may create containers, and
// the agent runs as root: before anything is done in the namespace it names,
// the path must resolve (symlinks and ".." included) beneath the netns
// directory, name a network namespace, and that namespace must be neither
// the host's (the one OVS and the agent live in, or init's) nor a managed
// sandbox. A namespace that already holds another port's eth0 is refused by
// ensurePair, which never touches an eth0 it did not create.

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func nsIDOf(fd int) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nsID{}, err
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

func nsIDOfPath(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

// hostNamespaces are the namespaces no container may name: the host
// namespace of the manager, the agent's own, and init's (when readable).
func hostNamespaces(host netns.NsHandle) (map[nsID]string, error) {
	ids := map[nsID]string{}
	id, err := nsIDOf(int(host))
	if err != nil {
		return nil, fmt.Errorf("stat host netns: %w", err)
	}
	ids[id] = "the host's network namespace"
	for path, what := range map[string]string{
		"/proc/self/ns/net": "the agent's own network namespace",
		"/proc/1/ns/net":    "the network namespace of init (pid 1)",
	} {
		if id, err := nsIDOfPath(path); err == nil {
			if _, known := ids[id]; !known {
				ids[id] = what
			}
		}
	}
	return ids, nil
}

// resolveDir returns dir with symlinks resolved (dir itself, cleaned, when
// it does not exist yet).
func resolveDir(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return filepath.Clean(dir)
}

// beneath returns path relative to dir when path, with every symlink and
// ".." resolved, lies strictly inside dir (which must be resolved too).
func beneath(dir, path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", errors.New("not an absolute path")
	}
	if strings.ContainsRune(path, 0) {
		return "", errors.New("contains a NUL byte")
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		if _, lexical := under(dir, filepath.Clean(path)); !lexical {
			return "", notUnder(dir)
		}
		return "", err
	}
	rel, ok := under(dir, resolved)
	if !ok {
		return "", fmt.Errorf("resolves to %s: %w", resolved, notUnder(dir))
	}
	return rel, nil
}

func notUnder(dir string) error {
	return fmt.Errorf("not under %s (the agent's netns directory, SWITCHYARD_NETNS_DIR)", dir)
}

// under returns path relative to dir when path lies strictly inside dir.
func under(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// openBeneath opens rel inside dir, following no symlink and never leaving
// dir, so that a path swapped for a symlink after beneath checked it is
// refused rather than followed. Kernels without openat2 (before 5.6) get
// an open of the resolved path that follows no symlink in its last part.
func openBeneath(dir, rel string) (int, error) {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(d)
	fd, err := unix.Openat2(d, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = unix.Openat(d, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	return fd, err
}

// openUserNetns opens the namespace a container names by path, after the
// checks above. The caller closes the handle.
func (m *Manager) openUserNetns(path string) (netns.NsHandle, error) {
	if base := filepath.Base(path); strings.HasPrefix(base, m.opts.SandboxPrefix) {
		return -1, fmt.Errorf("netns %s: the name prefix %q is reserved for the agent's managed sandboxes", path, m.opts.SandboxPrefix)
	}
	rel, err := beneath(m.netnsDir, path)
	if err != nil {
		return -1, fmt.Errorf("netns %s: %w", path, err)
	}
	if base := filepath.Base(rel); strings.HasPrefix(base, m.opts.SandboxPrefix) {
		return -1, fmt.Errorf("netns %s: resolves to %s, a managed sandbox of the agent", path, rel)
	}
	fd, err := openBeneath(m.netnsDir, rel)
	if err != nil {
		return -1, fmt.Errorf("netns %s: open: %w", path, err)
	}
	forbidden := m.hostIDs
	if id := m.dnsNS.Load(); id != nil {
		forbidden = maps.Clone(forbidden)
		forbidden[*id] = "the agent's DNS namespace"
	}
	if err := checkNetnsFd(fd, forbidden); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netns %s: %w", path, err)
	}
	return netns.NsHandle(fd), nil
}

// checkNetnsFd refuses an open file that is not a network namespace, or
// is one of the forbidden ones.
func checkNetnsFd(fd int, forbidden map[nsID]string) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return err
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return errors.New("is not a network namespace")
	}
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		return errors.New("is not a network namespace")
	}
	id, err := nsIDOf(fd)
	if err != nil {
		return err
	}
	if what, bad := forbidden[id]; bad {
		return fmt.Errorf("is %s; a container must have a namespace of its own", what)
	}
	return nil
}
