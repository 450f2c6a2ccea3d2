package dns

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/openapi"
)

// The tests serve on loopback: 127.0.0.1 is network net1's resolver
// address (VNI 1), 127.0.0.2 net2's (VNI 2), 127.0.0.3 no network's.

func loopbackNetworks(a netip.Addr) (int64, bool) {
	switch a {
	case netip.MustParseAddr("127.0.0.1"):
		return 1, true
	case netip.MustParseAddr("127.0.0.2"):
		return 2, true
	}
	return 0, false
}

func testProgram() *openapi.Program {
	port := func(name, network string) openapi.ContainerPort {
		return openapi.ContainerPort{Name: "p-" + name, Container: name, Network: network,
			DNSDomain: "switchyard.local", DNSSearch: network + ".switchyard.local switchyard.local"}
	}
	return &openapi.Program{
		Containers: []openapi.ContainerPort{port("web", "net1"), port("secret", "net2")},
		DNS: []openapi.DNSRecord{
			{Network: "net1", VNI: 1, Kind: openapi.DNSContainer, Name: "web", IP: "10.1.0.5"},
			{Network: "net1", VNI: 1, Kind: openapi.DNSContainer, Name: "db", IP: "10.1.0.6"},
			{Network: "net1", VNI: 1, Kind: openapi.DNSService, Name: "api", IP: "10.96.0.10", Ports: []openapi.ServicePort{
				{Name: "http", Port: 80, TargetPort: 8080, Protocol: "TCP"},
				{Name: "metrics", Port: 9100, Protocol: "UDP"},
				{Port: 443, Protocol: "TCP"}, // unnamed: no SRV
			}},
			{Network: "net2", VNI: 2, Kind: openapi.DNSContainer, Name: "secret", IP: "10.2.0.5"},
			// A network with no local port: no domain known, not served.
			{Network: "net3", VNI: 3, Kind: openapi.DNSContainer, Name: "lost", IP: "10.3.0.5"},
		},
	}
}

// server is a Server serving on loopback.
type server struct {
	*Server
	udpPort, tcpPort int
}

func startServer(t testing.TB, cfg Config) *server {
	t.Helper()
	if cfg.NetworkOf == nil {
		cfg.NetworkOf = loopbackNetworks
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second // tests that want SERVFAIL set their own
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(testProgram())
	// 0.0.0.0 so that 127.0.0.2 and .3 reach it too (a port of its own).
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, u, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &server{Server: s, udpPort: u.LocalAddr().(*net.UDPAddr).Port, tcpPort: l.Addr().(*net.TCPAddr).Port}
}

// query asks the server at local (a loopback address) over proto.
func (s *server) query(t *testing.T, proto, local, name string, qtype uint16) *dns.Msg {
	t.Helper()
	port := s.udpPort
	if proto == "tcp" {
		port = s.tcpPort
	}
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, net.JoinHostPort(local, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("%s %s %s at %s: %v", proto, name, dns.TypeToString[qtype], local, err)
	}
	if r.Id != m.Id {
		t.Fatalf("answer id %d, query id %d", r.Id, m.Id)
	}
	return r
}

func wantRcode(t *testing.T, r *dns.Msg, rcode int) {
	t.Helper()
	if r.Rcode != rcode {
		t.Fatalf("rcode %s, want %s:\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[rcode], r)
	}
}

// answers renders the answer section without the owner's header.
func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Ttl != TTL {
			out = append(out, "bad ttl "+rr.String())
		}
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

func wantAnswers(t *testing.T, r *dns.Msg, want ...string) {
	t.Helper()
	wantRcode(t, r, dns.RcodeSuccess)
	if got := answers(r); !slices.Equal(got, want) {
		t.Fatalf("answers %q, want %q\n%v", got, want, r)
	}
	if !r.Authoritative {
		t.Errorf("local answer not authoritative")
	}
}

func TestA(t *testing.T) {
	s := startServer(t, Config{Upstreams: []string{"127.0.0.1:1"}})
	for _, proto := range []string{"udp", "tcp"} {
		wantAnswers(t, s.query(t, proto, "127.0.0.1", "web.net1.switchyard.local.", dns.TypeA), "10.1.0.5")
		wantAnswers(t, s.query(t, proto, "127.0.0.1", "WEB.Net1.Switchyard.Local.", dns.TypeA), "10.1.0.5")
		wantAnswers(t, s.query(t, proto, "127.0.0.1", "api.net1.switchyard.local.", dns.TypeA), "10.96.0.10")
		wantAnswers(t, s.query(t, proto, "127.0.0.2", "secret.net2.switchyard.local.", dns.TypeA), "10.2.0.5")
		// The name exists, not with this type: NOERROR, no answer, SOA.
		r := s.query(t, proto, "127.0.0.1", "web.net1.switchyard.local.", dns.TypeAAAA)
		wantAnswers(t, r)
		if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("NODATA without SOA: %v", r)
		}
	}
}

func TestSRV(t *testing.T) {
	s := startServer(t, Config{Upstreams: []string{"127.0.0.1:1"}})
	r := s.query(t, "udp", "127.0.0.1", "_http._tcp.api.net1.switchyard.local.", dns.TypeSRV)
	wantAnswers(t, r, "0 0 80 api.net1.switchyard.local.")
	if len(r.Extra) != 1 || r.Extra[0].(*dns.A).A.String() != "10.96.0.10" {
		t.Errorf("SRV without the target's address in the additional section: %v", r.Extra)
	}
	wantAnswers(t, s.query(t, "tcp", "127.0.0.1", "_metrics._udp.api.net1.switchyard.local.", dns.TypeSRV),
		"0 0 9100 api.net1.switchyard.local.")
	// Wrong protocol, and a name between the zone and a record: NXDOMAIN
	// and NODATA.
	wantRcode(t, s.query(t, "udp", "127.0.0.1", "_http._udp.api.net1.switchyard.local.", dns.TypeSRV), dns.RcodeNameError)
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "_tcp.api.net1.switchyard.local.", dns.TypeSRV))
}

func TestPTR(t *testing.T) {
	s := startServer(t, Config{Upstreams: []string{"127.0.0.1:1"}})
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "5.0.1.10.in-addr.arpa.", dns.TypePTR), "web.net1.switchyard.local.")
	wantAnswers(t, s.query(t, "tcp", "127.0.0.1", "10.0.96.10.in-addr.arpa.", dns.TypePTR), "api.net1.switchyard.local.")
	// Another network's address: not answered, not forwarded either.
	wantRcode(t, s.query(t, "udp", "127.0.0.1", "5.0.2.10.in-addr.arpa.", dns.TypePTR), dns.RcodeNameError)
	wantAnswers(t, s.query(t, "udp", "127.0.0.2", "5.0.2.10.in-addr.arpa.", dns.TypePTR), "secret.net2.switchyard.local.")
}

func TestIsolation(t *testing.T) {
	up := startUpstream(t)
	s := startServer(t, Config{Upstreams: []string{up}})
	for _, c := range []struct{ local, name string }{
		{"127.0.0.1", "secret.net2.switchyard.local."}, // another network's name
		{"127.0.0.2", "web.net1.switchyard.local."},
		{"127.0.0.1", "nope.net1.switchyard.local."}, // no such name
		{"127.0.0.1", "net9.switchyard.local."},
		{"127.0.0.1", "lost.net3.switchyard.local."}, // network without a local port
		{"127.0.0.3", "web.net1.switchyard.local."},  // an address of no network
	} {
		for _, proto := range []string{"udp", "tcp"} {
			r := s.query(t, proto, c.local, c.name, dns.TypeA)
			wantRcode(t, r, dns.RcodeNameError)
			if !r.Authoritative || len(r.Ns) != 1 {
				t.Errorf("%s from %s: NXDOMAIN not authoritative or without SOA: %v", c.name, c.local, r)
			}
		}
	}
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "net1.switchyard.local.", dns.TypeA)) // the zone exists
	if got := testutil.ToFloat64(s.metrics.queries.WithLabelValues(ResultForward)); got != 0 {
		t.Errorf("%v names under the domain were forwarded", got)
	}
}

// startUpstream runs a fake upstream resolver on loopback (UDP and TCP,
// one port) that knows example.com.
func startUpstream(t *testing.T) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == "example.com." && q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR("example.com. 300 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	// The same port for UDP and TCP: the kernel picks a free UDP port,
	// whose TCP twin another process may hold; then try another.
	var u net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		if u, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", u.LocalAddr().String()); err == nil {
			break
		}
		u.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the shutdowns below (cleanups run last first)
	for _, srv := range []*dns.Server{{PacketConn: u, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u.LocalAddr().String()
}

func TestForward(t *testing.T) {
	up := startUpstream(t)
	// The first upstream is dead (nothing listens: refused at once), the
	// second answers. The timeout is generous: on a loaded machine a
	// loopback answer may take a while, and a short one would flake.
	dead := closedUpstream(t)
	s := startServer(t, Config{Upstreams: []string{dead, up}, Timeout: 5 * time.Second})
	for _, proto := range []string{"udp", "tcp"} {
		r := s.query(t, proto, "127.0.0.1", "example.com.", dns.TypeA)
		wantRcode(t, r, dns.RcodeSuccess)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Fatalf("%s: forwarded answer %v", proto, r)
		}
		wantRcode(t, s.query(t, proto, "127.0.0.2", "nothing.example.", dns.TypeA), dns.RcodeNameError)
	}
	if got := testutil.ToFloat64(s.metrics.queries.WithLabelValues(ResultForward)); got != 4 {
		t.Errorf("forwarded %v, want 4", got)
	}
	if got := testutil.ToFloat64(s.metrics.forwardFailures.WithLabelValues(dead)); got != 4 {
		t.Errorf("forward failures of the dead upstream %v, want 4", got)
	}
}

// closedUpstream is a loopback address where nothing listens (UDP and TCP
// refuse at once).
func closedUpstream(t *testing.T) string {
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := u.LocalAddr().String()
	u.Close()
	return addr
}

// deadUpstream is a UDP and TCP address on loopback that never answers.
func deadUpstream(t *testing.T) string {
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	l, err := net.Listen("tcp4", u.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return u.LocalAddr().String() // accepts TCP (backlog), reads nothing
}

func TestServFail(t *testing.T) {
	dead := deadUpstream(t)
	s := startServer(t, Config{Upstreams: []string{dead}, Timeout: 200 * time.Millisecond})
	for _, proto := range []string{"udp", "tcp"} {
		wantRcode(t, s.query(t, proto, "127.0.0.1", "example.com.", dns.TypeA), dns.RcodeServerFailure)
	}
	// Local names still answer.
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "db.net1.switchyard.local.", dns.TypeA), "10.1.0.6")
	if got := testutil.ToFloat64(s.metrics.queries.WithLabelValues(ResultServFail)); got != 2 {
		t.Errorf("servfail %v, want 2", got)
	}
}

// TestPTRLocallyServed: PTR lookups for private and reserved addresses
// (RFC 6303) are answered here, NXDOMAIN when the querier's network has no
// such address, without asking the upstream (dead here: it would be
// SERVFAIL); a public address is forwarded.
func TestPTRLocallyServed(t *testing.T) {
	dead := deadUpstream(t)
	s := startServer(t, Config{Upstreams: []string{dead}, Timeout: 200 * time.Millisecond})
	for _, name := range []string{"9.9.99.10.in-addr.arpa.", "1.0.168.192.in-addr.arpa.", "7.0.20.172.in-addr.arpa.", "3.0.64.100.in-addr.arpa.", "5.0.0.240.in-addr.arpa."} {
		wantRcode(t, s.query(t, "udp", "127.0.0.1", name, dns.TypePTR), dns.RcodeNameError)
	}
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "5.0.1.10.in-addr.arpa.", dns.TypePTR), "web.net1.switchyard.local.")
	wantRcode(t, s.query(t, "udp", "127.0.0.1", "8.8.8.8.in-addr.arpa.", dns.TypePTR), dns.RcodeServerFailure)
	wantRcode(t, s.query(t, "udp", "127.0.0.1", "10.in-addr.arpa.", dns.TypePTR), dns.RcodeServerFailure)
}

// TestUpdate: a new program replaces every name at once; lookups running
// meanwhile see the old names or the new, never a mix (run with -race).
func TestUpdate(t *testing.T) {
	s := startServer(t, Config{Upstreams: []string{"127.0.0.1:1"}})
	moved := testProgram()
	for i := range moved.DNS {
		if moved.DNS[i].Name == "web" {
			moved.DNS[i].IP = "10.1.0.99"
		}
		if moved.DNS[i].Name == "db" {
			moved.DNS[i].Name = "db2"
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				s.Update(moved)
			} else {
				s.Update(testProgram())
			}
		}
	}()
	for range 50 {
		r := s.query(t, "udp", "127.0.0.1", "web.net1.switchyard.local.", dns.TypeA)
		if a := answers(r); len(a) != 1 || (a[0] != "10.1.0.5" && a[0] != "10.1.0.99") {
			t.Fatalf("web during updates: %v", a)
		}
	}
	close(stop)
	wg.Wait()
	s.Update(moved)
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "web.net1.switchyard.local.", dns.TypeA), "10.1.0.99")
	wantRcode(t, s.query(t, "udp", "127.0.0.1", "db.net1.switchyard.local.", dns.TypeA), dns.RcodeNameError)
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "6.0.1.10.in-addr.arpa.", dns.TypePTR), "db2.net1.switchyard.local.")
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "db2.net1.switchyard.local.", dns.TypeA), "10.1.0.6")

	// The same names again (an apply that changed flows alone): nothing
	// changed. Another domain: rebuilt.
	before := s.updateStats()
	same := *moved
	same.DNS = cloneRecords(moved.DNS)
	s.Update(&same)
	if after := s.updateStats(); after != before {
		t.Errorf("unchanged names were changed: %+v, then %+v", before, after)
	}
	// One name moved: that record alone is replaced, in place.
	same.DNS[0].IP = "10.1.0.77"
	s.Update(&same)
	if after := s.updateStats(); after.rebuilds != before.rebuilds || after.removed != before.removed+1 || after.added != before.added+1 {
		t.Errorf("one moved name: %+v, then %+v", before, after)
	}
	same.DNS[0].IP = moved.DNS[0].IP
	s.Update(&same)
	rebuilds := s.updateStats().rebuilds
	same.Containers = slices.Clone(same.Containers)
	for i := range same.Containers {
		same.Containers[i].DNSDomain = "example.internal"
	}
	s.Update(&same)
	wantAnswers(t, s.query(t, "udp", "127.0.0.1", "web.net1.example.internal.", dns.TypeA), "10.1.0.99")
	wantRcode(t, s.query(t, "udp", "127.0.0.1", "web.net1.switchyard.local.", dns.TypeA), dns.RcodeServerFailure) // forwarded: dead upstream
	if s.updateStats().rebuilds != rebuilds+1 {
		t.Error("a new domain did not rebuild the names")
	}
}

func (s *Server) updateStats() updateStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func TestUpstreams(t *testing.T) {
	got, err := ParseUpstreams(" 192.0.2.1:5353, 192.0.2.2 ,[2001:db8::1]:53,")
	if err != nil || !slices.Equal(got, []string{"192.0.2.1:5353", "192.0.2.2:53", "[2001:db8::1]:53"}) {
		t.Fatalf("ParseUpstreams: %q %v", got, err)
	}
	for _, bad := range []string{"resolver.example:53", "192.0.2.1:0", "192.0.2.1:x"} {
		if _, err := ParseUpstreams(bad); err == nil {
			t.Errorf("ParseUpstreams(%q) accepted", bad)
		}
	}
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("search example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), 0o644)
	if got, err := upstreamsFrom(p); err != nil || !slices.Equal(got, []string{"192.0.2.53:53", "192.0.2.54:53"}) {
		t.Fatalf("upstreamsFrom: %q %v", got, err)
	}
	os.WriteFile(p, []byte("search example\n"), 0o644)
	if _, err := upstreamsFrom(p); err == nil {
		t.Fatal("a resolv.conf without nameserver gave upstreams")
	}
}

func TestVNIOf(t *testing.T) {
	for _, vni := range []int64{1, 255, 256, 5001, 1<<24 - 1} {
		got, ok := VNIOf(netip.MustParseAddr(openapi.DNSAddr(vni)))
		if !ok || got != vni {
			t.Errorf("VNIOf(DNSAddr(%d)) = %d %v", vni, got, ok)
		}
	}
	if _, ok := VNIOf(netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("VNIOf(192.0.2.1) ok")
	}
}
