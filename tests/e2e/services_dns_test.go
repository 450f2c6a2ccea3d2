package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// upstreamAddr is the agents' upstream resolver in the service lab
// (SWITCHYARD_DNS_UPSTREAM): the lab's underlay gateway (lab.Gateway of the
// default underlay 192.168.200.0/24), where dnsForwarding runs a server.
const upstreamAddr = "192.168.200.1:53"

// maxTTL is the longest TTL the node-local resolver may give its records.
const maxTTL = 5

// fqdn is the qualified name of a container or service of network.
func fqdn(name, network string) string { return name + "." + network + "." + dnsDomain + "." }

// ptr is the reverse-lookup name of an IPv4 address.
func ptr(ip string) string {
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return r
}

// gateway is the resolver of container c: its network's gateway, port 53.
func (e *svcLab) gateway(c string) string {
	gw := e.net.Gateway
	if e.ct[c].Network == isoNet {
		gw = e.iso.Gateway
	}
	return net.JoinHostPort(gw, "53")
}

// ask runs queries of names (all of type typ over proto) from container c
// to its resolver, at once.
func (e *svcLab) ask(t *testing.T, c, proto, typ string, names ...string) []lab.DNSAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	qs := make([]lab.DNSQuery, len(names))
	for i, n := range names {
		qs[i] = lab.DNSQuery{Server: e.gateway(c), Proto: proto, Name: n, Type: typ, TimeoutMs: 5000}
	}
	res, err := e.probes[c].DNS(ctx, qs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// expectDNS asks from every container of froms, over UDP and TCP, all at
// once, once each (no retry: a realized write is in force) and fails the
// test unless each answer has the rcode and exactly the answers, with a
// TTL of at most maxTTL.
func (e *svcLab) expectDNS(t *testing.T, froms []string, typ, name, rcode string, answers ...string) {
	t.Helper()
	want := slices.Clone(answers)
	slices.Sort(want)
	var wg sync.WaitGroup
	for _, c := range froms {
		for _, proto := range []string{"udp", "tcp"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := e.query(c, proto, typ, name, 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				got := slices.Clone(a.Answers)
				slices.Sort(got)
				if !a.OK || a.Rcode != rcode || !slices.Equal(got, want) || len(want) > 0 && (a.TTL == 0 || a.TTL > maxTTL) {
					t.Errorf("%s (%s on %s) %s %s %s: %s; want %s %v, TTL 1..%d", c, e.ct[c].IP, e.ct[c].Host, proto, typ, name, a, rcode, answers, maxTTL)
				}
			}()
		}
	}
	wg.Wait()
}

// query asks container c's resolver one question; the error is about the
// probe server's control socket. It may run on any goroutine.
func (e *svcLab) query(c, proto, typ, name string, timeout time.Duration) (lab.DNSAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	res, err := e.probes[c].DNS(ctx, []lab.DNSQuery{{Server: e.gateway(c), Proto: proto, Name: name, Type: typ, TimeoutMs: int(timeout.Milliseconds())}})
	if err != nil {
		return lab.DNSAnswer{}, err
	}
	return res[0], nil
}

// resolverUp stops the scenario early when the resolver of c1 does not
// answer at all (every later query would wait for its timeout).
func (e *svcLab) resolverUp(t *testing.T) {
	t.Helper()
	a, err := e.query("c1", "udp", "A", fqdn("c1", svcNet), 2*time.Second)
	if err != nil || !a.OK {
		t.Fatalf("c1's resolver %s does not answer: %s %v", e.gateway("c1"), a, err)
	}
}

// dnsRecords: from a container on every host, over UDP and TCP, the
// network's resolver (its gateway) answers A for containers and services,
// SRV for a named service port, PTR for container addresses; names of
// another network, and addresses of its containers, are NXDOMAIN both ways.
func (e *svcLab) dnsRecords(t *testing.T) {
	e.resolverUp(t)
	all := e.clients
	e.expectDNS(t, all, "A", fqdn("w2", svcNet), "NOERROR", e.ct["w2"].IP)
	e.expectDNS(t, all, "A", fqdn("c3", svcNet), "NOERROR", e.ct["c3"].IP)
	e.expectDNS(t, all, "A", fqdn("web", svcNet), "NOERROR", e.web.VIP)
	e.expectDNS(t, all, "PTR", ptr(e.ct["w3"].IP), "NOERROR", fqdn("w3", svcNet))
	e.expectDNS(t, all, "A", fqdn("nope", svcNet), "NXDOMAIN")
	e.expectDNS(t, all, "A", fqdn("i1", isoNet), "NXDOMAIN")
	e.expectDNS(t, all, "A", fqdn("w1", isoNet), "NXDOMAIN")
	e.expectDNS(t, all, "PTR", ptr(e.ct["i1"].IP), "NXDOMAIN")
	// SRV of the named port: the service port and the service's name.
	for _, c := range all {
		for _, proto := range []string{"udp", "tcp"} {
			a := e.ask(t, c, proto, "SRV", "_http._tcp."+fqdn("web", svcNet))[0]
			if f := strings.Fields(strings.Join(a.Answers, "")); !a.OK || a.Rcode != "NOERROR" || len(a.Answers) != 1 || len(f) != 4 || f[2] != "80" || f[3] != fqdn("web", svcNet) {
				t.Errorf("%s %s SRV _http._tcp.web: %s, want one record: port 80, target %s", c, proto, a, fqdn("web", svcNet))
			}
		}
	}
	e.expectDNS(t, all, "SRV", "_nope._tcp."+fqdn("web", svcNet), "NXDOMAIN")
	// The other network's own resolver knows its names, not svc's.
	iso := []string{"i1"}
	e.expectDNS(t, iso, "A", fqdn("i1", isoNet), "NOERROR", e.ct["i1"].IP)
	e.expectDNS(t, iso, "A", fqdn("w1", svcNet), "NXDOMAIN")
	e.expectDNS(t, iso, "A", fqdn("web", svcNet), "NXDOMAIN")
	e.expectDNS(t, iso, "PTR", ptr(e.ct["w1"].IP), "NXDOMAIN")
}

// dnsSearchList: a managed sandbox's resolv.conf (bind-mounted by `ip netns
// exec`) points at the gateway with the network's search list, so the
// system resolver (glibc, getent) finds short names: "w2", "web",
// "w3.svc"; a name of the other network stays unknown.
func (e *svcLab) dnsSearchList(t *testing.T) {
	e.resolverUp(t)
	ns := e.Sandbox("h1", "c1", svcNet)
	b, err := os.ReadFile(filepath.Join("/etc/netns", ns, "resolv.conf"))
	if err != nil {
		t.Fatalf("c1's resolv.conf: %v", err)
	}
	conf := string(b)
	for _, want := range []string{"nameserver " + e.net.Gateway, "search " + svcNet + "." + dnsDomain + " " + dnsDomain, "ndots:2"} {
		if !strings.Contains(conf, want) {
			t.Errorf("c1's resolv.conf lacks %q:\n%s", want, conf)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ name, want string }{{"w2", e.ct["w2"].IP}, {"web", e.web.VIP}, {"w3." + svcNet, e.ct["w3"].IP}, {"i1", ""}} {
		out, err := lab.RunIn(ctx, "", "ip", "netns", "exec", ns, "getent", "ahostsv4", c.name)
		f := strings.Fields(out)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("getent ahostsv4 %s in c1: %q, want not found", c.name, out)
		case c.want != "" && (err != nil || len(f) == 0 || f[0] != c.want):
			t.Errorf("getent ahostsv4 %s in c1: %q %v, want %s", c.name, out, err, c.want)
		}
	}
}

// dnsStale: right after each realized write, every host answers the new
// state, never the old one: a container created, deleted (its name and its
// address NXDOMAIN), created again under the same name with another
// address, moved; a service created and deleted.
func (e *svcLab) dnsStale(t *testing.T) {
	e.resolverUp(t)
	all := e.clients
	name := fqdn("st", svcNet)
	st := e.Container(t, "st", svcNet, "h2", nil)
	t.Cleanup(func() { _, _ = e.Do("DELETE", "/api/v1/containers/st"+writeWait, nil, nil) })
	e.expectDNS(t, all, "A", name, "NOERROR", st.IP)
	e.MustDo(t, 204, "DELETE", "/api/v1/containers/st"+writeWait, nil, nil)
	e.expectDNS(t, all, "A", name, "NXDOMAIN")
	e.expectDNS(t, all, "PTR", ptr(st.IP), "NXDOMAIN")

	again := e.Container(t, "st", svcNet, "h3", map[string]any{"ip": "10.40.0.200"})
	if again.IP == st.IP {
		t.Fatalf("st was created again with its old address %s", st.IP)
	}
	e.expectDNS(t, all, "A", name, "NOERROR", again.IP)
	e.expectDNS(t, all, "PTR", ptr(st.IP), "NXDOMAIN")
	e.MustDo(t, 200, "POST", "/api/v1/containers/st/move"+writeWait, map[string]any{"host": "h1"}, nil)
	e.expectDNS(t, all, "A", name, "NOERROR", again.IP)
	e.expectDNS(t, all, "PTR", ptr(again.IP), "NOERROR", name)

	var s openapi.Service
	e.MustDo(t, 201, "POST", "/api/v1/services"+writeWait, map[string]any{"name": "tmp", "network": svcNet, "selector": "app=web",
		"ports": []map[string]any{{"name": "http", "port": 80}}}, &s)
	e.expectDNS(t, all, "A", fqdn("tmp", svcNet), "NOERROR", s.VIP)
	e.deleteService(t, s)
	e.expectDNS(t, all, "A", fqdn("tmp", svcNet), "NXDOMAIN")
}

// dnsForwarding: names outside the domain go to the upstream resolver
// (SWITCHYARD_DNS_UPSTREAM, a server this test runs on the underlay),
// answers and NXDOMAIN alike; with the upstream gone, SERVFAIL.
func (e *svcLab) dnsForwarding(t *testing.T) {
	e.resolverUp(t)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == "up.example." && q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
				A: net.ParseIP("192.0.2.7")})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	pc, err := lab.ListenPacketIn(e.Lab.Underlay, "udp4", upstreamAddr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := lab.ListenIn(e.Lab.Underlay, upstreamAddr)
	if err != nil {
		t.Fatal(err)
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}}
	for _, s := range servers {
		go func() { _ = s.ActivateAndServe() }()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	for _, c := range e.clients {
		for _, proto := range []string{"udp", "tcp"} {
			a := e.ask(t, c, proto, "A", "up.example.", "nx.example.")
			if !a[0].OK || a[0].Rcode != "NOERROR" || !slices.Equal(a[0].Answers, []string{"192.0.2.7"}) {
				t.Errorf("%s %s up.example. (forwarded): %s, want 192.0.2.7", c, proto, a[0])
			}
			if !a[1].OK || a[1].Rcode != "NXDOMAIN" {
				t.Errorf("%s %s nx.example. (forwarded): %s, want NXDOMAIN", c, proto, a[1])
			}
		}
	}
	for _, s := range servers {
		_ = s.Shutdown()
	}
	for _, c := range e.clients {
		if a := e.ask(t, c, "udp", "A", "up.example.")[0]; !a.OK || a.Rcode != "SERVFAIL" {
			t.Errorf("%s up.example. with the upstream down: %s, want SERVFAIL", c, a)
		}
	}
}

// dnsControllerDown: with the controller stopped (and every agent having
// noticed), every host's resolver still answers, and the VIP still
// balances. TestServices starts the controller again.
func (e *svcLab) dnsControllerDown(t *testing.T) {
	from := map[string]int{}
	for h, a := range e.Agents {
		from[h] = len(a.Log())
	}
	e.resolverUp(t)
	e.Controller.Stop()
	for h, a := range e.Agents {
		e.Eventually(t, 20*time.Second, func() error {
			if !strings.Contains(a.Log()[from[h]:], "cannot fetch the program") {
				return fmt.Errorf("agent %s has not noticed the controller is gone", h)
			}
			return nil
		})
	}
	all := e.clients
	e.expectDNS(t, all, "A", fqdn("w1", svcNet), "NOERROR", e.ct["w1"].IP)
	e.expectDNS(t, all, "A", fqdn("web", svcNet), "NOERROR", e.web.VIP)
	e.expectDNS(t, all, "PTR", ptr(e.ct["w2"].IP), "NOERROR", fqdn("w2", svcNet))
	e.expectDNS(t, all, "A", fqdn("i1", isoNet), "NXDOMAIN")
	e.reach(t, "tcp", addr(e.web, 0), 10, false, "w1", "w2", "w3")
}
