package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// TestExternal runs the external-access scenarios of issue 11 over Geneve
// and over VXLAN, one three-host cluster per encapsulation (see extLab)
// with the lab's outside: a namespace on the underlay that is no host,
// with a client address (.250) and a server address (.251), running the
// probe server whose seen-by port (lab.SeenByPort) answers with the
// address it saw the peer connect from. Every container runs the probe
// server too, so each answer says who served and whom it saw:
//
//   - publish: outside -> h1:18090 (TCP and UDP) reaches pub's seen-by
//     port, which sees the outside's real address (from either of its
//     addresses); the other hosts do not publish it.
//   - node-port-cluster: outside -> every host's node port reaches the
//     backends (b1 on h1, b2 on h2; h3 has none), both from every host.
//   - node-port-local: h1 -> b1 only, h2 -> b2 only, client address kept;
//     h3 (no local backend) refuses at once.
//   - egress: a container on every host -> the outside's server, seen as
//     its host's address; egress.snat=false blocks it (published ports
//     still answer), back on it works right after the realized write.
//   - isolation: the gateway is no way around network isolation: no
//     container of ext reaches one of another network (same host or not),
//     nor the other way, by TCP, UDP or ICMP, egress on.
//   - conflicts: publish and node-port conflicts 409 naming the holder,
//     privileged/reserved ports and a foreign hostIP 400 naming the field,
//     a malformed egressIP 400, one inside a network or taken 409 naming
//     that network; nothing written (the revision does not move).
//   - move: a publication follows its container to another host; a move
//     onto a host where the port is taken is 409 and changes nothing.
//   - policy-cidr: a policy allowing ingress from the outside client's /32
//     admits it through the published port and blocks the outside's other
//     address; one allowing another CIDR blocks the client.
//   - cleanup: after a realized delete of a published container, a
//     node-port service and a network, no nftables rule of any host names
//     their ports or address, no flow names the address, no route of any
//     host leads to the gone network.
//   - agent-restart: a kept outside connection through a published port
//     keeps answering while h1's agent restarts and re-applies.
//   - drift-repair: h1's NAT table and its route to ext deleted by hand
//     come back by the agent's resync, and the published port answers
//     the outside again.
//   - egress-ip: containers of a network with an egressIP are seen as that
//     address from every host; its holder's agent stops, the host goes
//     NotReady, another host takes the address and the server sees it
//     again; the agent back, one host holds it.
//
// Every write waits until realized and a probe right after it must work;
// only what depends on time by design (a host going NotReady, the egress IP
// moving) is polled, with a bounded deadline.
//
// One scenario: go test ./tests/e2e/ -run 'TestExternal/vxlan/publish' -v
func TestExternal(t *testing.T) {
	for _, tunnel := range []string{openapi.TunnelGeneve, openapi.TunnelVXLAN} {
		t.Run(tunnel, func(t *testing.T) {
			e := newExtLab(t, tunnel)
			defer e.Lab.DumpOnFailure(t)
			for _, sc := range externalScenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(e, t) })
			}
		})
	}
}

var externalScenarios = []struct {
	name string
	run  func(e *extLab, t *testing.T)
}{
	{"publish", (*extLab).publish},
	{"node-port-cluster", (*extLab).nodePortCluster},
	{"node-port-local", (*extLab).nodePortLocal},
	{"egress", (*extLab).egress},
	{"isolation", (*extLab).isolation},
	{"conflicts", (*extLab).conflicts},
	{"move", (*extLab).move},
	{"policy-cidr", (*extLab).policyCIDR},
	{"cleanup", (*extLab).cleanup},
	{"agent-restart", (*extLab).agentRestart},
	{"drift-repair", (*extLab).driftRepair},
	// Last: it stops an agent.
	{"egress-ip", (*extLab).egressIP},
}

// publish: see TestExternal.
func (e *extLab) publish(t *testing.T) {
	got := e.GetContainer(t, "pub")
	if len(got.Publish) != 2 || got.Publish[0].HostPort != pubPort || got.Publish[0].Port != lab.SeenByPort {
		t.Errorf("pub's publish as stored: %+v", got.Publish)
	}
	client, server := e.out.Client.String(), e.out.Server.String()
	for _, proto := range []string{"tcp", "udp"} {
		expectSeen(t, "outside "+proto+" -> "+e.at("h1", pubPort), tallySeen(e.fromOutside(t, proto, "", e.at("h1", pubPort), 10)),
			true, []string{"pub"}, []string{client})
		expectSeen(t, "outside (from "+server+") "+proto+" -> "+e.at("h1", pubPort),
			tallySeen(e.fromOutside(t, proto, server, e.at("h1", pubPort), 5)), true, []string{"pub"}, []string{server})
	}
	// Only pub's host publishes it.
	for _, h := range []string{"h2", "h3"} {
		expectBlocked(t, "outside -> "+e.at(h, pubPort)+" (pub is on h1)", probeN(t, e.outP, "tcp", "", e.at(h, pubPort), 2, blockedTimeout))
	}
	// The published port leads to pub's port 90 only: its other ports are
	// not published.
	expectBlocked(t, "outside -> "+e.at("h1", 80), probeN(t, e.outP, "tcp", "", e.at("h1", 80), 1, blockedTimeout))
}

// nodePortService creates a service of ext over app=np with a port 90 of
// each protocol (default TCP and UDP) on node port nodePort and the
// policy, realized; it is deleted (realized) when t ends.
func (e *extLab) nodePortService(t *testing.T, name string, nodePort int, policy string, protos ...string) openapi.Service {
	t.Helper()
	if len(protos) == 0 {
		protos = []string{"TCP", "UDP"}
	}
	var ports []map[string]any
	for _, p := range protos {
		ports = append(ports, map[string]any{"name": "seen-" + strings.ToLower(p), "port": lab.SeenByPort, "targetPort": lab.SeenByPort,
			"protocol": p, "nodePort": nodePort})
	}
	body := map[string]any{"name": name, "network": extNet, "selector": "app=np", "ports": ports}
	if policy != "" {
		body["externalTrafficPolicy"] = policy
	}
	var s openapi.Service
	e.MustDo(t, 201, "POST", "/api/v1/services"+writeWait, body, &s)
	t.Cleanup(func() { e.deleteNodePortService(t, s) })
	return s
}

// localGroupBit marks the OpenFlow groups of a Local service's node ports
// (a host's own backends): the port's group ID with this bit.
const localGroupBit = 1 << 31

// deleteNodePortService deletes s (realized) and checks that nothing of it
// is left on any host: no flow naming its VIP, no group of its ports
// (Local ones included), no nftables rule naming its node ports or VIP.
func (e *extLab) deleteNodePortService(t *testing.T, s openapi.Service) {
	t.Helper()
	deleteService(t, e.Cluster, s, localGroupBit)
	terms := []string{s.VIP}
	for _, p := range s.Ports {
		terms = append(terms, fmt.Sprint(p.NodePort))
	}
	for _, h := range e.Lab.Hosts {
		if l := nftLines(e.nftTable(t, h.Name), terms...); len(l) > 0 {
			t.Errorf("%s: nftables rules left for deleted service %s (%v):\n%s", h.Name, s.Name, terms, strings.Join(l, "\n"))
		}
	}
}

// nodePortCluster: see TestExternal. With Cluster a backend on the host
// the client connected to sees the client's address; one on another host
// sees that host's address (the SNAT that brings its reply back).
func (e *extLab) nodePortCluster(t *testing.T) {
	s := e.nodePortService(t, "npc", 30090, "")
	if s.ExternalTrafficPolicy != openapi.TrafficCluster || len(s.Ports) != 2 || s.Ports[0].NodePort != 30090 {
		t.Errorf("service as stored: policy %q, ports %+v; want Cluster (the default) and node port 30090", s.ExternalTrafficPolicy, s.Ports)
	}
	backendHost := map[string]string{"b1": "h1", "b2": "h2"}
	for _, h := range []string{"h1", "h2", "h3"} {
		for _, proto := range []string{"tcp", "udp"} {
			// (1/2)^30: a backend never picked by chance is below 1e-9.
			res := e.fromOutside(t, proto, "", e.at(h, 30090), 30)
			got := tallySeen(res)
			t.Logf("outside -> %s %s (Cluster): %s", proto, e.at(h, 30090), got)
			expectSeen(t, "outside -> "+proto+" node port "+e.at(h, 30090)+" (Cluster)", got, true, []string{"b1", "b2"},
				[]string{e.out.Client.String(), e.hostIP(h)})
			// A backend on the entry host sees the client; one on another
			// host sees the entry host (the SNAT that brings its reply back).
			for _, r := range res {
				seen, err := r.Seen()
				if err != nil {
					continue
				}
				want := e.hostIP(h)
				if backendHost[seen.Name] == h {
					want = e.out.Client.String()
				}
				if got := seen.Peer.Addr().String(); got != want {
					t.Errorf("outside -> %s node port on %s served by %s (on %s): it saw %s, want %s", proto, h, seen.Name, backendHost[seen.Name], got, want)
					break
				}
			}
		}
	}
}

// nodePortLocal: see TestExternal.
func (e *extLab) nodePortLocal(t *testing.T) {
	s := e.nodePortService(t, "npl", 30091, openapi.TrafficLocal)
	if s.ExternalTrafficPolicy != openapi.TrafficLocal {
		t.Errorf("service as stored: policy %q, want Local", s.ExternalTrafficPolicy)
	}
	client := []string{e.out.Client.String()}
	for h, b := range map[string]string{"h1": "b1", "h2": "b2"} {
		expectSeen(t, "outside -> node port "+e.at(h, 30091)+" (Local)", tallySeen(e.fromOutside(t, "tcp", "", e.at(h, 30091), 20)),
			true, []string{b}, client)
		expectSeen(t, "outside -> udp node port "+e.at(h, 30091)+" (Local)", tallySeen(e.fromOutside(t, "udp", "", e.at(h, 30091), 10)),
			true, []string{b}, client)
	}
	refusedFast(t, "outside -> node port "+e.at("h3", 30091)+" (Local, no backend on h3)",
		probeN(t, e.outP, "tcp", "", e.at("h3", 30091), 3, connTimeout))
	expectBlocked(t, "outside -> udp node port "+e.at("h3", 30091)+" (Local, no backend on h3)",
		probeN(t, e.outP, "udp", "", e.at("h3", 30091), 3, blockedTimeout))
}

// outsideServer is the outside's seen-by address.
func (e *extLab) outsideServer() string { return fmt.Sprintf("%s:%d", e.out.Server, lab.SeenByPort) }

// egressFrom checks that container c reaches the outside's server over
// TCP and UDP, seen as want.
func (e *extLab) egressFrom(t *testing.T, c, want string) {
	t.Helper()
	for _, proto := range []string{"tcp", "udp"} {
		expectSeen(t, c+" ("+e.ct[c].Host+") -> outside "+proto+" "+e.outsideServer(),
			tallySeen(probeN(t, e.probes[c], proto, "", e.outsideServer(), 5, extTimeout)), true, []string{lab.OutsideName}, []string{want})
	}
}

// setEgress PATCHes network's egress.snat, realized.
func (e *extLab) setEgress(t *testing.T, network string, snat bool) openapi.Network {
	t.Helper()
	var n openapi.Network
	e.MustDo(t, 200, "PATCH", "/api/v1/networks/"+network+writeWait, map[string]any{"egress": map[string]any{"snat": snat}}, &n)
	if n.EgressEnabled() != snat {
		t.Errorf("network %s after PATCH egress.snat=%v: egress %+v", network, snat, n.Egress)
	}
	return n
}

// egress: see TestExternal.
func (e *extLab) egress(t *testing.T) {
	for _, c := range []string{"c1", "c2", "c3"} {
		e.egressFrom(t, c, e.hostIP(e.ct[c].Host))
	}
	e.setEgress(t, extNet, false)
	defer func() {
		if t.Failed() {
			e.setEgress(t, extNet, true)
		}
	}()
	for _, c := range []string{"c1", "c2", "c3"} {
		for _, proto := range []string{"tcp", "udp"} {
			expectBlocked(t, c+" -> outside "+proto+" with egress.snat=false", probeN(t, e.probes[c], proto, "", e.outsideServer(), 2, blockedTimeout))
		}
	}
	// Inbound connections still get their replies.
	expectSeen(t, "outside -> published pub with egress.snat=false", tallySeen(e.fromOutside(t, "tcp", "", e.at("h1", pubPort), 5)),
		true, []string{"pub"}, []string{e.out.Client.String()})
	e.setEgress(t, extNet, true)
	for _, c := range []string{"c1", "c2", "c3"} {
		e.egressFrom(t, c, e.hostIP(e.ct[c].Host))
	}
}

// isolation: see TestExternal.
func (e *extLab) isolation(t *testing.T) {
	const otherNet, otherCIDR = "other", "10.65.0.0/24"
	e.Network(t, otherNet, otherCIDR)
	t.Cleanup(func() { e.MustDo(t, 204, "DELETE", "/api/v1/networks/"+otherNet+writeWait, nil, nil) })
	e.temp(t, "o1", otherNet, "h1", nil)
	e.temp(t, "o2", otherNet, "h2", nil)
	// Each network still reaches its own (so a block below is isolation,
	// not a broken lab).
	expectSeen(t, "o1 -> o2 (same network)", tallySeen(probeN(t, e.probes["o1"], "tcp", "", e.ct["o2"].IP+":90", 2, extTimeout)),
		true, []string{"o2"}, []string{e.ct["o1"].IP})
	for _, pair := range [][2]string{{"c1", "o1"}, {"c1", "o2"}, {"c2", "o2"}, {"o1", "c1"}, {"o2", "c1"}, {"o2", "c2"}, {"o1", "pub"}} {
		from, to := pair[0], pair[1]
		var reqs []lab.ProbeRequest
		for _, r := range []lab.ProbeRequest{{Proto: "tcp", Addr: e.ct[to].IP + ":80"}, {Proto: "udp", Addr: e.ct[to].IP + ":80"}, {Proto: "icmp", Addr: e.ct[to].IP}} {
			r.TimeoutMs = int(blockedTimeout.Milliseconds())
			reqs = append(reqs, r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := e.probes[from].Run(ctx, reqs)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.OK {
				t.Errorf("%s (%s, %s) -> %s (%s, %s) %s: answered %q; networks are isolated, the gateway must not route between them",
					from, e.ct[from].Network, e.ct[from].Host, to, e.ct[to].Network, e.ct[to].Host, reqs[i].Proto, r.Reply)
			}
		}
	}
	// A machine on the underlay that routes the network's CIDR via h1
	// reaches no container directly: only published and node ports come
	// in (the published port still answers with that route in place).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := e.out.Run(ctx, "ip", "route", "add", extCIDR, "via", e.hostIP("h1")); err != nil {
		t.Fatalf("outside route: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = e.out.Run(ctx, "ip", "route", "del", extCIDR)
	})
	res, err := e.outP.Run(ctx, []lab.ProbeRequest{
		{Proto: "tcp", Addr: e.ct["c1"].IP + ":90", TimeoutMs: int(blockedTimeout.Milliseconds())},
		{Proto: "icmp", Addr: e.ct["c1"].IP, TimeoutMs: int(blockedTimeout.Milliseconds())},
		{Proto: "tcp", Addr: e.at("h1", pubPort), TimeoutMs: int(extTimeout.Milliseconds())},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, what := range []string{"c1 directly (tcp)", "c1 directly (icmp)", "the published port"} {
		if want := i == 2; res[i].OK != want {
			t.Errorf("outside with a route to %s via h1 -> %s: answered %v (%q), want %v", extCIDR, what, res[i].OK, res[i].Reply, want)
		}
	}
}

// refused posts (or moves) and fails t unless the answer is status with a
// problem whose detail names holder (and whose field contains field, when
// set), and the revision did not move. A write that went through anyway is
// undone (the object deleted, the container moved back), so that the
// next cases start from the same state.
func (e *extLab) refused(t *testing.T, what string, status int, holder, field, method, path string, body any) {
	t.Helper()
	var from openapi.Container
	moving := strings.HasSuffix(path, "/move")
	if moving {
		from = e.GetContainer(t, strings.TrimSuffix(strings.TrimPrefix(path, "/api/v1/containers/"), "/move"))
	}
	before := e.Revision(t)
	code, err := e.Do(method, path, body, nil)
	p := problemOf(err)
	switch {
	case code != status || p == nil:
		t.Errorf("%s: %d %v, want %d problem+json", what, code, err, status)
	case holder != "" && !strings.Contains(p.Detail, holder):
		t.Errorf("%s: problem %+v does not name %q", what, *p, holder)
	case field != "" && !strings.Contains(p.Field, field):
		t.Errorf("%s: problem %+v does not name field %q", what, *p, field)
	}
	if after := e.Revision(t); after != before {
		t.Errorf("%s: the revision moved from %d to %d: something was written", what, before, after)
	}
	if code/100 != 2 {
		return
	}
	b, _ := body.(map[string]any)
	name, _ := b["name"].(string)
	network, _ := b["network"].(string)
	q := writeWait + "&network=" + url.QueryEscape(network)
	switch {
	case moving:
		e.MustDo(t, 200, "POST", path+writeWait, map[string]any{"host": from.Host}, nil)
	case path == "/api/v1/containers" || path == "/api/v1/services":
		e.MustDo(t, 204, "DELETE", path+"/"+url.PathEscape(name)+q, nil, nil)
	case path == "/api/v1/networks":
		e.MustDo(t, 204, "DELETE", path+"/"+url.PathEscape(name)+writeWait, nil, nil)
	}
}

// conflicts: see TestExternal.
func (e *extLab) conflicts(t *testing.T) {
	ctr := func(name, host string, publish ...map[string]any) map[string]any {
		return map[string]any{"name": name, "network": extNet, "host": host, "publish": publish}
	}
	pp := func(hostPort int, proto string) map[string]any {
		return map[string]any{"hostPort": hostPort, "port": lab.SeenByPort, "protocol": proto}
	}
	e.refused(t, "pub's hostPort 18090/TCP again on h1", 409, "pub", "", "POST", "/api/v1/containers", ctr("dup", "h1", pp(pubPort, "TCP")))
	e.refused(t, "pub's hostPort 18090/UDP again on h1", 409, "pub", "", "POST", "/api/v1/containers", ctr("dup", "h1", pp(pubPort, "UDP")))
	// The same port on another host is free.
	e.temp(t, "dup", extNet, "h2", map[string]any{"publish": []map[string]any{pp(pubPort, "TCP")}})
	expectSeen(t, "outside -> dup on h2", tallySeen(e.fromOutside(t, "tcp", "", e.at("h2", pubPort), 3)), true, []string{"dup"}, []string{e.out.Client.String()})
	expectSeen(t, "outside -> pub on h1 next to dup on h2", tallySeen(e.fromOutside(t, "tcp", "", e.at("h1", pubPort), 3)), true, []string{"pub"}, []string{e.out.Client.String()})
	e.drop(t, "dup")

	s := e.nodePortService(t, "npx", 30095, "", "TCP")
	e.refused(t, "a hostPort that is a service's node port (any host)", 409, "npx", "publish[0].hostPort", "POST", "/api/v1/containers", ctr("dup", "h3", pp(30095, "TCP")))
	svc := func(name string, nodePort int) map[string]any {
		return map[string]any{"name": name, "network": extNet, "selector": "app=np",
			"ports": []map[string]any{{"name": "p", "port": 91, "targetPort": lab.SeenByPort, "protocol": "TCP", "nodePort": nodePort}}}
	}
	e.refused(t, "a node port that pub publishes", 409, "pub", "", "POST", "/api/v1/services", svc("np2", pubPort))
	e.refused(t, "a node port of another service", 409, s.Name, "", "POST", "/api/v1/services", svc("np2", 30095))
	// The other protocol is free.
	if code, err := e.Do("POST", "/api/v1/containers"+writeWait, ctr("udp", "h3", pp(30095, "UDP")), nil); code != 201 {
		t.Errorf("hostPort 30095/UDP next to node port 30095/TCP: %d %v, want 201", code, err)
	} else {
		e.MustDo(t, 204, "DELETE", "/api/v1/containers/udp"+writeWait, nil, nil)
	}

	e.refused(t, "hostPort 80", 400, "", "publish[0].hostPort", "POST", "/api/v1/containers", ctr("bad", "h1", pp(80, "TCP")))
	for _, port := range openapi.ReservedPorts {
		e.refused(t, fmt.Sprintf("reserved hostPort %d", port), 400, "", "publish[0].hostPort", "POST", "/api/v1/containers", ctr("bad", "h1", pp(port, "UDP")))
	}
	e.refused(t, "hostIP of another host", 400, "", "publish[0].hostIP", "POST", "/api/v1/containers",
		ctr("bad", "h1", map[string]any{"hostPort": 18099, "port": 90, "hostIP": e.hostIP("h2")}))
	e.refused(t, "node port 1000", 400, "", "nodePort", "POST", "/api/v1/services", svc("np2", 1000))

	// Egress IPs: an address, not inside a network (a conflict with that
	// network, docs/external-api.md), not twice.
	e.refused(t, "egressIP 224.0.0.9 (multicast)", 400, "", "egressIP", "POST", "/api/v1/networks",
		map[string]any{"name": "eipx", "cidr": "10.63.0.0/24", "egressIP": "224.0.0.9"})
	e.refused(t, "egressIP inside network ext", 409, extNet, "egressIP", "POST", "/api/v1/networks",
		map[string]any{"name": "eipx", "cidr": "10.63.0.0/24", "egressIP": "10.60.0.200"})
	eip := e.Lab.SpareAddr(5).String()
	e.MustDo(t, 201, "POST", "/api/v1/networks", map[string]any{"name": "eipa", "cidr": "10.63.0.0/24", "egressIP": eip}, nil)
	defer e.MustDo(t, 204, "DELETE", "/api/v1/networks/eipa"+writeWait, nil, nil)
	e.refused(t, "egressIP of network eipa", 409, "eipa", "", "POST", "/api/v1/networks",
		map[string]any{"name": "eipb", "cidr": "10.64.0.0/24", "egressIP": eip})
}

// move: see TestExternal.
func (e *extLab) move(t *testing.T) {
	const port = 18091
	client := []string{e.out.Client.String()}
	e.temp(t, "mv", extNet, "h2", map[string]any{"publish": []map[string]any{{"hostPort": port, "port": lab.SeenByPort}}})
	expectSeen(t, "outside -> mv on h2", tallySeen(e.fromOutside(t, "tcp", "", e.at("h2", port), 5)), true, []string{"mv"}, client)

	e.probes["mv"].Proc.Stop()
	var moved openapi.Container
	e.MustDo(t, 200, "POST", "/api/v1/containers/mv/move"+writeWait, map[string]any{"host": "h3"}, &moved)
	e.ct["mv"] = moved
	e.probes["mv"] = e.Lab.StartProbe(t, e.Bin.Probe, "mv", e.Sandbox("h3", "mv", extNet))
	if moved.Host != "h3" || len(moved.Publish) != 1 || moved.Publish[0].HostPort != port {
		t.Errorf("mv after the move: host %s publish %+v", moved.Host, moved.Publish)
	}
	expectSeen(t, "outside -> mv moved to h3", tallySeen(e.fromOutside(t, "tcp", "", e.at("h3", port), 5)), true, []string{"mv"}, client)
	expectBlocked(t, "outside -> h2 after mv left it", probeN(t, e.outP, "tcp", "", e.at("h2", port), 2, blockedTimeout))

	// A move onto a host where its port is taken changes nothing.
	e.temp(t, "blk", extNet, "h1", map[string]any{"publish": []map[string]any{{"hostPort": port, "port": lab.SeenByPort}}})
	e.refused(t, "move mv onto h1, where blk publishes "+fmt.Sprint(port), 409, "blk", "", "POST", "/api/v1/containers/mv/move", map[string]any{"host": "h1"})
	if c := e.GetContainer(t, "mv"); c.Host != "h3" {
		t.Errorf("mv after a refused move: on %s, want h3", c.Host)
	}
	expectSeen(t, "outside -> mv on h3 after the refused move", tallySeen(e.fromOutside(t, "tcp", "", e.at("h3", port), 3)), true, []string{"mv"}, client)
	expectSeen(t, "outside -> blk on h1", tallySeen(e.fromOutside(t, "tcp", "", e.at("h1", port), 3)), true, []string{"blk"}, client)
}

// policy creates a policy of ext on pub admitting TCP and UDP 90 from cidr,
// realized, and returns a func deleting it (realized).
func (e *extLab) policy(t *testing.T, name, cidr string) func() {
	t.Helper()
	var p openapi.Policy
	e.MustDo(t, 201, "POST", "/api/v1/policies"+writeWait, map[string]any{
		"name": name, "network": extNet, "selector": "app=pub",
		"ingress": []map[string]any{{
			"peers": []map[string]any{{"cidr": cidr}},
			"ports": []map[string]any{{"port": lab.SeenByPort, "protocol": "TCP"}, {"port": lab.SeenByPort, "protocol": "UDP"}},
		}},
	}, &p)
	done := false
	del := func() {
		if !done {
			done = true
			e.MustDo(t, 204, "DELETE", "/api/v1/policies/"+p.ID+writeWait, nil, nil)
		}
	}
	t.Cleanup(del)
	return del
}

// policyCIDR: see TestExternal.
func (e *extLab) policyCIDR(t *testing.T) {
	client, server := e.out.Client.String(), e.out.Server.String()
	del := e.policy(t, "ext-in", client+"/32")
	for _, proto := range []string{"tcp", "udp"} {
		expectSeen(t, "outside client -> pub with ingress from "+client+"/32 "+proto,
			tallySeen(e.fromOutside(t, proto, "", e.at("h1", pubPort), 5)), true, []string{"pub"}, []string{client})
		expectBlocked(t, "outside (from "+server+") -> pub with ingress from "+client+"/32 only "+proto,
			probeN(t, e.outP, proto, server, e.at("h1", pubPort), 2, blockedTimeout))
	}
	// A container of the overlay is not the outside client either.
	expectBlocked(t, "c2 -> pub directly, ingress from the outside client only", probeN(t, e.probes["c2"], "tcp", "", e.ct["pub"].IP+fmt.Sprintf(":%d", lab.SeenByPort), 2, blockedTimeout))
	del()
	e.policy(t, "ext-other", "203.0.113.0/24")
	expectBlocked(t, "outside client -> pub with ingress from 203.0.113.0/24 only", probeN(t, e.outP, "tcp", "", e.at("h1", pubPort), 2, blockedTimeout))
}

// cleanup: see TestExternal.
func (e *extLab) cleanup(t *testing.T) {
	const tmpNet, tmpCIDR, port, nodePort = "tmp", "10.62.0.0/24", 18093, 30093
	e.Network(t, tmpNet, tmpCIDR)
	g := e.temp(t, "gone", tmpNet, "h2", map[string]any{"publish": []map[string]any{{"hostPort": port, "port": lab.SeenByPort}}})
	var s openapi.Service
	e.MustDo(t, 201, "POST", "/api/v1/services"+writeWait, map[string]any{"name": "gsvc", "network": extNet, "selector": "app=np",
		"ports": []map[string]any{{"name": "seen", "port": lab.SeenByPort, "protocol": "TCP", "nodePort": nodePort}}}, &s)
	expectSeen(t, "outside -> gone on h2", tallySeen(e.fromOutside(t, "tcp", "", e.at("h2", port), 3)), true, []string{"gone"}, []string{e.out.Client.String()})
	expectSeen(t, "outside -> gsvc's node port on h3", tallySeen(e.fromOutside(t, "tcp", "", e.at("h3", nodePort), 10)), false,
		[]string{"b1", "b2"}, []string{e.out.Client.String(), e.hostIP("h3")})
	// What the checks below must not find is there now (else they prove nothing).
	portTerm, npTerm := fmt.Sprint(port), fmt.Sprint(nodePort)
	if l := nftLines(e.nftTable(t, "h2"), portTerm); len(l) == 0 {
		t.Errorf("h2: no nftables rule for gone's hostPort %d (%q):\n%s", port, portTerm, e.nftTable(t, "h2"))
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if l := nftLines(e.nftTable(t, h), npTerm); len(l) == 0 {
			t.Errorf("%s: no nftables rule for gsvc's node port %d (%q):\n%s", h, nodePort, npTerm, e.nftTable(t, h))
		}
	}
	if r := e.routes(t, "h2"); !strings.Contains(r, tmpCIDR) {
		t.Errorf("h2: no route to network tmp %s:\n%s", tmpCIDR, r)
	}

	e.drop(t, "gone")
	e.MustDo(t, 204, "DELETE", "/api/v1/services/"+s.ID+writeWait, nil, nil)
	e.MustDo(t, 204, "DELETE", "/api/v1/networks/"+tmpNet+writeWait, nil, nil)
	for _, h := range []string{"h1", "h2", "h3"} {
		table := e.nftTable(t, h)
		if l := nftLines(table, portTerm, npTerm, g.IP, s.VIP, tmpCIDR); len(l) > 0 {
			t.Errorf("%s: nftables rules left for deleted gone (%s, %d), gsvc (%s, %d) or network tmp (%s):\n%s\nwhole table:\n%s",
				h, g.IP, port, s.VIP, nodePort, tmpCIDR, strings.Join(l, "\n"), table)
		}
		if r := e.routes(t, h); strings.Contains(r, tmpCIDR) {
			t.Errorf("%s: route to deleted network tmp %s left:\n%s", h, tmpCIDR, r)
		}
		if bad := cluster.FlowsNaming(e.Flows(t, h), cluster.IPTerm(g.IP), cluster.IPTerm(s.VIP)); len(bad) > 0 {
			t.Errorf("%s: flows naming deleted gone (%s) or gsvc (%s):\n%s", h, g.IP, s.VIP, strings.Join(bad, "\n"))
		}
	}
	expectBlocked(t, "outside -> h2 after gone's delete", probeN(t, e.outP, "tcp", "", e.at("h2", port), 2, blockedTimeout))
	expectBlocked(t, "outside -> h3 node port after gsvc's delete", probeN(t, e.outP, "tcp", "", e.at("h3", nodePort), 2, blockedTimeout))
}

// agentRestart: see TestExternal. The kept connection exchanges a line
// every 50 ms from before the restart until h1's switch holds only flows of
// the restarted agent's new generation (and a few after): none may fail.
func (e *extLab) agentRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := e.outP.Open(ctx, e.at("h1", pubPort), extTimeout)
	if err != nil {
		t.Fatalf("outside -> %s, kept connection: %v", e.at("h1", pubPort), err)
	}
	defer conn.Close(ctx)
	send := func() error {
		r, err := conn.Send(ctx, extTimeout)
		if err != nil {
			return err
		}
		s, err := r.Seen()
		if err != nil {
			return err
		}
		if s.Name != "pub" || s.Peer.Addr() != e.out.Client {
			return fmt.Errorf("answered %+v, want pub seeing %s", s, e.out.Client)
		}
		return nil
	}
	if err := send(); err != nil {
		t.Fatalf("kept connection before the restart: %v", err)
	}
	old := generations(e.Flows(t, "h1"))
	var sent atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := send(); err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				mu.Unlock()
			}
			sent.Add(1)
		}
	}()
	var once sync.Once
	finish := func() { once.Do(func() { close(stop); <-done }) }
	defer finish()
	start := time.Now()
	if err := e.Agents["h1"].Restart(); err != nil {
		finish()
		t.Fatalf("restart agent h1: %v", err)
	}
	e.Eventually(t, 30*time.Second, func() error {
		g := generations(e.Flows(t, "h1"))
		for gen := range g {
			if _, stale := old[gen]; stale || len(g) != 1 {
				return fmt.Errorf("h1: flows by generation %v (before the restart %v)", g, old)
			}
		}
		return nil
	})
	t.Logf("agent h1 restarted and re-applied in %s", time.Since(start).Round(time.Millisecond))
	// Ten more exchanges on the new program.
	e.Eventually(t, 10*time.Second, func() error {
		if n := sent.Load(); n < 10 {
			return fmt.Errorf("%d exchanges", n)
		}
		return nil
	})
	after := sent.Load()
	e.Eventually(t, 10*time.Second, func() error {
		if n := sent.Load(); n < after+10 {
			return fmt.Errorf("%d exchanges after the re-apply, want 10", n-after)
		}
		return nil
	})
	finish()
	if len(failures) > 0 {
		t.Errorf("kept published connection during h1's agent restart: %d of %d exchanges failed: %v", len(failures), sent.Load(), failures)
	}
	expectSeen(t, "outside -> pub after h1's agent restart (new connections)", tallySeen(e.fromOutside(t, "tcp", "", e.at("h1", pubPort), 5)),
		true, []string{"pub"}, []string{e.out.Client.String()})
	if table := e.nftTable(t, "h1"); len(nftLines(table, fmt.Sprint(pubPort))) == 0 {
		t.Errorf("h1 after its agent restart: no nftables rule for pub's port %d:\n%s", pubPort, table)
	}
}

// holders lists the hosts (of hosts) whose namespace holds addr as a /32.
func (e *extLab) holders(t *testing.T, addr string, hosts []string) []string {
	t.Helper()
	var out []string
	for _, h := range hosts {
		if strings.Contains(e.Lab.Host(h).MustRun(t, "ip", "-4", "-o", "addr", "show"), " "+addr+"/32 ") {
			out = append(out, h)
		}
	}
	return out
}

// egressIP: see TestExternal.
func (e *extLab) egressIP(t *testing.T) {
	const eipNet, eipCIDR = "eip", "10.61.0.0/24"
	eip := e.Lab.SpareAddr(0).String()
	var n openapi.Network
	e.MustDo(t, 201, "POST", "/api/v1/networks", map[string]any{"name": eipNet, "cidr": eipCIDR, "egressIP": eip}, &n)
	t.Cleanup(func() { e.MustDo(t, 204, "DELETE", "/api/v1/networks/"+eipNet+writeWait, nil, nil) })
	if n.EgressIP != eip {
		t.Errorf("network eip as stored: egressIP %q, want %s", n.EgressIP, eip)
	}
	hosts := []string{"h1", "h2", "h3"}
	for i, h := range hosts {
		e.temp(t, fmt.Sprintf("e%d", i+1), eipNet, h, nil)
	}
	held := e.holders(t, eip, hosts)
	if len(held) != 1 {
		t.Fatalf("egress IP %s is held by %v, want exactly one host", eip, held)
	}
	holder := held[0]
	t.Logf("egress IP %s held by %s", eip, holder)
	for i := range hosts {
		e.egressFrom(t, fmt.Sprintf("e%d", i+1), eip)
	}

	// The holder's agent stops: once its host is NotReady, another host
	// takes the address and the traffic of the others leaves through it.
	e.Agents[holder].Stop()
	restarted := false
	defer func() {
		if !restarted {
			_ = e.Agents[holder].Restart()
		}
	}()
	stopped := time.Now()
	e.WaitHost(t, holder, openapi.HostNotReady, 30*time.Second)
	t.Logf("%s NotReady %s after its agent stopped", holder, time.Since(stopped).Round(time.Millisecond))
	var others []string
	for _, h := range hosts {
		if h != holder {
			others = append(others, h)
		}
	}
	var next string
	e.Eventually(t, 30*time.Second, func() error {
		got := e.holders(t, eip, others)
		if len(got) != 1 {
			return fmt.Errorf("egress IP %s held by %v of %v after %s went NotReady, want one", eip, got, others, holder)
		}
		next = got[0]
		return nil
	})
	t.Logf("egress IP %s moved to %s %s after %s's agent stopped", eip, next, time.Since(stopped).Round(time.Millisecond), holder)
	// The outside learns the new holder from its gratuitous ARP: the first
	// connections after the move must work.
	for i, h := range hosts {
		if h != holder {
			e.egressFrom(t, fmt.Sprintf("e%d", i+1), eip)
		}
	}

	if err := e.Agents[holder].Restart(); err != nil {
		t.Fatalf("restart agent %s: %v", holder, err)
	}
	restarted = true
	e.WaitHost(t, holder, openapi.HostReady, 30*time.Second)
	e.Eventually(t, 30*time.Second, func() error {
		if got := e.holders(t, eip, hosts); len(got) != 1 {
			return fmt.Errorf("egress IP %s held by %v with every host Ready, want one", eip, got)
		}
		return nil
	})
	e.Eventually(t, 30*time.Second, func() error {
		for i, h := range hosts {
			c := fmt.Sprintf("e%d", i+1)
			got := tallySeen(probeN(t, e.probes[c], "tcp", "", e.outsideServer(), 1, extTimeout))
			if len(got.failed) > 0 || got.peers[eip] != 1 {
				return fmt.Errorf("%s (%s) -> outside with every host Ready again: %s", c, h, got)
			}
		}
		return nil
	})
	t.Logf("egress IP %s held by %v with %s back", eip, e.holders(t, eip, hosts), holder)
	for i := range hosts {
		e.egressFrom(t, fmt.Sprintf("e%d", i+1), eip)
	}
}

// driftRepair: see TestExternal. The lab's agents resync every 2 s.
func (e *extLab) driftRepair(t *testing.T) {
	h := e.Lab.Host("h1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cmd := range [][]string{{"nft", "delete", "table", "ip", openapi.NATTable}, {"ip", "route", "del", extCIDR}} {
		if out, err := h.Run(ctx, cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	// (No probe of the broken state: the resync may repair it first.)
	for {
		if strings.Contains(e.nftTable(t, "h1"), fmt.Sprintf("dport %d", pubPort)) && strings.Contains(e.routes(t, "h1"), extCIDR) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("h1's NAT table or route to %s not repaired within 30 s:\n%s\n%s", extCIDR, e.nftTable(t, "h1"), e.routes(t, "h1"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	expectSeen(t, "outside -> "+e.at("h1", pubPort)+" after the repair", tallySeen(e.fromOutside(t, "tcp", "", e.at("h1", pubPort), 5)),
		true, []string{"pub"}, []string{e.out.Client.String()})
}
