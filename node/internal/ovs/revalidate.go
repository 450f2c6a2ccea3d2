package ovs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Datapath caches after a flow change. ovs-vswitchd forwards most packets
// from its datapath flow cache (megaflows) and brings the cache in line
// with a changed flow table asynchronously, in its revalidator threads. So
// when a bundle is committed, packets may still take the old path for a
// while: the policy e2e suite saw a probe pass a policy already reported
// applied, and (VXLAN, userspace datapath) a dropped flow kept alive by the
// traffic it dropped until it idled out. An applied change must be in
// force, so after a bundle that changed flows the adapter purges the cache
// (revalidator/purge, over ovs-vswitchd's unixctl socket: JSON-RPC, no
// process): the next packets are classified by the new table.
// revalidator/wait was tried for changes that only add flows: when the
// round the change started had already ended, it waited for the next
// periodic one (BenchmarkApplyOneChange p99 503 ms). The price of the
// purge: each active datapath flow of the host goes through one upcall
// after every change; with no active flows it costs about 0.1 ms.

// purgeDatapath drops ovs-vswitchd's datapath flow cache, so that packets
// are classified by the flows just committed.
func (a *Switch) purgeDatapath(ctx context.Context) error {
	sock, err := a.vswitchdCtl()
	if err != nil {
		return err
	}
	return unixctl(ctx, sock, "revalidator/purge")
}

// vswitchdCtl finds ovs-vswitchd's unixctl socket in the run dir: the
// packaged daemon's ovs-vswitchd.<pid>.ctl (pid from ovs-vswitchd.pid), or
// a vswitchd.ctl given with --unixctl (the lab's).
func (a *Switch) vswitchdCtl() (string, error) {
	if a.opts.VSwitchdCtl != "" {
		return a.opts.VSwitchdCtl, nil
	}
	dir := a.opts.RunDir
	if b, err := os.ReadFile(filepath.Join(dir, "ovs-vswitchd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			p := filepath.Join(dir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid))
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	p := filepath.Join(dir, "vswitchd.ctl")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no ovs-vswitchd unixctl socket in %s", dir)
}

// unixctl runs one ovs-appctl command without arguments over sock.
func unixctl(ctx context.Context, sock, method string) error {
	return unixctlArgs(ctx, sock, method)
}

// unixctlArgs calls method with params on the unixctl socket sock.
func unixctlArgs(ctx context.Context, sock, method string, params ...string) error {
	_, err := unixctlCall(ctx, sock, method, params...)
	return err
}
