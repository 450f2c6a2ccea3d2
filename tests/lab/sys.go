package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NetnsDir is where iproute2 keeps named namespaces.
const NetnsDir = "/run/netns"

// run runs a command in the root namespace with extra env, combined output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	return runIn(ctx, "", env, name, args...)
}

// runIn runs a command inside netns ("" = the root namespace) with extra
// env and returns its combined output. The error names the command and
// carries the output.
func runIn(ctx context.Context, netns string, env []string, name string, args ...string) (string, error) {
	cmd := command(ctx, netns, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		where := ""
		if netns != "" {
			where = " (netns " + netns + ")"
		}
		err = fmt.Errorf("%s %s%s: %v: %s", name, strings.Join(args, " "), where, err, strings.TrimSpace(out.String()))
	}
	return out.String(), err
}

// command builds the exec.Cmd for name run inside netns. `ip netns exec`
// execs the program without forking, so the child's pid is the program's.
func command(ctx context.Context, netns, name string, args ...string) *exec.Cmd {
	if netns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	// nsenter enters the network namespace only. (`ip netns exec` also
	// makes a private mount namespace, where the agent's managed sandboxes,
	// bind mounts under /run/netns, would be invisible to everyone else.)
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + filepath.Join(NetnsDir, netns), "--", name}, args...)...)
}

// listNetns lists named namespaces whose names start with prefix.
func listNetns(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// deleteNetns stops every process still inside the namespace (by pid), then
// deletes it. A namespace that does not exist is not an error.
func deleteNetns(name string) error {
	if _, err := os.Stat(filepath.Join(NetnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	if err := stopNetnsProcs(name); err != nil {
		errs = append(errs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := run(ctx, nil, "ip", "netns", "delete", name); err != nil {
		if _, serr := os.Stat(filepath.Join(NetnsDir, name)); !errors.Is(serr, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// netnsPids lists the processes (other than this one) whose network
// namespace is the named one.
func netnsPids(name string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(filepath.Join(NetnsDir, name), &want); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if st.Ino == want.Ino && st.Dev == want.Dev {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// stopNetnsProcs stops, by pid, every process living in the namespace.
func stopNetnsProcs(name string) error {
	pids, err := netnsPids(name)
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		_, start, err := procStat(pid)
		if err != nil {
			continue
		}
		if err := stopPid(pid, start, 3*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("netns %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// procStat returns a process's state letter and start time (clock ticks
// since boot, field 22 of /proc/<pid>/stat). The pair (pid, start) names a
// process unambiguously, even after pid reuse.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("pid %d: odd /proc stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("pid %d: odd /proc stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

// alive reports whether process (pid, start) still runs. A zombie counts
// as gone; start 0 means "any process with this pid".
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, s, err := procStat(pid)
	if err != nil || st == 'Z' || st == 'X' {
		return false
	}
	return start == 0 || s == start
}

// stopPid sends SIGTERM to process (pid, start), waits up to grace for it
// to go, then sends SIGKILL and waits again. It never signals a pid that
// now names another process.
func stopPid(pid int, start uint64, grace time.Duration) error {
	if !alive(pid, start) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, start, grace) {
		return nil
	}
	if alive(pid, start) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// A killed ovs-vswitchd with 1,000 ports spends seconds in the kernel
	// closing them (state D), longer when ten of them exit at once.
	if waitGone(pid, start, killWait) {
		return nil
	}
	return fmt.Errorf("pid %d survived SIGKILL", pid)
}

// killWait is how long stopPid waits for a process to go after SIGKILL.
const killWait = time.Minute

func waitGone(pid int, start uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !alive(pid, start) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPidfile reads an OVS pidfile, waiting up to d for it to appear.
func readPidfile(path string, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				return pid, nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("bad pidfile %q", b)
			}
			return 0, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deleteLink deletes a link in the root namespace; a missing link is fine.
func deleteLink(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := run(ctx, nil, "ip", "link", "delete", name); err != nil {
		if _, serr := os.Stat(filepath.Join("/sys/class/net", name)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// RunIn runs a command inside netns ("" = the root namespace) and returns
// its combined output; the error carries the output too.
func RunIn(ctx context.Context, netns, name string, args ...string) (string, error) {
	return runIn(ctx, netns, nil, name, args...)
}
