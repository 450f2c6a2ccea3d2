package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// logged turns on connection logging for p.
func (p pol) logged() pol { p["log"] = true; return p }

// create creates p (waiting until realized) and returns its id.
func (e *policyLab) create(t *testing.T, p pol) string {
	t.Helper()
	var out openapi.Policy
	e.MustDo(t, 201, "POST", "/api/v1/policies"+writeWait, p, &out)
	return out.ID
}

// send runs n probes of kind k from pod from to pod to and returns how
// many got an answer.
func (e *policyLab) send(t *testing.T, from, to string, k kind, n int, timeout time.Duration) int {
	t.Helper()
	addr := e.ip(to) + ":" + strconv.Itoa(k.port)
	reqs := make([]lab.ProbeRequest, n)
	for i := range reqs {
		reqs[i] = lab.ProbeRequest{Proto: k.proto, Addr: addr, TimeoutMs: int(timeout.Milliseconds())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	res, err := e.probes[pods(from)[0]].Run(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, r := range res {
		if r.OK {
			ok++
		}
	}
	return ok
}

// countersAndLog generates known traffic through one allow rule and one
// deny rule and checks the per-rule counters (summed and per host) and
// the connection log against it: 5 TCP connections y/b -> x/a:80 the
// allow rule lets in, 3 UDP datagrams z/c -> x/a:80 the deny rule drops
// (each a new connection: a new source port). Both rules are judged where
// x/a lives (ingress), so that host alone counts them.
func countersAndLog(t *testing.T, e *policyLab) {
	const allowed, denied = 5, 3
	allowID := e.create(t, policy("xa-from-y", "ns=x,pod=a").logged().ingress(peers(sel("ns=y")).on(proto("TCP", 80))))
	denyID := e.create(t, policy("xa-deny-z", "ns=x,pod=a").logged().deny().ingress(peers(sel("ns=z"))))
	if n := e.send(t, "y/b", "x/a", tcp80, allowed, 5*time.Second); n != allowed {
		t.Fatalf("%d of %d allowed TCP connections y/b -> x/a got through", n, allowed)
	}
	if n := e.send(t, "z/c", "x/a", udp80, denied, time.Second); n != 0 {
		t.Fatalf("%d of %d denied UDP probes z/c -> x/a got through", n, denied)
	}
	xa := e.ct[pods("x/a")[0]]

	// Counters: the allow rule decided every original-direction packet of
	// its 5 connections (SYN, ACK, data, FIN... at least 3 each); the deny
	// rule exactly the 3 datagrams, each a connection.
	e.Eventually(t, 30*time.Second, func() error {
		if err := e.ruleStats(allowID, xa.Host, func(r openapi.PolicyRuleStats) error {
			if r.Connections != allowed || r.Packets < 3*allowed || r.Bytes <= 0 {
				return fmt.Errorf("allow rule: %d connections, %d packets, %d bytes; want %d connections, >= %d packets",
					r.Connections, r.Packets, r.Bytes, allowed, 3*allowed)
			}
			return nil
		}); err != nil {
			return err
		}
		return e.ruleStats(denyID, xa.Host, func(r openapi.PolicyRuleStats) error {
			if r.Connections != denied || r.Packets != denied {
				return fmt.Errorf("deny rule: %d connections, %d packets; want %d of each", r.Connections, r.Packets, denied)
			}
			return nil
		})
	})

	// Log: one entry per connection, naming both containers.
	e.Eventually(t, 30*time.Second, func() error {
		if err := e.logHas(allowID, allowed, openapi.PolicyLogEntry{Host: xa.Host, Rule: "ingress[0]", Direction: "ingress",
			Verdict: openapi.ActionAllow, Protocol: "TCP", Source: openapi.PolicyLogAddress{Container: "y-b"},
			Dest: openapi.PolicyLogAddress{Container: "x-a", Port: 80}}); err != nil {
			return err
		}
		return e.logHas(denyID, denied, openapi.PolicyLogEntry{Host: xa.Host, Rule: "ingress[0]", Direction: "ingress",
			Verdict: openapi.ActionDeny, Protocol: "UDP", Source: openapi.PolicyLogAddress{Container: "z-c"},
			Dest: openapi.PolicyLogAddress{Container: "x-a", Port: 80}})
	})
}

// ruleStats checks the only rule of policy id with check, and that host
// holds all of it.
func (e *policyLab) ruleStats(id, host string, check func(openapi.PolicyRuleStats) error) error {
	var st openapi.PolicyStats
	if code, err := e.Do("GET", "/api/v1/policies/"+id+"/stats", nil, &st); code != 200 {
		return fmt.Errorf("stats of %s: %d %v", id, code, err)
	}
	if len(st.Rules) != 1 || st.Rules[0].Rule != "ingress[0]" {
		return fmt.Errorf("stats of %s: rules %+v, want ingress[0] only", st.Policy, st.Rules)
	}
	r := st.Rules[0]
	if err := check(r); err != nil {
		return fmt.Errorf("%s: %w (hosts %+v)", st.Policy, err, r.Hosts)
	}
	for _, h := range r.Hosts {
		want := openapi.HostRuleStats{Host: h.Host}
		if h.Host == host {
			want = openapi.HostRuleStats{Host: host, Packets: r.Packets, Bytes: r.Bytes, Connections: r.Connections}
		}
		if h != want {
			return fmt.Errorf("%s: host part %+v, want %+v (all of it on %s, where the rule is judged)", st.Policy, h, want, host)
		}
	}
	return nil
}

// logHas checks that policy id's log holds exactly n entries, each like
// want in host, rule, direction, verdict, protocol, containers and
// destination port.
func (e *policyLab) logHas(id string, n int, want openapi.PolicyLogEntry) error {
	var l openapi.PolicyLogPage
	if code, err := e.Do("GET", "/api/v1/policies/"+id+"/log?limit=1000", nil, &l); code != 200 {
		return fmt.Errorf("log of %s: %d %v", id, code, err)
	}
	if len(l.Items) != n {
		return fmt.Errorf("log of %s: %d entries, want %d: %+v", id, len(l.Items), n, l.Items)
	}
	for _, g := range l.Items {
		if g.Host != want.Host || g.Rule != want.Rule || g.Direction != want.Direction || g.Verdict != want.Verdict ||
			g.Protocol != want.Protocol || g.Source.Container != want.Source.Container ||
			g.Dest.Container != want.Dest.Container || g.Dest.Port != want.Dest.Port {
			return fmt.Errorf("log of %s: entry %+v, want one like %+v", id, g, want)
		}
	}
	return nil
}
