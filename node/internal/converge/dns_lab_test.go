package converge

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

	mdns "github.com/miekg/dns"

	"github.com/switchyard/switchyard/node/internal/dns"
	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// The node-local resolver end to end on real OVS: the agent's DNS
// namespace and sydns0 port (the applier), the resolver's sockets in that
// namespace (package dns), and the contract's DNS steering flows written
// here by hand (the compiler writes the real ones) in a minimal pipeline
// with the contract's table numbers. A container asks its gateway, port
// 53, over UDP and TCP, and must get the answer from gateway:53.

const (
	dnsGW    = "10.60.0.254"
	dnsGWMAC = "0a:58:0a:3c:00:fe"
	zoneZ    = "zone=NXM_NX_REG0[0..15]"
)

// Contract tables (SERVICES-CONTRACT.md section 4).
const (
	tClassifier, tSpoofGuard, tARP, tConntrack, tHairpinReturn, tServiceLB = 0, 1, 2, 3, 4, 5
	tHairpin, tEgress, tL3, tL2, tIngress, tCommit, tOutput                = 8, 9, 10, 11, 12, 13, 14
)

func dnsProgram(c ctr, rev int64) *openapi.Program {
	cp := c.ContainerPort()
	cp.Gateway, cp.DNSDomain, cp.DNSSearch = dnsGW, "switchyard.local", "net1.switchyard.local switchyard.local"
	p := &openapi.Program{Host: c.Host, Revision: rev, Bridge: openapi.BridgeSpec{Name: "br-int", FailMode: "secure"},
		Containers: []openapi.ContainerPort{cp},
		DNS: []openapi.DNSRecord{
			{Network: "net1", VNI: testVNI, Kind: openapi.DNSContainer, Name: c.Name(), IP: c.IP()},
			{Network: "net1", VNI: testVNI, Kind: openapi.DNSService, Name: "api", IP: "10.96.0.10",
				Ports: []openapi.ServicePort{{Name: "http", Port: 80, Protocol: "TCP"}}},
		}}
	p.Flows = dnsSteeringFlows(c)
	return p
}

// dnsSteeringFlows is one local container's pipeline plus the contract's
// DNS steering, by hand.
func dnsSteeringFlows(c ctr) []openapi.Flow {
	in := "in_port=${port:" + c.Port() + "}"
	reg0 := fmt.Sprintf("reg0=%d", testVNI)
	dnsAddr := openapi.DNSAddr(testVNI)
	f := func(table, prio int, match, actions string) openapi.Flow {
		return openapi.Flow{Table: table, Priority: prio, Cookie: 0xd45, Match: match, Actions: actions}
	}
	next := func(t int) string { return fmt.Sprintf("goto_table:%d", t+1) }
	gwARP := arpResponder(ctr{N: 254})
	gwARP.Table, gwARP.Match = tARP, reg0+",arp,arp_op=1,arp_tpa="+dnsGW
	gwARP.Actions = strings.ReplaceAll(strings.ReplaceAll(gwARP.Actions, "02:00:00:00:00:fe", dnsGWMAC), "0x0200000000fe", "0x0a580a3c00fe")
	return []openapi.Flow{
		f(tClassifier, 100, in, fmt.Sprintf("set_field:%d->reg0,load:1->NXM_NX_REG1[0],goto_table:%d", testVNI, tSpoofGuard)),
		// Classifier: answers from the DNS namespace.
		f(tClassifier, 100, "in_port=${port:"+openapi.DNSPortName+"},ip,nw_src="+dnsAddr,
			fmt.Sprintf("load:%d->NXM_NX_REG0[],set_field:%s->eth_dst,ct(table=%d,%s,nat)", testVNI, dnsGWMAC, tL3, zoneZ)),
		f(tClassifier, 0, "", "drop"),
		f(tSpoofGuard, 100, in+",dl_src="+c.MAC()+",ip,nw_src="+c.IP(), fmt.Sprintf("goto_table:%d", tARP)),
		f(tSpoofGuard, 100, in+",dl_src="+c.MAC()+",arp,arp_spa="+c.IP()+",arp_sha="+c.MAC(), fmt.Sprintf("goto_table:%d", tARP)),
		f(tSpoofGuard, 0, "", "drop"),
		gwARP,
		f(tARP, 10, "arp", "drop"),
		f(tARP, 0, "", next(tARP)),
		// Conntrack: the gateway's packets pass the hairpin zone first.
		f(tConntrack, 110, "ip,"+reg0+",nw_dst="+dnsGW, fmt.Sprintf("load:1->NXM_NX_REG1[2],ct(table=%d,zone=0xfff0,nat)", tHairpinReturn)),
		f(tConntrack, 100, "ip", fmt.Sprintf("ct(table=%d,%s,nat)", tServiceLB, zoneZ)),
		f(tConntrack, 0, "", next(tConntrack)),
		f(tHairpinReturn, 100, "ip", fmt.Sprintf("ct(table=%d,%s,nat)", tServiceLB, zoneZ)),
		f(tHairpinReturn, 0, "", next(tHairpinReturn)),
		// ServiceLB: DNS steering (contract shape, see dnsSteering).
		f(tServiceLB, 300, "reg1=0x1/0x1,"+reg0+",nw_dst="+dnsGW+",udp,tp_dst=53", dnsSteering(dnsAddr)),
		f(tServiceLB, 300, "reg1=0x1/0x1,"+reg0+",nw_dst="+dnsGW+",tcp,tp_dst=53", dnsSteering(dnsAddr)),
		// Added to the contract: the later packets of a steered
		// connection (TCP after the SYN, a second query from the same UDP
		// socket) were translated to the DNS address by Conntrack already,
		// so the steering flow (nw_dst=gateway) misses them, and they have
		// no L3Forwarding flow (and the gateway's MAC): they were dropped.
		f(tServiceLB, 300, "ct_state=+est+trk,reg1=0x1/0x1,"+reg0+",nw_dst="+dnsAddr+",udp,tp_dst=53", dnsEstablished()),
		f(tServiceLB, 300, "ct_state=+est+trk,reg1=0x1/0x1,"+reg0+",nw_dst="+dnsAddr+",tcp,tp_dst=53", dnsEstablished()),
		f(tServiceLB, 0, "", fmt.Sprintf("goto_table:%d", tHairpin)),
		f(tHairpin, 0, "", next(tHairpin)),
		f(tEgress, 0, "", next(tEgress)),
		f(tL3, 100, reg0+",ip,dl_dst="+dnsGWMAC+",nw_dst="+c.IP(),
			fmt.Sprintf("set_field:%s->eth_dst,set_field:%s->eth_src,dec_ttl,goto_table:%d", c.MAC(), dnsGWMAC, tL2)),
		f(tL3, 0, "", next(tL3)),
		f(tL2, 100, reg0+",dl_dst="+c.MAC(), fmt.Sprintf("set_field:${port:%s}->reg2,goto_table:%d", c.Port(), tIngress)),
		// L2Forwarding: to the DNS namespace.
		f(tL2, 100, reg0+",dl_dst="+openapi.DNSMAC, fmt.Sprintf("set_field:${port:%s}->reg2,goto_table:%d", openapi.DNSPortName, tIngress)),
		f(tL2, 0, "", "drop"),
		f(tIngress, 0, "", next(tIngress)),
		f(tCommit, 110, "reg1=0x4/0x4", next(tCommit)),
		f(tCommit, 100, "ct_state=+new+trk,ip", fmt.Sprintf("ct(commit,%s),%s", zoneZ, next(tCommit))),
		f(tCommit, 0, "", next(tCommit)),
		f(tOutput, 100, "reg1=0x4/0x4", "IN_PORT"),
		f(tOutput, 0, "", "output:NXM_NX_REG2[]"),
	}
}

// dnsSteering is the ServiceLB action of the contract, with one change
// found here: the query to the gateway went through the hairpin zone
// (Conntrack) and carries the hairpin flag (reg1 bit 2), which makes
// Output send it back to its own port (IN_PORT) instead of to sydns0; the
// steering clears the flag.
func dnsSteering(dnsAddr string) string {
	return fmt.Sprintf("load:0->NXM_NX_REG1[2],set_field:%s->eth_dst,ct(commit,%s,nat(dst=%s),table=%d)",
		openapi.DNSMAC, zoneZ, dnsAddr, tL2)
}

func dnsEstablished() string {
	return fmt.Sprintf("load:0->NXM_NX_REG1[2],set_field:%s->eth_dst,goto_table:%d", openapi.DNSMAC, tL2)
}

// dnsClient queries from inside a container namespace.
type dnsClient struct {
	netns string
}

// udp sends one query from an unconnected socket and returns the answer
// and the address it came from.
func (c dnsClient) udp(t testing.TB, server, name string) (*mdns.Msg, *net.UDPAddr) {
	t.Helper()
	var conn *net.UDPConn
	if err := link.InNetnsPath(c.netns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	}); err != nil {
		t.Fatalf("udp socket in %s: %v", c.netns, err)
	}
	defer conn.Close()
	q := new(mdns.Msg)
	q.SetQuestion(name, mdns.TypeA)
	b, _ := q.Pack()
	to := &net.UDPAddr{IP: net.ParseIP(server), Port: 53}
	buf := make([]byte, 4096)
	// The first query may meet the ARP for the gateway: retry a few times.
	for i := 0; i < 20; i++ {
		if _, err := conn.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		r := new(mdns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		return r, from
	}
	t.Fatalf("no UDP answer from %s:53 to %s", server, name)
	return nil, nil
}

// tcp connects (in the namespace) and exchanges one query.
func (c dnsClient) tcp(t testing.TB, server, name string) *mdns.Msg {
	t.Helper()
	var conn net.Conn
	if err := link.InNetnsPath(c.netns, func() (err error) {
		conn, err = net.DialTimeout("tcp4", net.JoinHostPort(server, "53"), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("tcp connect to %s:53 in %s: %v", server, c.netns, err)
	}
	defer conn.Close()
	if ra := conn.RemoteAddr().String(); ra != server+":53" {
		t.Fatalf("connected to %s", ra)
	}
	q := new(mdns.Msg)
	q.SetQuestion(name, mdns.TypeA)
	cl := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := cl.ExchangeWithConn(q, &mdns.Conn{Conn: conn})
	if err != nil {
		t.Fatalf("tcp query %s: %v", name, err)
	}
	return r
}

func wantA(t testing.TB, r *mdns.Msg, ip string) {
	t.Helper()
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("answer:\n%v", r)
	}
	if a, ok := r.Answer[0].(*mdns.A); !ok || a.A.String() != ip || a.Hdr.Ttl != dns.TTL {
		t.Fatalf("answer %v, want %s", r.Answer[0], ip)
	}
}

// dnsLab is one lab host with the applier's DNS port, a container and the
// resolver serving in the DNS namespace.
type dnsLab struct {
	a      *Host
	c      ctr
	client dnsClient
	srv    *dns.Server
	resolv string
}

// dnsOptions are the options of a host with a DNS namespace.
func dnsOptions(netns, resolvDir string) Options {
	var o Options
	o.DNSNetns, o.ResolvConfDir = netns, resolvDir
	return o
}

func newDNSLab(t testing.TB, l interface{ Prefix() string }, newA func(Options) *Host, host string) *dnsLab {
	t.Helper()
	resolvDir := t.TempDir()
	a := newA(dnsOptions(l.Prefix()+"dns-"+host, resolvDir))
	t.Cleanup(func() { a.links.DeleteDNS(a.opts.DNSNetns) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	path, err := a.EnsureDNS(ctx)
	if err != nil {
		t.Fatalf("EnsureDNS: %v", err)
	}
	srv, err := dns.New(dns.Config{Upstreams: []string{"127.0.0.1:1"}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	udp, tcp, err := dns.ListenIn(path, "0.0.0.0:53")
	if err != nil {
		t.Fatalf("ListenIn: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, udp, tcp) }()
	t.Cleanup(func() { cancel(); <-done })
	c := ctr{N: 1, Host: host}
	d := &dnsLab{a: a, c: c, srv: srv, resolv: resolvDir}
	return d
}

func TestDNSLab(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	d := newDNSLab(t, l, func(o Options) *Host { return newHostWith(t, l, h, o) }, h.Name)
	prog := dnsProgram(d.c, 1)
	res := apply(t, d.a, prog)
	if res.Degraded() {
		t.Fatalf("degraded: %v %v", res.Ports, res.Dropped)
	}
	d.srv.Update(prog)
	d.client = dnsClient{netns: "/run/netns/" + sandbox(l, h, d.c)}
	if got := h.VSCtl(t, "get", "Interface", openapi.DNSPortName, "external_ids:"+ovs.KeyAgentPort); strings.Trim(got, "\"\n") != "dns" {
		t.Fatalf("sydns0 external_ids: %q", got)
	}

	r, from := d.client.udp(t, dnsGW, "c1.net1.switchyard.local.")
	wantA(t, r, d.c.IP())
	if from.String() != dnsGW+":53" {
		t.Fatalf("UDP answer from %s, want %s:53", from, dnsGW)
	}
	wantA(t, d.client.tcp(t, dnsGW, "api.net1.switchyard.local."), "10.96.0.10")
	r, _ = d.client.udp(t, dnsGW, "other.net2.switchyard.local.")
	if r.Rcode != mdns.RcodeNameError {
		t.Fatalf("other network's name: %v", r)
	}

	// The sandbox's resolv.conf points at the gateway.
	rc, err := os.ReadFile(filepath.Join(d.resolv, sandbox(l, h, d.c), "resolv.conf"))
	if err != nil || !strings.Contains(string(rc), "nameserver "+dnsGW+"\nsearch net1.switchyard.local switchyard.local\noptions ndots:2\n") {
		t.Fatalf("resolv.conf: %q %v", rc, err)
	}

	// Idempotent: the same program changes nothing; an applier started
	// anew (the agent restarted) reuses the namespace and the port.
	ofport := h.OFPort(t, openapi.DNSPortName)
	if res := apply(t, d.a, dnsProgram(d.c, 2)); len(res.LinkChanges) != 0 {
		t.Fatalf("second apply changed links: %v", res.LinkChanges)
	}
	a2 := newHostWith(t, l, h, dnsOptions(d.a.opts.DNSNetns, d.resolv))
	if _, err := a2.EnsureDNS(context.Background()); err != nil {
		t.Fatal(err)
	}
	res = apply(t, a2, dnsProgram(d.c, 3))
	for _, c := range res.LinkChanges {
		if strings.HasPrefix(c, openapi.DNSPortName) {
			t.Fatalf("restart changed the DNS port: %v", res.LinkChanges)
		}
	}
	if p := h.OFPort(t, openapi.DNSPortName); p != ofport {
		t.Fatalf("sydns0 ofport %d after restart, was %d", p, ofport)
	}
	wantA(t, d.client.tcp(t, dnsGW, "c1.net1.switchyard.local."), d.c.IP())

	// The sandbox goes: its resolv.conf with it.
	empty := &openapi.Program{Host: h.Name, Revision: 4, Bridge: prog.Bridge}
	apply(t, a2, empty)
	if _, err := os.Stat(filepath.Join(d.resolv, sandbox(l, h, d.c))); !os.IsNotExist(err) {
		t.Fatalf("resolv.conf directory of a deleted sandbox: %v", err)
	}
	if !strings.Contains(h.VSCtl(t, "list-ports", "br-int"), openapi.DNSPortName) {
		t.Fatal("sydns0 left br-int with the last container")
	}
}

// BenchmarkDNSLab: A queries from a container to its gateway, port 53,
// over UDP, through br-int (userspace datapath) and the DNS namespace to
// the resolver and back, from 1 and 4 clients in the container (each sends
// its next query when the last is answered). Reports queries/s and
// latency.
func BenchmarkDNSLab(b *testing.B) {
	l := lab.New(b, lab.Options{Hosts: 1, Tunnel: "geneve"})
	h := l.Hosts[0]
	d := newDNSLab(b, l, func(o Options) *Host { return newHostWith(b, l, h, o) }, h.Name)
	prog := dnsProgram(d.c, 1)
	apply(b, d.a, prog)
	d.srv.Update(prog)
	client := dnsClient{netns: "/run/netns/" + sandbox(l, h, d.c)}
	client.udp(b, dnsGW, "c1.net1.switchyard.local.") // ARP and caches warm
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchQueries(b, client, n) })
	}
}

func benchQueries(b *testing.B, client dnsClient, clients int) {
	q := new(mdns.Msg)
	q.SetQuestion("c1.net1.switchyard.local.", mdns.TypeA)
	query, _ := q.Pack()
	conns := make([]net.Conn, clients)
	for i := range conns {
		if err := link.InNetnsPath(client.netns, func() (err error) {
			conns[i], err = net.Dial("udp4", dnsGW+":53")
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			var mine []time.Duration
			for range next {
				t := time.Now()
				c.Write(query)
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err != nil {
					b.Errorf("read: %v", err)
					break
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/took.Seconds(), "queries/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
