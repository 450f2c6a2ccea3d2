package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

const (
	trNet  = "tr"
	trCIDR = "10.70.0.0/24"
	trPub  = 18091
)

// TestTrace's cluster is an extLab (external_lab_test.go) of two hosts
// (over Geneve, then VXLAN): network tr with web and cli on h1 and db on
// h2 (db publishes host port trPub to its port 80), service websvc over
// app=web, and the policy db-in: db takes TCP 80 from app=web and from the
// outside's client address only. Every container runs a probe server.

// TestTrace checks POST /api/v1/traces against the real thing: for policy
// and service scenarios the intent verdict, the switches' verdicts
// (ofproto/trace run by the agents) and the live probe agree with the
// reachability the lab's probe servers observe; a trace to the service
// names its backend candidates; a trace from the outside through a
// published port; and a flow deleted by hand on h2 is reported as a
// disagreement naming h2 and that flow.
func TestTrace(t *testing.T) {
	for _, tunnel := range []string{openapi.TunnelGeneve, openapi.TunnelVXLAN} {
		t.Run(tunnel, func(t *testing.T) { runTraceLab(t, tunnel) })
	}
}

func runTraceLab(t *testing.T, tunnel string) {
	start := time.Now()
	e := &extLab{ct: map[string]openapi.Container{}, probes: map[string]*lab.Probe{}}
	e.Cluster = cluster.New(t, cluster.Options{Hosts: 2, Tunnel: tunnel})
	e.out = e.Lab.AddOutside(t)
	e.outP = e.out.StartServer(t, e.Bin.Probe)
	e.Network(t, trNet, trCIDR)
	e.add(t, "web", trNet, "h1", map[string]any{"labels": map[string]string{"app": "web"}})
	e.add(t, "cli", trNet, "h1", map[string]any{"labels": map[string]string{"app": "cli"}})
	e.add(t, "db", trNet, "h2", map[string]any{"labels": map[string]string{"app": "db"},
		"publish": []map[string]any{{"hostPort": trPub, "port": 80}}})
	e.MustDo(t, 201, "POST", "/api/v1/services"+writeWait, map[string]any{"name": "websvc", "network": trNet, "selector": "app=web",
		"ports": []map[string]any{{"port": 80}}}, nil)
	e.MustDo(t, 201, "POST", "/api/v1/policies"+writeWait, map[string]any{"name": "db-in", "network": trNet, "selector": "app=db",
		"ingress": []map[string]any{
			{"peers": []map[string]any{{"selector": "app=web"}}, "ports": []map[string]any{{"port": 80}}},
			{"peers": []map[string]any{{"cidr": e.out.Client.String() + "/32"}}, "ports": []map[string]any{{"port": 80}}},
		}}, nil)
	t.Logf("trace lab (%s) up in %s", tunnel, time.Since(start).Round(time.Millisecond))
	defer e.Lab.DumpOnFailure(t)

	t.Run("agreement", e.traceAgreement)
	t.Run("service-backends", e.traceServiceBackends)
	t.Run("from-outside", e.traceFromOutside)
	t.Run("drifted-host", e.traceDriftedHost)
}

// trace posts a trace; with probe it honours the rate limit's Retry-After.
func (e *extLab) trace(t *testing.T, body map[string]any) openapi.Trace {
	t.Helper()
	for {
		var tr openapi.Trace
		code, err := e.Do("POST", "/api/v1/traces", body, &tr)
		if code == 429 {
			time.Sleep(2 * time.Second) // the probe rate limit refills one probe every 2 s
			continue
		}
		if code != 200 {
			t.Fatalf("trace %v: %d %v", body, code, err)
		}
		return tr
	}
}

// observed probes dst from src's probe server once: whether it answered.
func (e *extLab) observed(t *testing.T, src, proto, addr string) bool {
	t.Helper()
	res := probeN(t, e.probes[src], proto, "", addr, 1, 2*time.Second)
	return res[0].OK
}

type traceCase struct {
	src, dst, proto string
	port            int
	dstKind         string // container (default) or service
	allowed         bool
	probe           bool
	// switchVerdict is the last switch's verdict when not output (allowed)
	// or drop (denied).
	switchVerdict string
}

// traceAgreement: the layers agree with each other and with what is observed.
func (e *extLab) traceAgreement(t *testing.T) {
	ip := func(n string) string { return e.ct[n].IP }
	for _, tc := range []traceCase{
		{src: "web", dst: "db", proto: "TCP", port: 80, allowed: true, probe: true},
		{src: "cli", dst: "db", proto: "TCP", port: 80, allowed: false, probe: true},
		{src: "web", dst: "db", proto: "UDP", port: 80, allowed: false},
		{src: "db", dst: "web", proto: "TCP", port: 81, allowed: true, probe: true},
		{src: "cli", dst: "web", proto: "ICMP", allowed: true, probe: true},
		{src: "cli", dst: "websvc", proto: "TCP", port: 80, dstKind: "service", allowed: true, probe: true},
		{src: "web", dst: "websvc", proto: "TCP", port: 80, dstKind: "service", allowed: true}, // hairpin
		// No such service port: the VIP is no address of the network, so
		// the packet leaves by h2's gateway port (whose kernel drops it).
		{src: "db", dst: "websvc", proto: "UDP", port: 80, dstKind: "service", allowed: false, switchVerdict: "output"},
	} {
		name := fmt.Sprintf("%s->%s %s/%d", tc.src, tc.dst, tc.proto, tc.port)
		t.Run(name, func(t *testing.T) {
			dst := map[string]any{"container": tc.dst}
			addr := ip(tc.dst)
			if tc.dstKind == "service" {
				dst = map[string]any{"service": tc.dst}
				var s openapi.Service
				e.MustDo(t, 200, "GET", "/api/v1/services/"+tc.dst+"?network="+trNet, nil, &s)
				addr = s.VIP
			}
			body := map[string]any{"source": map[string]any{"container": tc.src}, "destination": dst, "protocol": tc.proto, "probe": tc.probe}
			if tc.port != 0 {
				body["port"] = tc.port
			}
			tr := e.trace(t, body)
			target := addr
			if tc.port != 0 {
				target = addr + ":" + strconv.Itoa(tc.port)
			}
			seen := e.observed(t, tc.src, strings.ToLower(tc.proto), target)
			if tr.Intent.Allowed != tc.allowed || seen != tc.allowed {
				t.Fatalf("intent allowed=%v observed=%v, want %v: %s\n%s", tr.Intent.Allowed, seen, tc.allowed, tr.Intent.Verdict, tr.Conclusion)
			}
			if tr.Disagreement {
				t.Fatalf("layers disagree: %+v\n%s", tr.Disagreements, switchOutputs(tr))
			}
			for _, r := range tr.Realized {
				if !r.Current || r.Switch == nil || r.Switch.Status != "ok" {
					t.Fatalf("host %s realized %+v\n%s", r.Host, r, switchOutputs(tr))
				}
			}
			last := tr.Realized[len(tr.Realized)-1].Switch
			want := map[bool]string{true: "output", false: "drop"}[tc.allowed]
			if tc.switchVerdict != "" {
				want = tc.switchVerdict
			}
			if last.Verdict != want {
				t.Fatalf("last switch verdict %s (%s), want %s", last.Verdict, last.DatapathActions, want)
			}
			if tc.probe {
				want := map[bool]string{true: "answered", false: "timeout"}[tc.allowed]
				if tr.Live == nil || tr.Live.Status != want {
					t.Fatalf("live %+v, want %s", tr.Live, want)
				}
			}
			t.Logf("%s", tr.Conclusion)
		})
	}
}

// traceServiceBackends: a trace to the service names its backend candidates.
func (e *extLab) traceServiceBackends(t *testing.T) {
	tr := e.trace(t, map[string]any{"source": map[string]any{"container": "db"}, "destination": map[string]any{"service": "websvc"}, "port": 80})
	s := tr.Intent.Service
	if s == nil || len(s.Backends) != 1 || s.Backends[0].Container != "web" || s.Chosen != "web" || !s.Backends[0].Usable {
		t.Fatalf("service %+v", s)
	}
	if tr.Intent.Path != "tunnel" || strings.Join(tr.Intent.Hosts, ",") != "h2,h1" || tr.Disagreement {
		t.Fatalf("db -> websvc: %s %v %+v", tr.Intent.Path, tr.Intent.Hosts, tr.Disagreements)
	}
	if len(tr.Intent.NAT) == 0 || tr.Intent.NAT[0].Kind != "dnat" || tr.Intent.NAT[0].To != e.ct["web"].IP+":80" {
		t.Fatalf("nat %+v", tr.Intent.NAT)
	}
}

// traceFromOutside: through db's published port on h2, from the
// outside's client (allowed by its cidr rule) and from its server address
// (not).
func (e *extLab) traceFromOutside(t *testing.T) {
	for _, c := range []struct {
		src     string
		allowed bool
	}{{e.out.Client.String(), true}, {e.out.Server.String(), false}} {
		tr := e.trace(t, map[string]any{"source": map[string]any{"address": c.src}, "destination": map[string]any{"host": "h2"}, "port": trPub})
		seen := e.fromOutside(t, "tcp", c.src, e.at("h2", trPub), 1)[0].OK
		if tr.Intent.Path != "inbound" || tr.Intent.Allowed != c.allowed || seen != c.allowed || tr.Disagreement {
			t.Fatalf("from %s: path %s allowed %v observed %v, want %v; %+v\n%s", c.src, tr.Intent.Path, tr.Intent.Allowed, seen, c.allowed,
				tr.Disagreements, switchOutputs(tr))
		}
		if len(tr.Realized) != 1 || tr.Realized[0].Host != "h2" || tr.Realized[0].Switch.Status != "ok" {
			t.Fatalf("realized %+v", tr.Realized)
		}
	}
}

// traceDriftedHost: db's delivery flow is deleted by hand on h2; the trace
// reports h2 and that flow. h2's agent repairs it at its next resync (2 s
// in the lab): should it do so between the deletion and the trace, the
// deletion is made again.
func (e *extLab) traceDriftedHost(t *testing.T) {
	body := map[string]any{"source": map[string]any{"container": "web"}, "destination": map[string]any{"container": "db"}, "port": 80}
	h := e.Lab.Host("h2")
	db := e.ct["db"]
	var n openapi.Network
	e.MustDo(t, 200, "GET", "/api/v1/networks/"+trNet, nil, &n)
	var tr openapi.Trace
	var found *openapi.TraceDisagreement
	for i := 0; found == nil && i < 10; i++ {
		h.OFCtl(t, "del-flows", "br-int", fmt.Sprintf("table=12,reg0=%d,dl_dst=%s", n.VNI, db.MAC))
		tr = e.trace(t, body)
		for k, d := range tr.Disagreements {
			if d.Host == "h2" && strings.Join(d.Layers, ",") == "compiled,realized" {
				found = &tr.Disagreements[k]
			}
		}
	}
	if found == nil || !strings.Contains(found.Flow, "L2Forwarding") || !strings.Contains(found.Flow, "container db") {
		t.Fatalf("want h2's missing L2Forwarding flow of db, got %+v\n%s", tr.Disagreements, switchOutputs(tr))
	}
	if !tr.Intent.Allowed || !strings.HasPrefix(tr.Conclusion, "DISAGREEMENT") {
		t.Fatalf("intent %v conclusion %s", tr.Intent.Allowed, tr.Conclusion)
	}
	t.Logf("%s", tr.Conclusion)
	e.Eventually(t, 30*time.Second, func() error { // the agent's resync restores the flow
		if tr := e.trace(t, body); tr.Disagreement {
			return fmt.Errorf("not repaired yet: %+v", tr.Disagreements)
		}
		return nil
	})
}

// switchOutputs prints the switches' traces, for failures.
func switchOutputs(tr openapi.Trace) string {
	var b strings.Builder
	for i, r := range tr.Realized {
		if r.Switch != nil {
			fmt.Fprintf(&b, "== %s (%s): %s\n%s\n", r.Host, r.Switch.Status, r.Switch.Error, r.Switch.Output)
		}
		if i < len(tr.Compiled) {
			fmt.Fprintf(&b, "-- compiled %s: %s -> %s %s\n", tr.Compiled[i].Host, tr.Compiled[i].Flow, tr.Compiled[i].Verdict, tr.Compiled[i].Output)
		}
	}
	return b.String()
}
