package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// manifest is what a lab writes to <Dir>/manifest as it grows, so that a
// later CleanupStale can tear it down if the test binary dies hard.
type manifest struct {
	ID string `json:"id"`
	// CreatorPid and CreatorStart name the test process that built the lab.
	CreatorPid   int       `json:"creatorPid"`
	CreatorStart uint64    `json:"creatorStart"`
	Created      time.Time `json:"created"`
	// Kept is set when the lab was kept on purpose (EnvKeep).
	Kept bool `json:"kept,omitempty"`
	// Netns are the namespaces made; every "sy-<id>-*" one is deleted anyway.
	Netns []string `json:"netns"`
	// Procs are all processes started, in order (restarts add entries).
	Procs []manifestProc `json:"procs"`
}

type manifestProc struct {
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

const manifestName = "manifest"

func newManifest(id string) manifest {
	_, start, _ := procStat(os.Getpid())
	return manifest{ID: id, CreatorPid: os.Getpid(), CreatorStart: start, Created: time.Now()}
}

func (l *Lab) saveManifest() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saveManifestLocked()
}

func (l *Lab) saveManifestLocked() error {
	b, err := json.MarshalIndent(l.man, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(l.Dir, manifestName)
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// recordPid adds a started process to the manifest.
func (l *Lab) recordPid(name string, pid int) error {
	_, start, err := procStat(pid)
	if err != nil {
		return fmt.Errorf("%s (pid %d) is gone: %w", name, pid, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.man.Procs = append(l.man.Procs, manifestProc{Name: name, Pid: pid, Start: start})
	return l.saveManifestLocked()
}

func readManifest(dir string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// CleanupStale tears down every lab under /tmp/sylab-* whose creating
// process is dead (a test binary killed hard, a timeout panic): it stops the
// lab's processes by their recorded pid (checking the pid still names the
// same process), deletes its namespaces and removes its directory. Labs kept
// with SWITCHYARD_KEEP_LAB=1 are left alone unless
// SWITCHYARD_CLEAN_KEPT_LABS=1. Labs of live test processes are never
// touched. New calls it first.
func CleanupStale() error {
	dirs, err := filepath.Glob(filepath.Join(RootDir, dirPrefix+"*"))
	if err != nil {
		return err
	}
	cleanKept := os.Getenv(EnvCleanKept) == "1"
	var errs []error
	for _, dir := range dirs {
		m, err := readManifest(dir)
		if err != nil {
			// Not a lab, or one between Mkdir and its first manifest: skip.
			continue
		}
		if m.ID == "" || filepath.Base(dir) != dirPrefix+m.ID {
			continue
		}
		if alive(m.CreatorPid, m.CreatorStart) || (m.Kept && !cleanKept) {
			continue
		}
		if err := withDirLock(dir, func() error { return teardown(m, dir) }); err != nil {
			errs = append(errs, fmt.Errorf("stale lab %s: %w", m.ID, err))
		}
	}
	return errors.Join(errs...)
}

// withDirLock runs f holding an exclusive flock on dir; when another
// process holds it (cleaning the same lab), f is skipped.
func withDirLock(dir string, f func() error) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil // gone already
	}
	defer syscall.Close(fd)
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil
	}
	return f()
}

// etcNetns is where `ip netns exec` finds a namespace's own /etc files.
const etcNetns = "/etc/netns"

// teardown removes what a manifest names: its processes (newest first, by
// pid), every process left inside its namespaces, the namespaces (listed
// and prefixed) with their /etc/netns directories, root-namespace links
// named "sy<id>*", and dir.
func teardown(m manifest, dir string) error {
	var errs []error
	for i := len(m.Procs) - 1; i >= 0; i-- {
		p := m.Procs[i]
		if err := stopPid(p.Pid, p.Start, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	prefix := NetnsPrefix(m.ID)
	names, err := listNetns(prefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range m.Netns {
		if strings.HasPrefix(n, prefix) && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, n := range names {
		if err := deleteNetns(n); err != nil {
			errs = append(errs, err)
		}
	}
	// The agents' node-local DNS writes a managed sandbox's resolv.conf
	// into /etc/netns/<sandbox> (the lab's prefix).
	if etc, err := os.ReadDir(etcNetns); err == nil {
		for _, e := range etc {
			if strings.HasPrefix(e.Name(), prefix) {
				if err := os.RemoveAll(filepath.Join(etcNetns, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := deleteRootLinks("sy" + m.ID); err != nil {
		errs = append(errs, err)
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteRootLinks deletes links in the root namespace whose names start
// with prefix. The lab makes none there; a test or agent that makes links
// in the root namespace should name them "sy<id>..." so they go with the lab.
func deleteRootLinks(prefix string) error {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := deleteLink(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
