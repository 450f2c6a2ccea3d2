package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The "outside" of a lab: a namespace on the underlay bridge that is no
// Switchyard host, playing a client on the internet and a server outside
// the overlay (issue 11, external access). It has two addresses of the
// underlay subnet:
//
//	Client .250 (primary: what a connection from the outside leaves from
//	            unless it names another source)
//	Server .251 (where its servers are reached from containers)
//
// The probe server (cmd/syprobe) run in it answers on SeenByPort with the
// address it saw the peer connect from ("seen-by" echo), and its probes are
// the outside's client. Addresses .230 to .249 are left free for the
// tests (SpareAddr: egress IPs); hosts take .11 to .210.
//
//	netns sy-<id>-out            netns sy-<id>-ul
//	+----------------------+     +----------------+
//	| eth0 .250/24 (client)|=====| out   br0      |==== h1, h2 ...
//	|      .251/24 (server)|     |                |
//	+----------------------+     +----------------+
type Outside struct {
	// Netns is the outside's namespace, "sy-<id>-out".
	Netns string
	// Iface is its link into the underlay bridge, inside Netns.
	Iface string
	// Client and Server are its two addresses on the underlay subnet;
	// Client is the primary one.
	Client, Server netip.Addr
	lab            *Lab
}

// SeenByPort is where every probe server also answers TCP and UDP, with
// "<name> <peer ip:port>" (SeenReply): the address it saw the client
// connect from.
const SeenByPort = 90

// SeenByPorts are the probe servers' seen-by ports: TCP and UDP SeenByPort.
var SeenByPorts = []struct {
	Proto string
	Port  int
}{{"tcp", SeenByPort}, {"udp", SeenByPort}}

// outsideOffsets are the outside's client and server addresses, counted
// from the subnet's base address.
const (
	outsideClientOffset = 250
	outsideServerOffset = 251
	spareOffset         = 230
	spareCount          = 20
)

// SpareAddr is the i-th (0..19) address of the underlay subnet that neither
// a host nor the outside uses (.230 to .249 of a /24): for tests that need
// one of their own on the underlay, e.g. a network's egress IP.
func (l *Lab) SpareAddr(i int) netip.Addr {
	if i < 0 || i >= spareCount {
		panic(fmt.Sprintf("lab: SpareAddr(%d): want 0..%d", i, spareCount-1))
	}
	return l.offsetAddr(spareOffset + i)
}

// AddOutside makes the lab's outside (once; later calls return the same
// one): its namespace, a veth into the underlay bridge (tx offload off on
// both ends, the lab's MTU) and its two addresses. It lives as long as the
// lab and is torn down with it, whichever test asked for it first.
func (l *Lab) AddOutside(t T) *Outside {
	t.Helper()
	l.mu.Lock()
	o := l.outside
	l.mu.Unlock()
	if o != nil {
		return o
	}
	o = &Outside{Netns: l.Prefix() + "out", Iface: "eth0",
		Client: l.offsetAddr(outsideClientOffset), Server: l.offsetAddr(outsideServerOffset), lab: l}
	if !l.Subnet.Contains(o.Server) {
		t.Fatalf("lab %s: the outside's addresses do not fit in %s", l.ID, l.Subnet)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.buildOutside(ctx, o); err != nil {
		t.Fatalf("lab %s: outside: %v", l.ID, err)
	}
	l.mu.Lock()
	l.outside = o
	l.mu.Unlock()
	return o
}

// outsidePeer is the name of the outside's veth end in the underlay
// namespace (hosts' ends are named like the hosts, h1, h2, ...).
const outsidePeer = "out"

func (l *Lab) buildOutside(ctx context.Context, o *Outside) error {
	if err := l.addNetns(ctx, o.Netns); err != nil {
		return err
	}
	// The client address first: it is the primary one, the source of
	// what the outside opens unless a probe names another.
	return l.plugVeth(ctx, l.UnderlayBridge, o.Netns, o.Iface, outsidePeer,
		netip.PrefixFrom(o.Client, l.Subnet.Bits()), netip.PrefixFrom(o.Server, l.Subnet.Bits()))
}

// Outside returns the lab's outside, nil before AddOutside.
func (l *Lab) Outside() *Outside {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outside
}

// OutsideName is the name the outside's probe server answers with.
const OutsideName = "outside"

// StartServer runs the probe server (bin, cmd/syprobe) in the outside,
// answering with OutsideName: on every probe port of both its addresses
// (SeenByPort tells the peer's address), and it is the outside's client
// too (Probe.Run with Src, or Ask). It stops with t.
func (o *Outside) StartServer(t T, bin string) *Probe {
	t.Helper()
	return o.lab.StartProbe(t, bin, OutsideName, o.Netns)
}

// Run runs a command inside the outside's namespace.
func (o *Outside) Run(ctx context.Context, name string, args ...string) (string, error) {
	return runIn(ctx, o.Netns, nil, name, args...)
}

// Seen is a seen-by answer: the server's name and the address (and port)
// it saw the client connect from.
type Seen struct {
	Name string
	Peer netip.AddrPort
}

// SeenReply is what a seen-by server named name answers a client it saw
// as peer ("ip:port").
func SeenReply(name, peer string) string { return name + " " + peer }

// ParseSeen reads a seen-by answer.
func ParseSeen(reply string) (Seen, error) {
	i := strings.LastIndexByte(reply, ' ')
	if i < 0 {
		return Seen{}, fmt.Errorf("seen-by answer %q: want \"<name> <ip:port>\"", reply)
	}
	ap, err := netip.ParseAddrPort(reply[i+1:])
	if err != nil {
		return Seen{}, fmt.Errorf("seen-by answer %q: %v", reply, err)
	}
	return Seen{Name: reply[:i], Peer: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// Seen reads a successful probe's seen-by answer.
func (r ProbeResult) Seen() (Seen, error) {
	if !r.OK {
		return Seen{}, fmt.Errorf("no answer: %s", r.Error)
	}
	return ParseSeen(r.Reply)
}

// Ask makes one probe of proto ("tcp" or "udp") from p's namespace to
// addr's seen-by port (addr "ip:port", the port being SeenByPort or one
// that leads there, e.g. a published port), from src ("" for the
// namespace's primary address), and returns what the server answered.
func (p *Probe) Ask(ctx context.Context, proto, src, addr string, timeout time.Duration) (Seen, error) {
	res, err := p.Run(ctx, []ProbeRequest{{Proto: proto, Addr: addr, Src: src, TimeoutMs: int(timeout.Milliseconds())}})
	if err != nil {
		return Seen{}, err
	}
	s, err := res[0].Seen()
	if err != nil {
		return Seen{}, fmt.Errorf("%s %s -> %s: %w", p.Name, proto, addr, err)
	}
	return s, nil
}
