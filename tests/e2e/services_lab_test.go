package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// svcLab is the cluster the service and DNS scenarios share (one per
// tunnel type): network svc with a client c<i> and a backend w<i> of
// service "web" (app=web; w1 is version v2, the canary, w2 and w3 v1) on
// every host h<i>, and network iso with i1 on h1, to check that names do
// not cross networks. Every container runs a probe server answering with
// its container name (lab.StartProbe). Scenarios that delete, move or
// starve backends make their own and remove them.
type svcLab struct {
	*cluster.Cluster
	net, iso openapi.Network
	ct       map[string]openapi.Container
	probes   map[string]*lab.Probe
	web      openapi.Service
	clients  []string
}

const (
	svcNet  = "svc"
	svcCIDR = "10.40.0.0/24"
	isoNet  = "iso"
	isoCIDR = "10.41.0.0/24"
	// dnsDomain is the controller's default SWITCHYARD_DNS_DOMAIN.
	dnsDomain = "switchyard.local"
	// connTimeout bounds one probe connection through a VIP that is
	// expected to be dropped or refused.
	connTimeout = 2 * time.Second
	// okTimeout bounds one that is expected to be answered: long enough
	// for the client's third SYN (sent 3 s after the first) and a udp
	// probe's resends, as a real client would retry. The lab's userspace
	// datapath can lose a packet when a link changes on a host of the
	// path (docs/failure-matrix.md, "Link changes on a userspace-datapath
	// host"), which is not what these tests judge.
	okTimeout = 4 * time.Second
	// udpResend is how often a udp probe expected to be answered resends
	// its datagram (ms).
	udpResend = 500
	// batch is how many probes a probe server runs at once.
	batch = 50
)

func newSvcLab(t *testing.T, tunnel string) *svcLab {
	t.Helper()
	start := time.Now()
	e := &svcLab{ct: map[string]openapi.Container{}, probes: map[string]*lab.Probe{}}
	e.Cluster = cluster.New(t, cluster.Options{Hosts: 3, Tunnel: tunnel, AgentEnv: []string{"SWITCHYARD_DNS_UPSTREAM=" + upstreamAddr}})
	if got := e.Lab.Gateway().String() + ":53"; got != upstreamAddr {
		t.Fatalf("the lab's underlay gateway is %s, the agents were given upstream %s", got, upstreamAddr)
	}
	e.net = e.Network(t, svcNet, svcCIDR)
	e.iso = e.Network(t, isoNet, isoCIDR)
	for i, h := range []string{"h1", "h2", "h3"} {
		version := "v1"
		if i == 0 {
			version = "v2"
		}
		c := fmt.Sprintf("c%d", i+1)
		e.clients = append(e.clients, c)
		e.add(t, c, svcNet, h, map[string]string{"role": "client"})
		e.add(t, fmt.Sprintf("w%d", i+1), svcNet, h, map[string]string{"app": "web", "name": fmt.Sprintf("w%d", i+1), "version": version})
	}
	e.add(t, "i1", isoNet, "h1", map[string]string{"app": "web"})
	e.web = e.service(t, "web", map[string]any{"selector": "app=web"})
	t.Logf("service lab up in %s", time.Since(start).Round(time.Millisecond))
	return e
}

// add creates a container (realized on every host) and starts its probe
// server, for the whole lab.
func (e *svcLab) add(t *testing.T, name, network, host string, labels map[string]string) openapi.Container {
	t.Helper()
	c := e.Container(t, name, network, host, map[string]any{"labels": labels})
	e.ct[name] = c
	e.probes[name] = e.Lab.StartProbe(t, e.Bin.Probe, name, e.Sandbox(host, name, network))
	return c
}

// backend is add for one scenario: when t ends, the probe stops and the
// container is deleted (realized), unless the scenario deleted it already.
func (e *svcLab) backend(t *testing.T, name, host string, labels map[string]string) openapi.Container {
	t.Helper()
	c := e.add(t, name, svcNet, host, labels)
	t.Cleanup(func() {
		if _, ok := e.ct[name]; ok {
			e.probes[name].Proc.Stop()
			e.remove(t, name)
		}
	})
	return c
}

// remove deletes a container, realized on every host.
func (e *svcLab) remove(t *testing.T, name string) {
	t.Helper()
	e.MustDo(t, 204, "DELETE", "/api/v1/containers/"+name+writeWait, nil, nil)
	delete(e.ct, name)
	delete(e.probes, name)
}

// service creates a service of network svc (body's fields over the
// defaults: port 80 named http to 80, TCP), realized on every host. When t
// ends it is deleted, and then no flow and no group of any host may still
// name its VIP or group ids.
func (e *svcLab) service(t *testing.T, name string, body map[string]any) openapi.Service {
	t.Helper()
	b := map[string]any{"name": name, "network": svcNet,
		"ports": []map[string]any{{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}}}
	for k, v := range body {
		b[k] = v
	}
	var s openapi.Service
	e.MustDo(t, 201, "POST", "/api/v1/services"+writeWait, b, &s)
	if s.VIP == "" || len(s.Ports) == 0 {
		t.Fatalf("service %s created without VIP or ports: %+v", name, s)
	}
	t.Cleanup(func() { e.deleteService(t, s) })
	return s
}

// deleteService deletes s (realized) and checks that nothing of it is left
// on any switch: no flow naming its VIP, no group of its group ids.
func (e *svcLab) deleteService(t *testing.T, s openapi.Service) { deleteService(t, e.Cluster, s) }

// deleteService deletes s (realized) and checks that no host has a flow
// naming its VIP or a group of its ports (each port's group ID, and the
// same with each of groupBits set). Flows OVS learned for ClientIP
// affinity stay until their idle timeout (the agent never deletes them one
// by one); without the service's flows they match nothing that leads
// anywhere, so they are not counted.
func deleteService(t *testing.T, c *cluster.Cluster, s openapi.Service, groupBits ...uint32) {
	t.Helper()
	c.MustDo(t, 204, "DELETE", "/api/v1/services/"+s.ID+writeWait, nil, nil)
	learned := fmt.Sprintf("cookie=%#x,", openapi.LearnedCookie)
	for _, h := range c.Lab.Hosts {
		var flows []string
		for _, f := range c.Flows(t, h.Name) {
			if !strings.Contains(f, learned) {
				flows = append(flows, f)
			}
		}
		if bad := cluster.FlowsNaming(flows, cluster.IPTerm(s.VIP)); len(bad) > 0 {
			t.Errorf("%s: flows naming deleted service %s's VIP:\n%s", h.Name, s.Name, strings.Join(bad, "\n"))
		}
		groups := h.OFCtl(t, "dump-groups", "br-int")
		for i := range s.Ports {
			gid := s.GroupID*openapi.MaxServicePorts + uint32(i)
			for _, id := range append([]uint32{gid}, groupBits...) {
				if id != gid {
					id |= gid
				}
				if strings.Contains(groups, fmt.Sprintf("group_id=%d,", id)) {
					t.Errorf("%s: group %d of deleted service %s is still there:\n%s", h.Name, id, s.Name, groups)
				}
			}
		}
	}
}

// addr is the VIP and port of s's port i.
func addr(s openapi.Service, i int) string { return fmt.Sprintf("%s:%d", s.VIP, s.Ports[i].Port) }

// endpoints lists a service's backends (GET /services/{id}/endpoints).
func (e *svcLab) endpoints(t *testing.T, s openapi.Service) map[string]openapi.Endpoint {
	t.Helper()
	var l openapi.EndpointList
	e.MustDo(t, 200, "GET", "/api/v1/services/"+s.ID+"/endpoints", nil, &l)
	out := map[string]openapi.Endpoint{}
	for _, ep := range l.Items {
		out[ep.Container] = ep
	}
	return out
}

// waitHealth waits until the endpoints API shows container's health as
// want, and returns the endpoint.
func (e *svcLab) waitHealth(t *testing.T, s openapi.Service, container, want string) openapi.Endpoint {
	t.Helper()
	var got openapi.Endpoint
	e.Eventually(t, 30*time.Second, func() error {
		var ok bool
		got, ok = e.endpoints(t, s)[container]
		if !ok {
			return fmt.Errorf("%s is not an endpoint of %s", container, s.Name)
		}
		if got.Health != want {
			return fmt.Errorf("endpoint %s of %s is %q (%s), want %q", container, s.Name, got.Health, got.Reason, want)
		}
		return nil
	})
	return got
}

// waitApplied waits until every host has applied revision rev: every host
// holds the svc network, so a change of a service's backends changes every
// host's program.
func (e *svcLab) waitApplied(t *testing.T, rev int64) {
	t.Helper()
	e.Eventually(t, 30*time.Second, func() error {
		for _, h := range e.Lab.Hosts {
			if got := e.GetHost(t, h.Name); got.AppliedRevision < rev {
				return fmt.Errorf("%s applied revision %d, want %d", h.Name, got.AppliedRevision, rev)
			}
		}
		return nil
	})
}

// conns makes n probes (new connections, or datagrams from new sockets) of
// proto from container from to address, batch at a time, each within
// timeout, and returns the results; udp probes expected to be answered
// (okTimeout) resend their datagram every udpResend ms. It may run on any
// goroutine.
func (e *svcLab) conns(from, proto, address string, n int, timeout time.Duration) ([]lab.ProbeResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []lab.ProbeResult
	for len(out) < n {
		reqs := make([]lab.ProbeRequest, min(batch, n-len(out)))
		for i := range reqs {
			reqs[i] = lab.ProbeRequest{Proto: proto, Addr: address, TimeoutMs: int(timeout.Milliseconds())}
			if timeout >= okTimeout {
				reqs[i].ResendMs = udpResend
			}
		}
		res, err := e.probes[from].Run(ctx, reqs)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// mustConns is conns expected to be answered (okTimeout), on the test's
// goroutine, failing it on a control error.
func (e *svcLab) mustConns(t *testing.T, from, proto, address string, n int) []lab.ProbeResult {
	t.Helper()
	return e.connsWithin(t, from, proto, address, n, okTimeout)
}

// tryConns is mustConns for probes expected to be dropped or refused
// (connTimeout).
func (e *svcLab) tryConns(t *testing.T, from, proto, address string, n int) []lab.ProbeResult {
	t.Helper()
	return e.connsWithin(t, from, proto, address, n, connTimeout)
}

func (e *svcLab) connsWithin(t *testing.T, from, proto, address string, n int, timeout time.Duration) []lab.ProbeResult {
	t.Helper()
	res, err := e.conns(from, proto, address, n, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tally counts the replies by name; failed lists the errors.
type tally struct {
	n      int
	by     map[string]int
	failed []string
}

func count(res []lab.ProbeResult) tally {
	c := tally{n: len(res), by: map[string]int{}}
	for _, r := range res {
		if r.OK {
			c.by[r.Reply]++
		} else {
			c.failed = append(c.failed, r.Error)
		}
	}
	return c
}

// servedBy tells whether every probe was answered, each by one of want
// (and, with all, each of want answered at least once).
func (c tally) servedBy(want []string, all bool) bool {
	ok := len(c.failed) == 0
	for k := range c.by {
		ok = ok && slices.Contains(want, k)
	}
	for _, w := range want {
		ok = ok && (!all || c.by[w] > 0)
	}
	return ok
}

func (c tally) String() string {
	names := make([]string, 0, len(c.by))
	for n := range c.by {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s:%d ", n, c.by[n])
	}
	fmt.Fprintf(&b, "failed:%d", len(c.failed))
	if len(c.failed) > 0 {
		fmt.Fprintf(&b, " (first: %s)", c.failed[0])
	}
	return b.String()
}

// reach makes n probes from every client to address and fails the test
// unless every one is answered by one of want and, when all is set, every
// one of want answers at least once from every client. It returns the
// tally over all clients.
func (e *svcLab) reach(t *testing.T, proto, address string, n int, all bool, want ...string) tally {
	t.Helper()
	total := tally{by: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range e.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.conns(c, proto, address, n, okTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			got := count(res)
			total.n += got.n
			total.failed = append(total.failed, got.failed...)
			for k, v := range got.by {
				total.by[k] += v
			}
			e.judge(t, c+" -> "+proto+" "+address, got, all, want)
		}()
	}
	wg.Wait()
	return total
}

// judge fails the test unless every probe of got was answered by one of
// want (and, with all, each of want answered).
func (e *svcLab) judge(t *testing.T, what string, got tally, all bool, want []string) {
	t.Helper()
	if !got.servedBy(want, all) {
		t.Errorf("%s: %s; want every probe answered by %v (each of them: %v)", what, got, want, all)
	}
}

// refusedFast fails the test unless every probe was refused (TCP RST or
// ICMP port unreachable: "connection refused") well before its timeout.
func refusedFast(t *testing.T, what string, res []lab.ProbeResult) {
	t.Helper()
	for _, r := range res {
		if r.OK || !strings.Contains(r.Error, "connection refused") || time.Duration(r.Us)*time.Microsecond > connTimeout/2 {
			t.Errorf("%s: %+v, want connection refused within %s (not a timeout of %s)", what, r, connTimeout/2, connTimeout)
		}
	}
}

// problemOf is the problem of a failed API call (nil when it is none).
func problemOf(err error) *openapi.Problem {
	var ce *client.Error
	if errors.As(err, &ce) {
		return &ce.Problem
	}
	return nil
}

// badService posts an invalid service and fails the test unless it is
// answered 4xx with a problem naming field (a substring of its "field")
// and nothing was stored.
func (e *svcLab) badService(t *testing.T, field string, body map[string]any) {
	t.Helper()
	b := map[string]any{"name": "bad", "network": svcNet, "selector": "app=web",
		"ports": []map[string]any{{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}}}
	for k, v := range body {
		b[k] = v
	}
	code, err := e.Do("POST", "/api/v1/services", b, nil)
	p := problemOf(err)
	if code < 400 || code > 499 || p == nil || !strings.Contains(p.Field, field) {
		t.Errorf("bad service %v: %d %v, want 4xx problem+json naming field %q", body, code, err, field)
	}
	var got openapi.Service
	if code, _ := e.Do("GET", "/api/v1/services/bad?network="+url.QueryEscape(svcNet), nil, &got); code != 404 {
		t.Errorf("after the refused create of %v: GET bad = %d, want 404 (nothing stored)", body, code)
		if code == 200 {
			// Let the next case start clean.
			e.MustDo(t, 204, "DELETE", "/api/v1/services/"+got.ID+writeWait, nil, nil)
		}
	}
}
