package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// ProbeHTTPPort is where every probe server also answers HTTP: any request
// gets 200 and its name (what a service health check probes).
const ProbeHTTPPort = 8080

// DNSQuery asks a probe server to query Server ("ip:port") for Name of
// Type ("A", "SRV", "PTR", ...) over Proto ("udp", default, or "tcp"),
// from inside its namespace, waiting up to TimeoutMs.
type DNSQuery struct {
	Server    string `json:"server"`
	Proto     string `json:"proto,omitempty"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	TimeoutMs int    `json:"timeoutMs"`
}

// DNSAnswer is what one query got: OK when an answer came (of any Rcode,
// "NOERROR", "NXDOMAIN", "SERVFAIL"...), its records (A: the address; SRV:
// "priority weight port target"; PTR: the name; others in zone-file form),
// the smallest TTL among them, and how long the exchange took.
type DNSAnswer struct {
	OK            bool     `json:"ok"`
	Rcode         string   `json:"rcode,omitempty"`
	Authoritative bool     `json:"authoritative,omitempty"`
	Answers       []string `json:"answers,omitempty"`
	TTL           uint32   `json:"ttl,omitempty"`
	Us            int64    `json:"us"`
	Error         string   `json:"error,omitempty"`
}

func (a DNSAnswer) String() string {
	if !a.OK {
		return "error: " + a.Error
	}
	return fmt.Sprintf("%s %v ttl %d (%d us)", a.Rcode, a.Answers, a.TTL, a.Us)
}

// DNSBench repeats one query Count times, Concurrency at a time, each a
// new exchange; an answer counts as OK when its rcode is Rcode (default
// NOERROR).
type DNSBench struct {
	DNSQuery
	Count       int `json:"count"`
	Concurrency int `json:"concurrency"`
	// Rcode is the expected rcode as a number (0 NOERROR, 3 NXDOMAIN).
	Rcode int `json:"rcode,omitempty"`
}

// WantRcode is the rcode an answer must have to count as OK.
func (b DNSBench) WantRcode() int { return b.Rcode }

// DNSBenchResult is a DNSBench's outcome: the latencies of the OK
// answers, the failures (the first one's error), and the wall time.
type DNSBenchResult struct {
	OK        int     `json:"ok"`
	Failed    int     `json:"failed"`
	Error     string  `json:"error,omitempty"`
	ElapsedUs int64   `json:"elapsedUs"`
	LatUs     []int64 `json:"latUs"`
}

// DNS runs the queries concurrently from p's namespace; the error is about
// the control socket, not the queries.
func (p *Probe) DNS(ctx context.Context, qs []DNSQuery) ([]DNSAnswer, error) {
	var out []DNSAnswer
	if err := p.call(ctx, "POST", "/dns", qs, &out); err != nil {
		return nil, err
	}
	if len(out) != len(qs) {
		return nil, fmt.Errorf("probe %s: %d answers for %d queries", p.Name, len(out), len(qs))
	}
	return out, nil
}

// DNSBench runs b from p's namespace.
func (p *Probe) DNSBench(ctx context.Context, b DNSBench) (DNSBenchResult, error) {
	var out DNSBenchResult
	err := p.call(ctx, "POST", "/dnsbench", b, &out)
	return out, err
}

// Serve stops (up false: the listener and its connections close) or starts
// again one of the probe server's ports: proto "tcp", "udp" or "http".
func (p *Probe) Serve(ctx context.Context, proto string, port int, up bool) error {
	return p.call(ctx, "POST", "/serve", map[string]any{"proto": proto, "port": port, "up": up}, nil)
}

// ListenPacketIn opens a packet listener (network "udp4"...) on addr
// inside the named namespace, e.g. a DNS server a test runs in the lab.
func ListenPacketIn(nsName, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := InNetns(nsName, func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// ListenIn opens a TCP listener on addr inside the named namespace.
func ListenIn(nsName, addr string) (net.Listener, error) { return listenIn(nsName, addr) }

// InNetns runs f on an OS thread switched into the namespace ns (a name
// under NetnsDir, or an absolute path); sockets f opens stay in it. The
// thread is its own goroutine's: if it cannot switch back it is never
// unlocked, and the runtime destroys it.
func InNetns(ns string, f func() error) error {
	if !filepath.IsAbs(ns) {
		ns = filepath.Join(NetnsDir, ns)
	}
	target, err := netns.GetFromPath(ns)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return // the thread stays locked: destroyed
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
