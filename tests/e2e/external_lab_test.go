package e2e

// The external-access scenarios' cluster and probes (TestExternal).

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// extLab is the cluster the external scenarios share: network ext with
// pub (h1, publishing 18090 TCP and UDP to its seen-by port), node-port
// backends b1 (h1) and b2 (h2) labelled app=np, and clients c1, c2, c3 (one
// per host); the lab's outside runs the probe server "outside".
type extLab struct {
	*cluster.Cluster
	out    *lab.Outside
	outP   *lab.Probe
	ct     map[string]openapi.Container
	probes map[string]*lab.Probe
}

const (
	extNet  = "ext"
	extCIDR = "10.60.0.0/24"
	// pubPort is pub's published port (TCP and UDP).
	pubPort = 18090
	// extTimeout bounds one probe that should be answered; blocked probes
	// are seen by their timeout.
	extTimeout     = 2 * time.Second
	blockedTimeout = time.Second
)

func newExtLab(t *testing.T, tunnel string) *extLab {
	t.Helper()
	start := time.Now()
	e := &extLab{ct: map[string]openapi.Container{}, probes: map[string]*lab.Probe{}}
	e.Cluster = cluster.New(t, cluster.Options{Hosts: 3, Tunnel: tunnel})
	e.out = e.Lab.AddOutside(t)
	e.outP = e.out.StartServer(t, e.Bin.Probe)
	e.Network(t, extNet, extCIDR)
	e.add(t, "pub", extNet, "h1", map[string]any{"labels": map[string]string{"app": "pub"}, "publish": []map[string]any{
		{"hostPort": pubPort, "port": lab.SeenByPort},
		{"hostPort": pubPort, "port": lab.SeenByPort, "protocol": "UDP"},
	}})
	e.add(t, "b1", extNet, "h1", map[string]any{"labels": map[string]string{"app": "np"}})
	e.add(t, "b2", extNet, "h2", map[string]any{"labels": map[string]string{"app": "np"}})
	for i, h := range []string{"h1", "h2", "h3"} {
		e.add(t, fmt.Sprintf("c%d", i+1), extNet, h, map[string]any{"labels": map[string]string{"role": "client"}})
	}
	t.Logf("external lab up in %s: outside client %s, server %s", time.Since(start).Round(time.Millisecond), e.out.Client, e.out.Server)
	return e
}

// add creates a container (realized) with extra fields and starts its
// probe server, for as long as t runs.
func (e *extLab) add(t *testing.T, name, network, host string, extra map[string]any) openapi.Container {
	t.Helper()
	c := e.Container(t, name, network, host, extra)
	e.ct[name] = c
	e.probes[name] = e.Lab.StartProbe(t, e.Bin.Probe, name, e.Sandbox(host, name, network))
	return c
}

// temp is add for one scenario: when t ends the probe stops and the
// container is deleted (realized), unless the scenario did it already.
func (e *extLab) temp(t *testing.T, name, network, host string, extra map[string]any) openapi.Container {
	t.Helper()
	c := e.add(t, name, network, host, extra)
	t.Cleanup(func() {
		if _, ok := e.ct[name]; ok {
			e.drop(t, name)
		}
	})
	return c
}

// drop stops a container's probe server and deletes it (realized).
func (e *extLab) drop(t *testing.T, name string) {
	t.Helper()
	e.probes[name].Proc.Stop()
	c := e.ct[name]
	e.MustDo(t, 204, "DELETE", "/api/v1/containers/"+url.PathEscape(name)+writeWait+"&network="+url.QueryEscape(c.Network), nil, nil)
	delete(e.ct, name)
	delete(e.probes, name)
}

// hostIP is a host's address (its underlay address).
func (e *extLab) hostIP(h string) string { return e.Lab.Host(h).UnderlayAddr.Addr().String() }

// at is "host's address:port".
func (e *extLab) at(h string, port int) string { return fmt.Sprintf("%s:%d", e.hostIP(h), port) }

// probeN makes n probes of proto from p (from src, "" for its primary
// address) to addr, batch at a time.
func probeN(t *testing.T, p *lab.Probe, proto, src, addr string, n int, timeout time.Duration) []lab.ProbeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []lab.ProbeResult
	for len(out) < n {
		reqs := make([]lab.ProbeRequest, min(batch, n-len(out)))
		for i := range reqs {
			reqs[i] = lab.ProbeRequest{Proto: proto, Addr: addr, Src: src, TimeoutMs: int(timeout.Milliseconds())}
		}
		res, err := p.Run(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res...)
	}
	return out
}

// seenTally counts seen-by answers by server name and by peer address.
type seenTally struct {
	tally
	peers map[string]int
}

func tallySeen(res []lab.ProbeResult) seenTally {
	s := seenTally{tally{n: len(res), by: map[string]int{}}, map[string]int{}}
	for _, r := range res {
		seen, err := r.Seen()
		if err != nil {
			s.failed = append(s.failed, err.Error())
			continue
		}
		s.by[seen.Name]++
		s.peers[seen.Peer.Addr().String()]++
	}
	return s
}

func (s seenTally) String() string {
	f := ""
	if len(s.failed) > 0 {
		f = " (first: " + s.failed[0] + ")"
	}
	return fmt.Sprintf("%d probes: served by %v, peers seen %v, failed %d%s", s.n, s.by, s.peers, len(s.failed), f)
}

// expectSeen fails t unless every probe was answered by one of servers
// (each of them at least once when all) and saw a peer among peers.
func expectSeen(t *testing.T, what string, got seenTally, all bool, servers, peers []string) {
	t.Helper()
	bad := !got.servedBy(servers, all)
	for p := range got.peers {
		bad = bad || !slices.Contains(peers, p)
	}
	if bad {
		t.Errorf("%s: %s; want every probe answered by %v (each: %v) seeing %v", what, got, servers, all, peers)
	}
}

// expectBlocked fails t if any probe got an answer.
func expectBlocked(t *testing.T, what string, res []lab.ProbeResult) {
	t.Helper()
	for _, r := range res {
		if r.OK {
			t.Errorf("%s: answered %q, want no answer", what, r.Reply)
			return
		}
	}
}

// fromOutside makes n probes from the outside's client address (or src).
func (e *extLab) fromOutside(t *testing.T, proto, src, addr string, n int) []lab.ProbeResult {
	t.Helper()
	return probeN(t, e.outP, proto, src, addr, n, extTimeout)
}

// nftTable is host's nftables table of the agent (empty when absent).
func (e *extLab) nftTable(t *testing.T, host string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Lab.Host(host).Run(ctx, "nft", "list", "table", "ip", openapi.NATTable)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return ""
		}
		t.Fatalf("%s: %v", host, err)
	}
	return out
}

// routes is host's main routing table.
func (e *extLab) routes(t *testing.T, host string) string {
	t.Helper()
	return e.Lab.Host(host).MustRun(t, "ip", "-4", "route", "show")
}

// nftLines returns the lines of table that name any of terms: a port
// number or an address (or prefix), as a whole word.
func nftLines(table string, terms ...string) []string {
	var res []*regexp.Regexp
	for _, term := range terms {
		res = append(res, regexp.MustCompile(`(^|[^0-9.])`+regexp.QuoteMeta(term)+`($|[^0-9])`))
	}
	var out []string
	for _, line := range strings.Split(table, "\n") {
		for _, re := range res {
			if re.MatchString(line) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return out
}
