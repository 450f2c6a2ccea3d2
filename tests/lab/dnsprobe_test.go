package lab

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The probe server's DNS queries and benchmark, against a DNS server this
// test runs inside x/b's namespace (UDP and TCP on 10.99.0.2:53): A, SRV
// and PTR answers with their TTL, NXDOMAIN, a server that is not there.
func TestProbeDNS(t *testing.T) {
	_, pa, pb := probePair(t)
	pc, err := ListenPacketIn(pb.Proc.spec.Netns, "udp4", "10.99.0.2:53")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenIn(pb.Proc.spec.Netns, "10.99.0.2:53")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 5}
		switch {
		case q.Name == "a.test." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP("10.1.2.3")})
		case q.Name == "_http._tcp.s.test." && q.Qtype == dns.TypeSRV:
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Priority: 0, Weight: 100, Port: 80, Target: "s.test."})
		case q.Name == "3.2.1.10.in-addr.arpa." && q.Qtype == dns.TypePTR:
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: "a.test."})
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = s.ActivateAndServe() }()
		t.Cleanup(func() { _ = s.Shutdown() })
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	qs := []DNSQuery{
		{Server: "10.99.0.2:53", Name: "a.test", Type: "A", TimeoutMs: 2000},
		{Server: "10.99.0.2:53", Proto: "tcp", Name: "a.test", Type: "A", TimeoutMs: 2000},
		{Server: "10.99.0.2:53", Name: "_http._tcp.s.test", Type: "SRV", TimeoutMs: 2000},
		{Server: "10.99.0.2:53", Name: "3.2.1.10.in-addr.arpa", Type: "PTR", TimeoutMs: 2000},
		{Server: "10.99.0.2:53", Name: "b.test", Type: "A", TimeoutMs: 2000},
		{Server: "10.99.0.3:53", Name: "a.test", Type: "A", TimeoutMs: 300},
		{Server: "10.99.0.2:53", Name: "a.test", Type: "BOGUS", TimeoutMs: 300},
	}
	want := []struct {
		rcode   string
		answers []string
	}{
		{"NOERROR", []string{"10.1.2.3"}}, {"NOERROR", []string{"10.1.2.3"}},
		{"NOERROR", []string{"0 100 80 s.test."}}, {"NOERROR", []string{"a.test."}},
		{"NXDOMAIN", nil}, {"-", nil}, {"-", nil},
	}
	res, err := pa.DNS(ctx, qs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range res {
		switch w := want[i]; {
		case w.rcode == "-" && a.OK:
			t.Errorf("%+v: %s, want an error", qs[i], a)
		case w.rcode != "-" && (!a.OK || a.Rcode != w.rcode || !slices.Equal(a.Answers, w.answers) || len(w.answers) > 0 && a.TTL != 5 || a.Us <= 0):
			t.Errorf("%+v: %s, want %s %v ttl 5", qs[i], a, w.rcode, w.answers)
		}
	}

	b, err := pa.DNSBench(ctx, DNSBench{DNSQuery: qs[0], Count: 300, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if b.OK != 300 || b.Failed != 0 || len(b.LatUs) != 300 || b.ElapsedUs <= 0 {
		t.Errorf("bench: ok %d failed %d (%s) latencies %d elapsed %d us", b.OK, b.Failed, b.Error, len(b.LatUs), b.ElapsedUs)
	}
	nx := DNSBench{DNSQuery: qs[4], Count: 10, Concurrency: 2, Rcode: dns.RcodeNameError}
	if b, err := pa.DNSBench(ctx, nx); err != nil || b.OK != 10 {
		t.Errorf("bench expecting NXDOMAIN: %+v %v", b, err)
	}
	nx.Rcode = 0
	if b, err := pa.DNSBench(ctx, nx); err != nil || b.Failed != 10 || b.Error != "rcode NXDOMAIN" {
		t.Errorf("bench expecting NOERROR of a name that is not there: %+v %v", b, err)
	}
}
