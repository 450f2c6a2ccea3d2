// Package testprog writes the programs the datapath's tests apply (package
// ovs and package converge) by hand, and reads a lab host's tables: the
// point of those tests is the applier, not the compiler. One network
// 10.60.0.0/24 (VNI 5001); container i has IP 10.60.0.i and MAC
// 02:00:00:00:00:i. Table 0 answers ARP for every known IP and admits
// container and tunnel traffic; table 1 forwards by dl_dst.
//
// It is for tests only: no program of the agent imports it.
package testprog

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// VNI is the test network's VNI.
const VNI = 5001

// Ctr is a test container.
type Ctr struct {
	N     int    // 1..250, picks IP and MAC
	Host  string // lab host name
	Netns string // "" = managed sandbox
}

func (c Ctr) Name() string { return fmt.Sprintf("c%d", c.N) }
func (c Ctr) Port() string { return fmt.Sprintf("vc%d", c.N) }
func (c Ctr) IP() string   { return fmt.Sprintf("10.60.0.%d", c.N) }
func (c Ctr) MAC() string  { return fmt.Sprintf("02:00:00:00:00:%02x", c.N) }

// ContainerPort is c's port in a program.
func (c Ctr) ContainerPort() openapi.ContainerPort {
	return openapi.ContainerPort{
		Name: c.Port(), Container: c.Name(), ID: "id-" + c.Name(), Network: "net1",
		Netns: c.Netns, Sandbox: c.Name(), IP: c.IP(), PrefixLen: 24, MAC: c.MAC(),
		Gateway: "10.60.0.254", MTU: 1400,
	}
}

// TunnelName is the tunnel port to peer.
func TunnelName(peer string) string { return "tun-" + peer }

// ARPResponder answers ARP requests for c's IP with c's MAC.
func ARPResponder(c Ctr) openapi.Flow {
	mac := strings.ReplaceAll(c.MAC(), ":", "")
	ip, _ := netip.ParseAddr(c.IP())
	b := ip.As4()
	return openapi.Flow{Table: 0, Priority: 200, Cookie: 0xa000 + uint64(c.N),
		Match: "arp,arp_op=1,arp_tpa=" + c.IP(),
		Actions: "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:" + c.MAC() + "->eth_src," +
			"set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],load:0x" + mac + "->NXM_NX_ARP_SHA[]," +
			"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," + fmt.Sprintf("load:0x%02x%02x%02x%02x->NXM_OF_ARP_SPA[]", b[0], b[1], b[2], b[3]) +
			",in_port"}
}

// Program builds host's program for all containers (local ones get ports,
// remote ones are reached through the tunnel to their host).
func Program(host string, rev int64, all []Ctr, peers map[string]string, tunnelType string) *openapi.Program {
	p := &openapi.Program{Host: host, Revision: rev, Digest: fmt.Sprintf("rev%d", rev),
		Bridge: openapi.BridgeSpec{Name: "br-int", FailMode: "secure"}}
	for _, peer := range sortedKeys(peers) {
		tn := TunnelName(peer)
		p.Tunnels = append(p.Tunnels, openapi.TunnelPort{Name: tn, Type: tunnelType, PeerHost: peer, RemoteIP: peers[peer]})
		p.Flows = append(p.Flows, openapi.Flow{Table: 0, Priority: 100, Cookie: 0xb000,
			Match: fmt.Sprintf("in_port=${port:%s},tun_id=%d", tn, VNI), Actions: "resubmit(,1)"})
	}
	for _, c := range all {
		p.Flows = append(p.Flows, ARPResponder(c))
		if c.Host == host {
			p.Containers = append(p.Containers, c.ContainerPort())
			p.Flows = append(p.Flows,
				openapi.Flow{Table: 0, Priority: 100, Cookie: 0xc000 + uint64(c.N),
					Match: fmt.Sprintf("in_port=${port:%s},dl_src=%s", c.Port(), c.MAC()), Actions: "resubmit(,1)"},
				openapi.Flow{Table: 1, Priority: 100, Cookie: 0xd000 + uint64(c.N),
					Match: "dl_dst=" + c.MAC(), Actions: fmt.Sprintf("output:${port:%s}", c.Port())})
		} else {
			p.Flows = append(p.Flows, openapi.Flow{Table: 1, Priority: 100, Cookie: 0xd000 + uint64(c.N),
				Match:   "dl_dst=" + c.MAC(),
				Actions: fmt.Sprintf("set_field:%d->tun_id,output:${port:%s}", VNI, TunnelName(c.Host))})
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

// ScaleFlowsPer is how many flows a remote container brings to a host's
// program (the compiler's shape: ARP answer, forwarding, policy).
const ScaleFlowsPer = 8

// RemoteFlows are the flows a host holds for remote container i (reached
// through the tunnel to h2); IPs and MACs are unique up to 65,535.
func RemoteFlows(i int) []openapi.Flow {
	ip := fmt.Sprintf("10.61.%d.%d", i/256, i%256)
	mac := fmt.Sprintf("02:01:00:00:%02x:%02x", i/256, i%256)
	fs := []openapi.Flow{
		{Table: 0, Priority: 200, Cookie: 0x10000 + uint64(i), Match: "arp,arp_op=1,arp_tpa=" + ip,
			Actions: "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:" + mac + "->eth_src,set_field:2->arp_op,in_port"},
		{Table: 1, Priority: 100, Cookie: 0x20000 + uint64(i), Match: "dl_dst=" + mac,
			Actions: fmt.Sprintf("set_field:%d->tun_id,output:${port:%s}", VNI, TunnelName("h2"))},
	}
	for k := len(fs); k < ScaleFlowsPer; k++ {
		fs = append(fs, openapi.Flow{Table: 2, Priority: 1000, Cookie: 0x30000 + uint64(i),
			Match: fmt.Sprintf("tcp,nw_dst=%s,tp_dst=%d", ip, 8000+k), Actions: "resubmit(,1)"})
	}
	return fs
}

// NewLab brings up a lab and dumps it when the test fails.
func NewLab(t *testing.T, hosts int, tunnel string) *lab.Lab {
	t.Helper()
	l := lab.New(t, lab.Options{Hosts: hosts, Tunnel: tunnel})
	t.Cleanup(func() { l.DumpOnFailure(t) })
	return l
}

var stats = regexp.MustCompile(`\s*(duration|n_packets|n_bytes|idle_age|hard_age|idle_time)=[^,\s]*,?`)

// FlowsOn dumps a bridge's flows without statistics, sorted, with port
// names.
func FlowsOn(t testing.TB, h *lab.Host, bridge string) []string {
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

// GroupsOn dumps a bridge's groups, sorted.
func GroupsOn(t testing.TB, h *lab.Host, bridge string) []string {
	t.Helper()
	var ls []string
	for _, l := range strings.Split(h.OFCtl(t, "dump-groups", bridge), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "group_id=") {
			ls = append(ls, l)
		}
	}
	slices.Sort(ls)
	return ls
}

// Lines joins ls one per line, for failure messages.
func Lines(ls []string) string { return strings.Join(ls, "\n") }
