package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// close is the lab's t.Cleanup: dump on failure, stop the test's processes,
// then (unless the lab is kept) each host's OVS, the namespaces, leftover
// links and the run dir. It copes with a lab that New built only partly.
func (l *Lab) close(t T) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	procs := append([]*Proc(nil), l.procs...)
	l.mu.Unlock()

	l.DumpOnFailure(t)
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	if t.Failed() && os.Getenv(EnvKeep) == "1" {
		l.keep(t)
		return
	}
	var errs []error
	for _, h := range l.Hosts {
		if err := h.stopOVS(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		}
	}
	l.mu.Lock()
	m := l.man
	l.mu.Unlock()
	if err := teardown(m, l.Dir); err != nil {
		errs = append(errs, err)
	}
	if left, _ := listNetns(l.Prefix()); len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces left: %v", left))
	}
	for _, p := range m.Procs {
		if alive(p.Pid, p.Start) {
			errs = append(errs, fmt.Errorf("%s (pid %d) still alive", p.Name, p.Pid))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("lab %s teardown: %v", l.ID, err)
	}
}

// keep leaves a failed test's lab in place (OVS daemons, namespaces, Dir)
// and tells how to inspect and remove it.
func (l *Lab) keep(t T) {
	l.mu.Lock()
	l.man.Kept = true
	err := l.saveManifestLocked()
	l.mu.Unlock()
	if err != nil {
		t.Logf("lab %s: marking kept: %v", l.ID, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s KEPT (%s=1): run dir %s, underlay netns %s\n", l.ID, EnvKeep, l.Dir, l.Underlay)
	for _, h := range l.Hosts {
		fmt.Fprintf(&b, "  %s: ip netns exec %s bash; OVS_RUNDIR=%s ovs-ofctl -O OpenFlow15 dump-flows br-int; ovs-vsctl --db=%s show\n",
			h.Name, h.Netns, h.Dir, h.DB)
	}
	fmt.Fprintf(&b, "  remove it with: %s=1 go test ./tests/lab -run TestCleanupStale", EnvCleanKept)
	t.Log(b.String())
}

// DumpOnFailure, when t has failed, logs for every host `ovs-vsctl show`,
// the flows of br-int and br-phy, br-int's groups, its addresses, routes,
// neighbours and nftables ruleset (the external-access NAT), its datapath
// (ovs-vswitchd's drop, upcall and recirculation counters, conntrack and
// datapath flows, both capped), the outside's
// addresses and neighbours (when there is one), and the tail of every log
// in the lab (OVS daemons and Procs). New registers it in cleanup
// already; calling it earlier is harmless (it dumps once).
func (l *Lab) DumpOnFailure(t T) {
	if !t.Failed() {
		return
	}
	l.mu.Lock()
	if l.dumped {
		l.mu.Unlock()
		return
	}
	l.dumped = true
	l.mu.Unlock()
	t.Log(l.Dump())
}

// Dump returns the state of every host and the tail of every log.
func (l *Lab) Dump() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "===== lab %s dump (dir %s) =====\n", l.ID, l.Dir)
	for _, h := range l.Hosts {
		cmds := [][]string{
			{"ovs-vsctl", "--db=" + h.DB, "--timeout=5", "show"},
			{"ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int"},
			{"ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "br-int"},
			{"ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-phy"},
			{"ip", "-br", "addr"},
			{"ip", "route"},
			{"ip", "neigh"},
			{"nft", "list", "ruleset"},
			{"ovs-appctl", "-t", h.CtlSocket(), "coverage/show"},
			{"ovs-appctl", "-t", h.CtlSocket(), "dpctl/dump-conntrack"},
			{"ovs-appctl", "-t", h.CtlSocket(), "dpctl/dump-flows"},
		}
		for _, c := range cmds {
			out, err := h.Run(ctx, c[0], c[1:]...)
			if err != nil {
				out = err.Error()
			}
			fmt.Fprintf(&b, "----- %s: %s\n%s\n", h.Name, strings.Join(c, " "), dumpFilter(c, strings.TrimSpace(out)))
		}
	}
	if o := l.Outside(); o != nil {
		for _, c := range [][]string{{"ip", "-br", "addr"}, {"ip", "neigh"}} {
			out, err := o.Run(ctx, c[0], c[1:]...)
			if err != nil {
				out = err.Error()
			}
			fmt.Fprintf(&b, "----- outside: %s\n%s\n", strings.Join(c, " "), strings.TrimSpace(out))
		}
	}
	logs, _ := filepath.Glob(filepath.Join(l.Dir, "*.log"))
	hostLogs, _ := filepath.Glob(filepath.Join(l.Dir, "*", "*.log"))
	logs = append(logs, hostLogs...)
	sort.Strings(logs)
	for _, p := range logs {
		fmt.Fprintf(&b, "----- tail %s\n%s\n", p, tail(p, 40))
	}
	return b.String()
}

// dumpLines bounds a datapath listing (conntrack, datapath flows) in a dump.
const dumpLines = 150

// dumpFilter keeps what tells a lost packet in a datapath command's output:
// of coverage/show, the counters of drops, lost upcalls, recirculation and
// revalidation (the rest is noise); conntrack and datapath flows are capped
// at dumpLines. Other commands pass unchanged.
func dumpFilter(cmd []string, out string) string {
	lines := strings.Split(out, "\n")
	switch cmd[len(cmd)-1] {
	case "coverage/show":
		var keep []string
		for _, l := range lines {
			if strings.Contains(l, "total:") && (strings.Contains(l, "drop") || strings.Contains(l, "lost") ||
				strings.Contains(l, "recirc") || strings.Contains(l, "revalidate") || strings.Contains(l, "upcall") ||
				strings.Contains(l, "fail") || strings.Contains(l, "miss")) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	case "dpctl/dump-conntrack", "dpctl/dump-flows":
		if len(lines) > dumpLines {
			return strings.Join(lines[:dumpLines], "\n") + fmt.Sprintf("\n... (%d more lines)", len(lines)-dumpLines)
		}
	}
	return out
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
