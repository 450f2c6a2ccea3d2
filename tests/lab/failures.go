package lab

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// Faults the failure-matrix tests inject (docs/failure-matrix.md): a host
// cut off from the controller, a paused process, ovs-vswitchd down for as
// long as the test wants.

// partitionTable is the nftables table (family inet) of Partition, inside
// the host's namespace; the agent's own table (ip switchyard) is another.
const partitionTable = "sylab_partition"

// Partition drops, inside the host's namespace, every TCP packet to and
// from addr (host:port, the controller as the agents reach it: the relay of
// Lab.Expose): no RST, no ICMP, as a pulled cable or a firewall that drops
// would. Tunnels are untouched: OVS carries them between the hosts'
// underlay addresses on other ports. Heal undoes it; the test's end heals
// too.
func (h *Host) Partition(t T, addr string) {
	t.Helper()
	ip, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: partition from %q: %v", h.Name, addr, err)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain out { type filter hook output priority -10; policy accept; ip daddr %[2]s tcp dport %[3]s drop; }
	chain in { type filter hook input priority -10; policy accept; ip saddr %[2]s tcp sport %[3]s drop; }
}
`, partitionTable, ip, port)
	h.nftScript(t, rules)
	t.Cleanup(func() { h.heal() })
}

// Heal removes the partition (a no-op without one).
func (h *Host) Heal(t T) {
	t.Helper()
	if err := h.heal(); err != nil {
		t.Fatalf("%s: heal: %v", h.Name, err)
	}
}

func (h *Host) heal() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := runIn(ctx, h.Netns, nil, "nft", "list", "table", "inet", partitionTable); err != nil {
		return nil // no partition (or no namespace any more)
	}
	_, err := runIn(ctx, h.Netns, nil, "nft", "delete", "table", "inet", partitionTable)
	return err
}

// nftScript runs an nft script in the host's namespace.
func (h *Host) nftScript(t T, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := command(ctx, h.Netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: nft: %v: %s\n%s", h.Name, err, out, script)
	}
}

// StopOVS stops ovs-vswitchd (SIGKILL when kill, else SIGTERM) and waits
// until it is gone; StartOVS starts it again. Between the two the test can
// look at what the agent does while the switch is away.
func (h *Host) StopOVS(t T, kill bool) { h.stopDaemon(t, &h.vswitchd, "ovs-vswitchd", kill) }

// StartOVS starts ovs-vswitchd (after StopOVS) and waits until it answers.
func (h *Host) StartOVS(t T) { h.startAgain(t, "ovs-vswitchd", h.startVSwitchd) }

// StopOVSDB kills (SIGKILL) this host's ovsdb-server and waits until it
// is gone; StartOVSDB starts it again on the same database file.
func (h *Host) StopOVSDB(t T) { h.stopDaemon(t, &h.ovsdb, "ovsdb-server", true) }

// StartOVSDB starts ovsdb-server (after StopOVSDB) and waits until it
// answers.
func (h *Host) StartOVSDB(t T) { h.startAgain(t, "ovsdb-server", h.startOVSDB) }

// stopDaemon stops the daemon *d (SIGKILL when kill, else SIGTERM and
// SIGKILL after 10 s) and waits until it is gone.
func (h *Host) stopDaemon(t T, d *manifestProc, name string, kill bool) {
	t.Helper()
	h.mu.Lock()
	p := *d
	*d = manifestProc{}
	h.mu.Unlock()
	if kill && alive(p.Pid, p.Start) {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	if err := stopPid(p.Pid, p.Start, 10*time.Second); err != nil {
		t.Fatalf("%s: stopping %s: %v", h.Name, name, err)
	}
}

func (h *Host) startAgain(t T, name string, start func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := start(ctx); err != nil {
		t.Fatalf("%s: starting %s: %v", h.Name, name, err)
	}
}

// OtherConfig is the value of key in the host's Open_vSwitch other_config,
// "" when unset.
func (h *Host) OtherConfig(t T, key string) string {
	t.Helper()
	out, err := h.Run(context.Background(), "ovs-vsctl", "--db="+h.DB, "--if-exists", "get", "Open_vSwitch", ".", "other_config:"+key)
	if err != nil {
		t.Fatalf("%s: other_config:%s: %v", h.Name, key, err)
	}
	return strings.Trim(strings.TrimSpace(out), `"`)
}

// Pause stops the process with SIGSTOP (a stuck process: its sockets stay
// open, nothing answers); Resume continues it. The test's end resumes it,
// so that it can be stopped.
func (p *Proc) Pause(t T) {
	t.Helper()
	p.sendSignal(t, syscall.SIGSTOP)
	t.Cleanup(func() {
		if cmd, _ := p.current(); cmd != nil && !p.Exited() {
			_ = cmd.Process.Signal(syscall.SIGCONT)
		}
	})
}

// Resume continues a paused process.
func (p *Proc) Resume(t T) {
	t.Helper()
	p.sendSignal(t, syscall.SIGCONT)
}

func (p *Proc) sendSignal(t T, sig syscall.Signal) {
	t.Helper()
	cmd, _ := p.current()
	if cmd == nil || p.Exited() {
		t.Fatalf("%s: not running", p.Name())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", p.Name(), sig, err)
	}
}
