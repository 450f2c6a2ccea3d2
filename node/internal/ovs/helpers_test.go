package ovs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// Test programs are written by hand here: the point is the applier, not
// the compiler. One network 10.60.0.0/24 (VNI 5001); container i has IP
// 10.60.0.i and MAC 02:00:00:00:00:i. Table 0 answers ARP for every known
// IP and admits container and tunnel traffic; table 1 forwards by dl_dst.

const testVNI = 5001

type ctr struct {
	n     int    // 1..250, picks IP and MAC
	host  string // lab host name
	netns string // "" = managed sandbox
}

func (c ctr) name() string { return fmt.Sprintf("c%d", c.n) }
func (c ctr) port() string { return fmt.Sprintf("vc%d", c.n) }
func (c ctr) ip() string   { return fmt.Sprintf("10.60.0.%d", c.n) }
func (c ctr) mac() string  { return fmt.Sprintf("02:00:00:00:00:%02x", c.n) }

func (c ctr) containerPort() openapi.ContainerPort {
	return openapi.ContainerPort{
		Name: c.port(), Container: c.name(), ID: "id-" + c.name(), Network: "net1",
		Netns: c.netns, Sandbox: c.name(), IP: c.ip(), PrefixLen: 24, MAC: c.mac(),
		Gateway: "10.60.0.254", MTU: 1400,
	}
}

func tunnelName(peer string) string { return "tun-" + peer }

// arpResponder answers ARP requests for c's IP with c's MAC.
func arpResponder(c ctr) openapi.Flow {
	mac := strings.ReplaceAll(c.mac(), ":", "")
	ip, _ := netip.ParseAddr(c.ip())
	b := ip.As4()
	return openapi.Flow{Table: 0, Priority: 200, Cookie: 0xa000 + uint64(c.n),
		Match: "arp,arp_op=1,arp_tpa=" + c.ip(),
		Actions: "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:" + c.mac() + "->eth_src," +
			"set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],load:0x" + mac + "->NXM_NX_ARP_SHA[]," +
			"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," + fmt.Sprintf("load:0x%02x%02x%02x%02x->NXM_OF_ARP_SPA[]", b[0], b[1], b[2], b[3]) +
			",in_port"}
}

// program builds host's program for all containers (local ones get ports,
// remote ones are reached through the tunnel to their host).
func program(host string, rev int64, all []ctr, peers map[string]string, tunnelType string) *openapi.Program {
	p := &openapi.Program{Host: host, Revision: rev, Digest: fmt.Sprintf("rev%d", rev),
		Bridge: openapi.BridgeSpec{Name: "br-int", FailMode: "secure"}}
	for _, peer := range sortedKeys(peers) {
		tn := tunnelName(peer)
		p.Tunnels = append(p.Tunnels, openapi.TunnelPort{Name: tn, Type: tunnelType, PeerHost: peer, RemoteIP: peers[peer]})
		p.Flows = append(p.Flows, openapi.Flow{Table: 0, Priority: 100, Cookie: 0xb000,
			Match: fmt.Sprintf("in_port=${port:%s},tun_id=%d", tn, testVNI), Actions: "resubmit(,1)"})
	}
	for _, c := range all {
		p.Flows = append(p.Flows, arpResponder(c))
		if c.host == host {
			p.Containers = append(p.Containers, c.containerPort())
			p.Flows = append(p.Flows,
				openapi.Flow{Table: 0, Priority: 100, Cookie: 0xc000 + uint64(c.n),
					Match: fmt.Sprintf("in_port=${port:%s},dl_src=%s", c.port(), c.mac()), Actions: "resubmit(,1)"},
				openapi.Flow{Table: 1, Priority: 100, Cookie: 0xd000 + uint64(c.n),
					Match: "dl_dst=" + c.mac(), Actions: fmt.Sprintf("output:${port:%s}", c.port())})
		} else {
			p.Flows = append(p.Flows, openapi.Flow{Table: 1, Priority: 100, Cookie: 0xd000 + uint64(c.n),
				Match:   "dl_dst=" + c.mac(),
				Actions: fmt.Sprintf("set_field:%d->tun_id,output:${port:%s}", testVNI, tunnelName(c.host))})
		}
	}
	return p
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// newLab brings up a lab and dumps it when the test fails.
func newLab(t *testing.T, hosts int, tunnel string) *lab.Lab {
	t.Helper()
	l := lab.New(t, lab.Options{Hosts: hosts, Tunnel: tunnel})
	t.Cleanup(func() { l.DumpOnFailure(t) })
	return l
}

// sandboxPrefix is the managed-sandbox prefix of a lab host: it carries the
// lab's prefix, so the lab deletes leftovers, and the host's name, so that
// hosts (sharing one /run/netns) never prune each other's sandboxes.
func sandboxPrefix(l *lab.Lab, h *lab.Host) string { return l.Prefix() + h.Name + "-" }

// newApplier connects an applier to a lab host, as the agent inside the
// host's namespace would.
func newApplier(t testing.TB, l *lab.Lab, h *lab.Host, mods ...func(*Options)) *Applier {
	t.Helper()
	var o Options
	for _, m := range mods {
		m(&o)
	}
	return newApplierWith(t, l, h, o)
}

// newApplierWith is newApplier with opts (the lab's fields are set here).
func newApplierWith(t testing.TB, l *lab.Lab, h *lab.Host, opts Options) *Applier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.DB, opts.RunDir, opts.Datapath = h.DB, h.Dir, "netdev"
	opts.HostNetns, opts.SandboxPrefix = "/run/netns/"+h.Netns, sandboxPrefix(l, h)
	a, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// seal sets p.Digest to a hash of p's content, as the controller does.
// genApplier is an applier for a one-host lab's h1, with its generation.
func genApplier(t *testing.T) (*lab.Host, *Applier) {
	t.Helper()
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newApplier(t, l, h)
	if _, err := a.NewGeneration(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h, a
}

func seal(p *openapi.Program) *openapi.Program {
	p.Digest = ""
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	p.Digest = hex.EncodeToString(sum[:8])
	return p
}

func apply(t testing.TB, a *Applier, p *openapi.Program) ApplyResult {
	t.Helper()
	seal(p)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := a.Apply(ctx, p)
	if err != nil {
		t.Fatalf("Apply rev %d: %v", p.Revision, err)
	}
	return res
}

func observe(t testing.TB, a *Applier) Observed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := a.Observe(ctx)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return o
}

func sandbox(l *lab.Lab, h *lab.Host, c ctr) string { return sandboxPrefix(l, h) + c.name() }

func ping(t *testing.T, from string, to ctr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := lab.Ping(ctx, from, to.ip(), 3, 100*time.Millisecond)
	if err != nil || r.Received == 0 {
		t.Fatalf("ping %s from %s: %v\n%s", to.ip(), from, err, r.Output)
	}
}

var stats = regexp.MustCompile(`\s*(duration|n_packets|n_bytes|idle_age|hard_age|idle_time)=[^,\s]*,?`)

// flows dumps br-int's flows without statistics, sorted, with port names.
func flows(t testing.TB, h *lab.Host) []string {
	t.Helper()
	return flowsOn(t, h, "br-int")
}

// flowsOn is flows for any bridge of h.
func flowsOn(t testing.TB, h *lab.Host, bridge string) []string {
	t.Helper()
	out := h.OFCtl(t, "--names", "--no-stats", "dump-flows", bridge)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(stats.ReplaceAllString(l, ""))
		if l != "" && !strings.HasPrefix(l, "NXST_FLOW") && !strings.HasPrefix(l, "OFPST_FLOW") {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

// ports lists br-int's ports, sorted.
func ports(t testing.TB, h *lab.Host) []string {
	t.Helper()
	out := strings.Fields(h.VSCtl(t, "list-ports", "br-int"))
	slices.Sort(out)
	return out
}

func ofports(res ApplyResult) map[string]int {
	m := map[string]int{}
	for _, p := range res.Ports {
		m[p.Name] = p.OFPort
	}
	return m
}

func portErrors(res ApplyResult) map[string]string {
	m := map[string]string{}
	for _, p := range res.Ports {
		if p.Error != "" {
			m[p.Name] = p.Error
		}
	}
	return m
}
