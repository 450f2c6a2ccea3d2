// Package lab is the end-to-end test harness of Switchyard: it brings up N
// simulated hosts on one Linux machine, each a network namespace with its own
// ovsdb-server and ovs-vswitchd (userspace datapath, see shared/LAB.md),
// joined by an underlay Linux bridge living in a namespace of its own, and
// tears everything down again by pid, even when a test fails or a previous
// test binary was killed hard (see CleanupStale).
//
// The lab only builds hosts: it makes no OVS bridges, tunnels, flows or
// containers. That is the agent's job (and the self-test's). It must never
// stop a process by name, touch the system OVS, or delete a namespace, link
// or directory whose name does not carry its own lab id.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options tunes New. The zero value gives two hosts on 192.168.200.0/24.
type Options struct {
	// Hosts is the number of hosts, default 2.
	Hosts int
	// Tunnel is "geneve" (default) or "vxlan". It is recorded for the tests;
	// the lab itself makes no tunnels.
	Tunnel string
	// Subnet is the underlay; host i gets address .(10+i), e.g.
	// h1 = 192.168.200.11/24. Default 192.168.200.0/24.
	Subnet netip.Prefix
	// MTU of the underlay links, default 1500.
	MTU int
	// Management gives every host a second link, mg0, on a management
	// network of its own (MgmtSubnet, a second bridge in the underlay
	// namespace, outside OVS), and Expose serves there: the agents' traffic
	// to the controller then never crosses a switch, as on hosts whose
	// userspace datapath has a NIC of its own. Off: it goes over the
	// underlay, through each host's br-phy (the userspace datapath).
	Management bool
}

// MgmtSubnet is the management network of a lab made with
// Options.Management: host i gets .(10+i), Expose serves at .1.
var MgmtSubnet = netip.MustParsePrefix("192.168.201.0/24")

// mgmtBridge is the management network's bridge, in the underlay namespace.
const mgmtBridge = "br1"

// Lab is a set of simulated hosts sharing one underlay.
type Lab struct {
	// ID is the short random id used in every name (netns, dirs), e.g. "a1b2".
	ID string
	// Dir is the root run dir, /tmp/sylab-<ID>.
	Dir string
	// Underlay is the netns holding the underlay Linux bridge (UnderlayBridge).
	Underlay string
	// UnderlayBridge is the name of the Linux bridge inside Underlay.
	UnderlayBridge string
	// Tunnel is Options.Tunnel with its default applied.
	Tunnel string
	// Subnet is the underlay prefix.
	Subnet netip.Prefix
	// MTU is the underlay MTU.
	MTU   int
	Hosts []*Host
	// Management is Options.Management.
	Management bool

	mu       sync.Mutex
	procs    []*Proc
	logNames map[string]bool
	man      manifest
	dumped   bool
	closed   bool
	// gatewaySet is true once Expose has put Gateway on the underlay bridge.
	gatewaySet bool
	// outside is the lab's outside once AddOutside made it.
	outside *Outside
}

// Prefix is the prefix of every netns this lab owns, "sy-<ID>-". The agent's
// managed sandboxes created with this prefix are deleted with the lab.
func (l *Lab) Prefix() string { return NetnsPrefix(l.ID) }

// NetnsPrefix is the netns name prefix of the lab with the given id.
func NetnsPrefix(id string) string { return "sy-" + id + "-" }

// Host returns the host with the given name ("h1", ...), or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// RootDir is where labs keep their run directories, one /tmp/sylab-<id> each.
const RootDir = "/tmp"

const dirPrefix = "sylab-"

// RunDir is the run directory of the lab with the given id while it exists.
func RunDir(id string) string { return filepath.Join(RootDir, dirPrefix+id) }

// Env variables the lab reads.
const (
	// EnvKeep, when "1", keeps a failed test's lab (OVS daemons, namespaces
	// and Dir) for inspection by hand; CleanupStale then leaves it alone.
	EnvKeep = "SWITCHYARD_KEEP_LAB"
	// EnvCleanKept, when "1", makes CleanupStale remove kept labs too.
	EnvCleanKept = "SWITCHYARD_CLEAN_KEPT_LABS"
)

// testHookAfterHost, when set (by tests), runs after each host is built;
// an error makes New fail there, to exercise cleanup of a partial lab.
var testHookAfterHost func(l *Lab, i int) error

// requiredBins are the programs New needs on PATH.
var requiredBins = []string{"ip", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"}

// SchemaPath is the OVSDB schema every host's database is created from.
var SchemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// Requirements returns why the lab cannot run on this machine, or nil.
func Requirements() error {
	if os.Geteuid() != 0 {
		return errors.New("lab needs root (network namespaces, veths, OVS)")
	}
	var missing []string
	for _, b := range requiredBins {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab needs %s on PATH (Debian: openvswitch-switch, iproute2, ethtool)", strings.Join(missing, ", "))
	}
	if _, err := os.Stat(SchemaPath); err != nil {
		return fmt.Errorf("lab needs the OVSDB schema: %v", err)
	}
	return nil
}

// skipOrFatal skips the test with reason, or fails it when CI=true.
func skipOrFatal(t T, reason error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("lab: %v (CI=true, not skipping)", reason)
	}
	t.Skipf("lab: %v", reason)
}

// New brings up a lab: the underlay namespace and bridge, then every host's
// namespace, underlay veth and OVS daemons. t.Cleanup tears it all down
// (after DumpOnFailure). New skips the test when the machine cannot run a
// lab (not root, OVS missing), but fails it instead when env CI=true.
func New(t T, o Options) *Lab {
	t.Helper()
	if err := Requirements(); err != nil {
		skipOrFatal(t, err)
	}
	if err := o.defaults(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := CleanupStale(); err != nil {
		t.Logf("lab: cleaning stale labs: %v", err)
	}
	l, err := allocate()
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	l.Tunnel, l.Subnet, l.MTU, l.Management = o.Tunnel, o.Subnet, o.MTU, o.Management
	// Cleanup is registered before anything is built, so a failure halfway
	// through New still tears down what exists.
	t.Cleanup(func() { l.close(t) })
	t.Logf("lab %s: %d hosts, %s underlay %s, run dir %s", l.ID, o.Hosts, o.Tunnel, o.Subnet, l.Dir)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.buildUnderlay(ctx); err != nil {
		t.Fatalf("lab %s: underlay: %v", l.ID, err)
	}
	for i := 1; i <= o.Hosts; i++ {
		h, err := l.addHost(ctx, i)
		if h != nil {
			l.Hosts = append(l.Hosts, h)
		}
		if err == nil && testHookAfterHost != nil {
			err = testHookAfterHost(l, i)
		}
		if err != nil {
			t.Fatalf("lab %s: host h%d: %v", l.ID, i, err)
		}
	}
	return l
}

func (o *Options) defaults() error {
	if o.Hosts == 0 {
		o.Hosts = 2
	}
	if o.Hosts < 0 || o.Hosts > 200 {
		return fmt.Errorf("Hosts = %d, want 1..200", o.Hosts)
	}
	switch o.Tunnel {
	case "":
		o.Tunnel = "geneve"
	case "geneve", "vxlan":
	default:
		return fmt.Errorf("Tunnel = %q, want geneve or vxlan", o.Tunnel)
	}
	if !o.Subnet.IsValid() {
		o.Subnet = netip.MustParsePrefix("192.168.200.0/24")
	}
	o.Subnet = o.Subnet.Masked()
	if !o.Subnet.Addr().Is4() || o.Subnet.Bits() > 24 {
		return fmt.Errorf("Subnet = %s, want an IPv4 prefix of /24 or wider", o.Subnet)
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	return nil
}

// allocate picks a fresh id, creates the run dir and writes the manifest.
// The directory is created with Mkdir, so two labs never share an id.
func allocate() (*Lab, error) {
	for try := 0; try < 20; try++ {
		b := make([]byte, 2)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		id := hex.EncodeToString(b)
		dir := RunDir(id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return nil, err
		}
		if names, _ := listNetns(NetnsPrefix(id)); len(names) > 0 {
			// Someone else's leftovers with this id: leave them, pick another.
			_ = os.Remove(dir)
			continue
		}
		l := &Lab{ID: id, Dir: dir, logNames: map[string]bool{}}
		l.man = newManifest(id)
		if err := l.saveManifest(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		return l, nil
	}
	return nil, errors.New("no free lab id after 20 tries")
}

// offsetAddr is the subnet's base address plus n.
func (l *Lab) offsetAddr(n int) netip.Addr {
	a := l.Subnet.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// hostAddr is the underlay address of host i (1-based): .(10+i).
func (l *Lab) hostAddr(i int) (netip.Prefix, error) {
	addr := l.offsetAddr(10 + i)
	if !l.Subnet.Contains(addr) {
		return netip.Prefix{}, fmt.Errorf("host %d does not fit in %s", i, l.Subnet)
	}
	return netip.PrefixFrom(addr, l.Subnet.Bits()), nil
}

func (l *Lab) buildUnderlay(ctx context.Context) error {
	l.Underlay = l.Prefix() + "ul"
	l.UnderlayBridge = "br0"
	if err := l.addNetns(ctx, l.Underlay); err != nil {
		return err
	}
	bridges := []string{l.UnderlayBridge}
	if l.Management {
		bridges = append(bridges, mgmtBridge)
	}
	for _, br := range bridges {
		if _, err := runIn(ctx, l.Underlay, nil, "ip", "link", "add", br, "type", "bridge"); err != nil {
			return err
		}
		if _, err := runIn(ctx, l.Underlay, nil, "ip", "link", "set", br, "mtu", fmt.Sprint(l.MTU), "up"); err != nil {
			return err
		}
	}
	if !l.Management {
		return nil
	}
	_, err := runIn(ctx, l.Underlay, nil, "ip", "addr", "add",
		netip.PrefixFrom(MgmtSubnet.Addr().Next(), MgmtSubnet.Bits()).String(), "dev", mgmtBridge)
	return err
}

// addNetns creates a namespace with lo up and records it in the manifest
// first, so that it is cleaned even if creation fails halfway.
func (l *Lab) addNetns(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, l.Prefix()) {
		return fmt.Errorf("netns %q lacks the lab prefix %q", name, l.Prefix())
	}
	l.mu.Lock()
	l.man.Netns = append(l.man.Netns, name)
	err := l.saveManifestLocked()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := run(ctx, nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err = runIn(ctx, name, nil, "ip", "link", "set", "lo", "up")
	return err
}

// NewNetns creates the namespace "sy-<ID>-<suffix>" (lo up) and returns its
// name; its path is /run/netns/<name>. It is deleted when t ends (and with
// the lab at the latest).
func (l *Lab) NewNetns(t T, suffix string) string {
	t.Helper()
	name := l.Prefix() + suffix
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() {
		if err := deleteNetns(name); err != nil {
			t.Logf("lab %s: %v", l.ID, err)
		}
	})
	if err := l.addNetns(ctx, name); err != nil {
		t.Fatalf("lab %s: netns %s: %v", l.ID, name, err)
	}
	return name
}
