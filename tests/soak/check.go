package soak

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// checker evaluates the invariants on the cluster as it is. A pass returns
// what it found wrong; the runner (soak.go) decides when a finding is a
// violation: a state that does not converge within its bound.
type checker struct {
	c      *cluster.Cluster
	api    *api
	tokens map[string]string // node tokens, to read each host's program
	rng    *rand.Rand
	// skip names hosts left out of a pass (a fault is active on them).
	skip map[string]bool

	passes, probes, probesFailed int
}

func newChecker(c *cluster.Cluster, a *api, seed uint64) *checker {
	k := &checker{c: c, api: a, tokens: map[string]string{}, rng: rand.New(rand.NewPCG(seed, 2))}
	for _, h := range c.Lab.Hosts {
		for _, kv := range c.AgentEnv(h.Name) {
			if v, ok := strings.CutPrefix(kv, "SWITCHYARD_NODE_TOKEN="); ok {
				k.tokens[h.Name] = v
			}
		}
	}
	return k
}

// pass checks every invariant once; probes, when set, also pings between
// containers that policy allows.
func (k *checker) pass(probes bool) []string {
	k.passes++
	var out []string
	hosts, err := list[openapi.Host](k.api, "/api/v1/hosts")
	if err != nil {
		return []string{err.Error()}
	}
	containers, err := list[openapi.Container](k.api, "/api/v1/containers")
	if err != nil {
		return []string{err.Error()}
	}
	out = append(out, k.ipam(containers)...)
	for _, h := range hosts {
		if k.skip[h.Name] {
			continue
		}
		if h.Status != openapi.HostReady {
			out = append(out, fmt.Sprintf("%s: %s", h.Name, h.Status))
			continue
		}
		found := k.host(h)
		if !h.Realized && len(found) == 0 {
			// Its datapath holds the program, but its agent has not
			// reported that revision (yet). A host that stayed so was a
			// controller bug the soak found (a program A -> B -> A while
			// the agent was away; TestRealizedAfterChangeAndBack).
			found = []string{fmt.Sprintf("%s: not realized (applied r%d, program r%d)", h.Name, h.AppliedRevision, h.ProgramRevision)}
		}
		out = append(out, found...)
	}
	for _, ct := range containers {
		if ct.Status != openapi.ContainerRunning && !k.skip[ct.Host] {
			out = append(out, fmt.Sprintf("container %s on %s: %s %s", ct.Name, ct.Host, ct.Status, ct.StatusDetail))
		}
	}
	if probes && len(out) == 0 {
		out = append(out, k.probe(containers)...)
	}
	return out
}

// host checks one Ready, realized host against its program: flows,
// groups, OVS ports, sandbox namespaces, NAT rules. The program is read
// between two reads of the host; if the host's program changed meanwhile
// the host is reported unsettled, not compared.
func (k *checker) host(h openapi.Host) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var up openapi.ProgramUpdate
	code, err := k.api.as(ctx, k.tokens[h.Name], "GET", "/api/v1/nodes/"+h.Name+"/program?revision=0&timeout=1s", nil, &up)
	if err != nil || code != 200 || !up.Full || up.Program == nil {
		return []string{fmt.Sprintf("%s: read program: %d %v", h.Name, code, err)}
	}
	p := up.Program
	lh := k.c.Lab.Host(h.Name)
	run := func(name string, args ...string) (string, error) { return lh.Run(ctx, name, args...) }
	var out []string
	ofOut, err := run("ovs-vsctl", "--db="+lh.DB, "--timeout=30", "-f", "csv", "--no-headings", "--columns=name,ofport", "list", "Interface")
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", h.Name, err)}
	}
	dump, err := run("ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int")
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", h.Name, err)}
	}
	gens := generationsOf(dump)
	if len(gens) > 1 {
		out = append(out, fmt.Sprintf("%s: flows of %d generations %v", h.Name, len(gens), gens))
	}
	var gen uint16
	for g := range gens {
		gen = g
	}
	file, problems := expectedFlows(p, parseOFPorts(ofOut), gen)
	for _, pr := range problems {
		out = append(out, h.Name+": "+pr)
	}
	f, err := os.CreateTemp("", "soak-flows-")
	if err != nil {
		return append(out, err.Error())
	}
	defer os.Remove(f.Name())
	f.WriteString(file)
	f.Close()
	// diff-flows exits 2 when the tables differ: the lines say how.
	diffOut, _ := run("ovs-ofctl", "-O", "OpenFlow15", "diff-flows", "br-int", f.Name())
	if d := flowDiffs(diffOut); len(d) > 0 {
		out = append(out, fmt.Sprintf("%s: %d flows differ from the program at r%d (first: %s)", h.Name, len(d), p.Revision, strings.Join(d[:min(3, len(d))], " | ")))
	} else if strings.Contains(diffOut, "ovs-ofctl:") {
		out = append(out, fmt.Sprintf("%s: diff-flows: %s", h.Name, strings.TrimSpace(diffOut)))
	}
	groups, err := run("ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "br-int")
	if err != nil {
		return append(out, fmt.Sprintf("%s: %v", h.Name, err))
	}
	var wantGroups []uint32
	for _, g := range p.Groups {
		wantGroups = append(wantGroups, g.ID)
	}
	out = append(out, prefixed(h.Name, diffSets("groups", wantGroups, groupIDs(groups)))...)

	ports, err := run("ovs-vsctl", "--db="+lh.DB, "--timeout=30", "list-ports", "br-int")
	if err != nil {
		return append(out, fmt.Sprintf("%s: %v", h.Name, err))
	}
	wantPorts := []string{openapi.DNSPortName}
	if p.Gateway != nil {
		wantPorts = append(wantPorts, openapi.GatewayPortName)
	}
	var wantNetns []string
	for _, c := range p.Containers {
		wantPorts = append(wantPorts, c.Name)
		if c.Netns == "" {
			wantNetns = append(wantNetns, k.c.Sandbox(h.Name, c.Container, c.Network))
		}
	}
	for _, tp := range p.Tunnels {
		wantPorts = append(wantPorts, tp.Name)
	}
	out = append(out, prefixed(h.Name, diffSets("OVS ports", wantPorts, strings.Fields(ports)))...)
	out = append(out, prefixed(h.Name, diffSets("sandbox namespaces", wantNetns, sandboxes(k.c.SandboxPrefix(h.Name))))...)

	nft, _ := run("nft", "list", "table", "ip", openapi.NATTable)
	out = append(out, prefixed(h.Name, diffSets("NAT ports", programNATPorts(p), natPorts(nft)))...)

	// The program read must still be the host's: otherwise what was
	// compared may be a program it has not applied yet.
	var again openapi.Host
	if code, err := k.api.do(ctx, "GET", "/api/v1/hosts/"+h.Name, nil, &again); err != nil || code != 200 {
		return append(out, fmt.Sprintf("%s: %d %v", h.Name, code, err))
	}
	if again.ProgramRevision != p.Revision {
		return []string{fmt.Sprintf("%s: unsettled (program r%d read, now r%d)", h.Name, p.Revision, again.ProgramRevision)}
	}
	return out
}

func prefixed(host string, s []string) []string {
	for i := range s {
		s[i] = host + ": " + s[i]
	}
	return s
}

// sandboxes lists the network namespaces whose name starts with prefix.
func sandboxes(prefix string) []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, filepath.Base(e.Name()))
		}
	}
	return out
}

// ipam checks the addresses against the containers: each in its network's
// CIDR, none twice, and every network's used count equal to its
// containers.
func (k *checker) ipam(containers []openapi.Container) []string {
	nets, err := list[openapi.Network](k.api, "/api/v1/networks")
	if err != nil {
		return []string{err.Error()}
	}
	return ipamProblems(nets, containers)
}

// ipamProblems is ipam's comparison.
func ipamProblems(nets []openapi.Network, containers []openapi.Container) []string {
	var out []string
	seen := map[string]string{}
	count := map[string]int64{}
	cidr := map[string]netip.Prefix{}
	for _, n := range nets {
		cidr[n.Name], _ = netip.ParsePrefix(n.CIDR)
	}
	for _, c := range containers {
		count[c.Network]++
		key := c.Network + "/" + c.IP
		if other, dup := seen[key]; dup {
			out = append(out, fmt.Sprintf("IPAM: %s has %s, as %s", c.Name, c.IP, other))
		}
		seen[key] = c.Name
		if a, err := netip.ParseAddr(c.IP); err != nil || !cidr[c.Network].Contains(a) {
			out = append(out, fmt.Sprintf("IPAM: %s's %q is not in %s", c.Name, c.IP, cidr[c.Network]))
		}
	}
	for _, n := range nets {
		if n.Addresses != nil && n.Addresses.Used != count[n.Name] {
			out = append(out, fmt.Sprintf("IPAM: network %s counts %d addresses used for %d containers", n.Name, n.Addresses.Used, count[n.Name]))
		}
	}
	return out
}

// probe pings between a few random pairs of containers that no policy
// selects (label role=free; the soak's policies select role=locked only),
// on one network: policy allows them, so each must get through. A pair
// gets two tries of 3 pings (the first packet towards a new tunnel peer
// may be lost while OVS resolves it).
func (k *checker) probe(containers []openapi.Container) []string {
	byNet := map[string][]openapi.Container{}
	for _, c := range containers {
		if c.Labels["role"] == "free" && c.Status == openapi.ContainerRunning && !k.skip[c.Host] {
			byNet[c.Network] = append(byNet[c.Network], c)
		}
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(byNet)) {
		cs := byNet[n]
		for i := 0; i < 2 && len(cs) >= 2; i++ {
			// Two different containers: b is drawn from the others.
			ai := k.rng.IntN(len(cs))
			a, b := cs[ai], cs[(ai+1+k.rng.IntN(len(cs)-1))%len(cs)]
			k.probes++
			if !k.ping(a, b) {
				k.probesFailed++
				out = append(out, fmt.Sprintf("probe: %s (%s) cannot ping %s (%s, %s)", a.Name, a.Host, b.Name, b.Host, b.IP))
			}
		}
	}
	return out
}

func (k *checker) ping(a, b openapi.Container) bool {
	ns := k.c.Sandbox(a.Host, a.Name, a.Network)
	for try := 0; try < 2; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, _ := lab.Ping(ctx, ns, b.IP, 3, 100*time.Millisecond)
		cancel()
		if r.Received > 0 {
			return true
		}
	}
	return false
}

// probeable lists the hosts with a role=free container that has a
// role=free peer of its network on another host (see pairsFrom).
func (k *checker) probeable() []string {
	containers, err := list[openapi.Container](k.api, "/api/v1/containers")
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range containers {
		if _, b := peerElsewhere(a, containers); b && !slices.Contains(out, a.Host) {
			out = append(out, a.Host)
		}
	}
	sort.Strings(out)
	return out
}

// peerElsewhere finds, for a running role=free container a, a running
// role=free container of its network on another host.
func peerElsewhere(a openapi.Container, containers []openapi.Container) (openapi.Container, bool) {
	free := func(c openapi.Container) bool {
		return c.Labels["role"] == "free" && c.Status == openapi.ContainerRunning
	}
	if !free(a) {
		return openapi.Container{}, false
	}
	for _, b := range containers {
		if b.Host != a.Host && b.Network == a.Network && free(b) {
			return b, true
		}
	}
	return openapi.Container{}, false
}

// pair is a probe: a pings b.
type pair struct{ a, b openapi.Container }

// pairsFrom picks up to two probes from role=free containers on host to
// role=free containers of their network on other hosts: traffic that must
// keep flowing while a fault cuts host from the controller (as long as
// nobody changes these containers: the runner pins them).
func (k *checker) pairsFrom(host string) []pair {
	containers, err := list[openapi.Container](k.api, "/api/v1/containers")
	if err != nil {
		return nil
	}
	var out []pair
	for _, a := range containers {
		if b, ok := peerElsewhere(a, containers); ok && a.Host == host && len(out) < 2 {
			out = append(out, pair{a, b})
		}
	}
	return out
}

// probePairs pings each pair and names those that fail.
func (k *checker) probePairs(ps []pair) []string {
	var out []string
	for _, p := range ps {
		k.probes++
		if !k.ping(p.a, p.b) {
			k.probesFailed++
			out = append(out, fmt.Sprintf("probe: %s (%s, under the fault) cannot ping %s (%s, %s)", p.a.Name, p.a.Host, p.b.Name, p.b.Host, p.b.IP))
		}
	}
	return out
}

// hostByName reads one host.
func (k *checker) hostByName(name string) (openapi.Host, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var h openapi.Host
	code, err := k.api.do(ctx, "GET", "/api/v1/hosts/"+name, nil, &h)
	return h, err == nil && code == 200
}
