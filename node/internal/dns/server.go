// Package dns is the node agent's node-local resolver: a
// github.com/miekg/dns server (UDP and TCP) that answers, for the
// containers of this host, from the DNS records of the program the agent
// last applied (openapi.DNSRecord):
//
//   - A    <name>.<network>.<domain>            containers and services
//   - SRV  _<port>._<tcp|udp|sctp>.<service>.<network>.<domain>  named
//     service ports, targeting the service's A name
//   - PTR  for the container addresses and service VIPs of the network
//
// The querier's network is the one whose resolver address the query was
// sent to: the query's local address is openapi.DNSAddr(vni) (OVS steers
// a container's queries to its gateway, port 53, there). Names of another
// network, and names under the domain that do not exist, are NXDOMAIN
// (isolation); PTR queries for an address of another local network too,
// and for any address of the ranges whose reverse zones are served
// locally (RFC 6303: private, shared, link-local, reserved).
// Anything else is forwarded to the upstream resolvers (forward.go),
// SERVFAIL when none answers in time. Every answer has TTL 5 s.
//
// Update costs O(change) plus one comparison pass, not a rebuild: it
// compares the program's records with its copy of the last ones (one
// merge pass when both are sorted by key, as the controller sends them; a
// map when not) and removes and adds the names of the records that differ
// alone (diff.go, table.go). It changes the table in place, holding the
// table's write lock (a sync.RWMutex) for the whole change; a lookup holds
// the read lock while it reads the names and builds its answer, never
// while forwarding to an upstream. So a lookup sees the names of one
// program or the next, never half of one, and never waits for the
// controller. In place rather than copy-on-write: copying even one
// network's names is O(that network's names) per change, 1,000 per
// container create on every host of a 1,000-container network; the lock
// is held only while the differing records' names are added and removed.
// A change of the domains (a network arrives on or leaves the host, a new
// domain) rebuilds the table, outside the lock, and swaps it in. Each
// name's list holds one entry per record, kept sorted (a name may have two
// addresses, a container and a service), and the reverse names are
// counted (an address may be in two networks), so the table after any
// sequence of updates is the one a build of the last records gives.
//
// ListenIn creates the server's sockets inside the agent's DNS namespace
// (netns.go); forwarding sockets stay in the agent's own.
//
// It must not touch links, OVS or the program; it only reads programs.
package dns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/openapi"
)

// TTL is the TTL of every answer the resolver gives from its own names,
// and of its negative answers (SOA minimum): short, so that a moved or
// deleted container is not cached for long.
const TTL = 5

// Config configures a Server.
type Config struct {
	// Upstreams are the resolvers other names are forwarded to
	// ("host:port"), tried in order. Empty: DefaultUpstreams(), or none
	// (every other name SERVFAIL) when the host's resolv.conf has none.
	Upstreams []string
	// Timeout bounds the wait for one upstream; default 2 s.
	Timeout time.Duration
	// NetworkOf maps the local address a query arrived on to the VNI of
	// the network it serves; default VNIOf (openapi.DNSAddr reversed).
	// Unit tests inject their own (loopback addresses).
	NetworkOf func(netip.Addr) (int64, bool)
}

// Server answers queries from the current table.
type Server struct {
	cfg     Config
	fwd     *forwarder
	metrics *metrics

	// rw guards names: Update holds it for writing while it changes
	// them, a lookup for reading.
	rw    sync.RWMutex
	names *table

	// mu serializes Updates; last is what the current names were made
	// from, stats what the Updates did (for tests).
	mu    sync.Mutex
	last  *source
	spare []openapi.DNSRecord // storage for the next copy of the records
	stats updateStats
}

type source struct {
	records []openapi.DNSRecord
	sorted  bool // records are sorted by key
	domains map[string]string
}

// updateStats counts what Updates did.
type updateStats struct {
	rebuilds       int // whole tables built (first program, domains changed)
	changes        int // Updates that changed records in place
	removed, added int // records those took out and put in
}

// New returns a server with no names; Update gives it some.
func New(cfg Config) (*Server, error) {
	if len(cfg.Upstreams) == 0 {
		cfg.Upstreams, _ = DefaultUpstreams()
	}
	for _, u := range cfg.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return nil, fmt.Errorf("upstream %q: want host:port", u)
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.NetworkOf == nil {
		cfg.NetworkOf = VNIOf
	}
	m := newMetrics()
	s := &Server{cfg: cfg, metrics: m, fwd: &forwarder{upstreams: cfg.Upstreams, timeout: cfg.Timeout, failures: m.forwardFailures}}
	s.names = build(nil, nil)
	return s, nil
}

// Upstreams are the resolvers the server forwards to.
func (s *Server) Upstreams() []string { return s.cfg.Upstreams }

// VNIOf is the VNI whose resolver address (openapi.DNSAddr) a is.
func VNIOf(a netip.Addr) (int64, bool) {
	a = a.Unmap()
	if !a.Is4() {
		return 0, false
	}
	b := a.As4()
	if b[0] != dnsBase[0] {
		return 0, false
	}
	return int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3]), true
}

// Update replaces the names with those of prog (the program just applied).
func (s *Server) Update(prog *openapi.Program) {
	var records []openapi.DNSRecord
	if prog != nil {
		records = prog.DNS
	}
	dom := domains(prog)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil || !maps.Equal(dom, s.last.domains) {
		t := build(records, dom)
		s.rw.Lock()
		s.names = t
		s.rw.Unlock()
		s.last = &source{records: cloneRecords(records), sorted: isSorted(records), domains: dom}
		s.stats.rebuilds++
		return
	}
	d := diff(s.last.records, records, s.spare, s.last.sorted)
	if len(d.removed) == 0 && len(d.added) == 0 {
		if d.sorted && !s.last.sorted { // the same records, now in order
			s.last = &source{records: cloneRecords(records), sorted: true, domains: dom}
		}
		return
	}
	// s.names is only replaced under s.mu, and its domainOf never changes:
	// the entries are made before the lock.
	t := s.names
	rm, add := entries(t, d.removed), entries(t, d.added)
	s.rw.Lock()
	for _, e := range rm {
		t.remove(e)
	}
	for _, e := range add {
		t.add(e)
	}
	s.rw.Unlock()
	s.spare = s.last.records
	s.last = &source{records: d.kept, sorted: d.sorted, domains: dom}
	s.stats.changes++
	s.stats.removed += len(d.removed)
	s.stats.added += len(d.added)
}

// entries are what records put in t.
func entries(t *table, records []*openapi.DNSRecord) []entry {
	out := make([]entry, 0, len(records))
	for _, r := range records {
		if e, ok := t.entry(r); ok {
			out = append(out, e)
		}
	}
	return out
}

// Collectors are the server's metrics, for the agent's registry.
func (s *Server) Collectors() []prometheus.Collector { return s.metrics.collectors() }

// Serve answers on udp and tcp, either may be nil, until ctx ends; it
// then closes them and returns. It returns early only if one fails.
func (s *Server) Serve(ctx context.Context, udp *net.UDPConn, tcp net.Listener) error {
	if udp == nil && tcp == nil {
		return errors.New("dns: nothing to serve on")
	}
	errc := make(chan error, 2)
	var srv *dns.Server
	if tcp != nil {
		started := make(chan struct{})
		srv = &dns.Server{Listener: tcp, Handler: s, NotifyStartedFunc: func() { close(started) }}
		go func() { errc <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			if udp != nil {
				udp.Close()
			}
			return err
		}
	}
	if udp != nil {
		if err := enablePktInfo(udp); err != nil {
			if srv != nil {
				_ = srv.Shutdown()
			}
			udp.Close()
			return err
		}
		go func() { errc <- s.serveUDP(udp) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if srv != nil {
		_ = srv.Shutdown() // an error only says it had stopped
	}
	if udp != nil {
		udp.Close()
	}
	return err
}

// Query results, the label of switchyard_agent_dns_queries_total.
const (
	ResultAnswer   = "answer"   // answered from the program's names (NOERROR)
	ResultNXDomain = "nxdomain" // a name under the domain that this network does not have
	ResultForward  = "forwarded"
	ResultServFail = "servfail" // no upstream answered
	ResultRefused  = "refused"  // malformed query
)

// ServeDNS answers one query that came over TCP (the miekg server's
// handler; UDP has its own loop, udp.go, which knows each datagram's
// destination address).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	resp := s.Answer(r, localAddr(w), true)
	_ = w.WriteMsg(resp) // the client went away: nothing to do
}

// Answer returns the response to r, a query sent to local (the querier's
// network's resolver address) over TCP or UDP, and counts it. A UDP
// response is truncated to what the query allows.
func (s *Server) Answer(r *dns.Msg, local netip.Addr, tcp bool) *dns.Msg {
	resp, result := s.answer(r, local, tcp)
	s.metrics.queries.WithLabelValues(result).Inc()
	if !tcp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
		resp.Truncate(size)
	}
	return resp
}

func (s *Server) answer(r *dns.Msg, local netip.Addr, tcp bool) (*dns.Msg, string) {
	if r.Response || r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		return m, ResultRefused
	}
	if m, result, ok := s.lookup(r, local); ok {
		return m, result
	}
	resp := s.fwd.forward(r, tcp)
	if resp == nil {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m, ResultServFail
	}
	resp.Id = r.Id
	return resp, ResultForward
}

// lookup answers r from the names if they, or the locally served reverse
// zones, have it; false: r is for an upstream. It holds the read lock
// (so it sees one program's names), never while forwarding.
func (s *Server) lookup(r *dns.Msg, local netip.Addr) (*dns.Msg, string, bool) {
	q := r.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name))
	s.rw.RLock()
	defer s.rw.RUnlock()
	t := s.names
	var n *netNames
	if vni, ok := s.cfg.NetworkOf(local); ok {
		n = t.nets[vni]
	}
	if d, ok := t.authoritative(name); ok {
		m, result := s.local(r, q, name, n, d)
		return m, result, true
	}
	if q.Qclass == dns.ClassINET && (q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY) && (t.reverse[name] > 0 || locallyServed(name)) {
		m, result := s.local(r, q, name, n, "in-addr.arpa.")
		return m, result, true
	}
	return nil, "", false
}

// locallyServed reports whether name is the reverse name of an IPv4
// address of a range whose reverse zone resolvers serve themselves (RFC
// 6303, RFC 7793): private, shared (100.64.0.0/10), loopback, link-local,
// documentation and reserved (240.0.0.0/4) addresses. Overlay networks
// live there; a PTR lookup for one never leaves the host and is answered
// from the querier's network (NXDOMAIN when it has no such address), so a
// deleted container's or another network's address is NXDOMAIN, not
// whatever an upstream makes of it.
func locallyServed(name string) bool {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 4 {
		return false
	}
	slices.Reverse(labels)
	a, err := netip.ParseAddr(strings.Join(labels, "."))
	if err != nil || !a.Is4() {
		return false
	}
	for _, p := range locallyServedRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var locallyServedRanges = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.2.0/24", "192.168.0.0/16", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// local answers a name this resolver is authoritative for, from the
// names of the querier's network n (nil: it has none).
func (s *Server) local(r *dns.Msg, q dns.Question, name string, n *netNames, zone string) (*dns.Msg, string) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative, m.RecursionAvailable = true, true
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
	}
	exists := false
	if n != nil && q.Qclass == dns.ClassINET {
		any := q.Qtype == dns.TypeANY
		if ips, ok := n.a[name]; ok {
			exists = true
			if any || q.Qtype == dns.TypeA {
				for _, ip := range ips {
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: ip.AsSlice()})
				}
			}
		}
		if srvs, ok := n.srv[name]; ok {
			exists = true
			if any || q.Qtype == dns.TypeSRV {
				for _, sv := range srvs {
					m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Port: sv.port, Target: sv.target})
					for _, ip := range n.a[sv.target] {
						m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: sv.target, Rrtype: dns.TypeA,
							Class: dns.ClassINET, Ttl: TTL}, A: ip.AsSlice()})
					}
				}
			}
		}
		if ptrs, ok := n.ptr[name]; ok {
			exists = true
			if any || q.Qtype == dns.TypePTR {
				for _, p := range ptrs {
					m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: p})
				}
			}
		}
		// The zone itself and names between it and a record exist.
		exists = exists || n.exists(name)
	}
	if len(m.Answer) > 0 {
		return m, ResultAnswer
	}
	m.Ns = []dns.RR{soa(zone)}
	if !exists {
		m.Rcode = dns.RcodeNameError
		return m, ResultNXDomain
	}
	return m, ResultAnswer // NODATA: the name exists, not with this type
}

func soa(zone string) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: TTL}
}

func localAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.LocalAddr().(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// dnsBase is openapi.DNSBase, whose first byte is the /8 of the resolvers.
var dnsBase = netip.MustParseAddr(openapi.DNSBase).As4()
