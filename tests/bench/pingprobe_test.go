package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/switchyard/switchyard/tests/lab"
)

// pinger sends ICMP echo requests from inside one container's namespace (a
// raw socket opened there, no process per ping) and tells when a given
// address first answers. The convergence benchmark uses one per host to
// time "REST call -> the new container answers a ping from a container on
// another host": the port really works, not only its flows.
type pinger struct {
	netns string
	conn  net.PacketConn
	id    int

	mu      sync.Mutex
	waiting map[string]chan time.Time // target IP -> first reply
}

// newPinger opens the socket in netns; it is closed with close.
func newPinger(netns string, id int) (*pinger, error) {
	c, err := lab.ListenPacketIn(netns, "ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s: %w", netns, err)
	}
	p := &pinger{netns: netns, conn: c, id: id & 0xffff, waiting: map[string]chan time.Time{}}
	go p.read()
	return p, nil
}

func (p *pinger) close() { p.conn.Close() }

// read delivers each echo reply to whoever waits for its source.
func (p *pinger) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		at := time.Now()
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); !ok || e.ID != p.id {
			continue
		}
		p.mu.Lock()
		if ch, ok := p.waiting[from.String()]; ok {
			delete(p.waiting, from.String())
			ch <- at
		}
		p.mu.Unlock()
	}
}

// firstReply pings ip (whose MAC is mac) every interval from now until it
// answers or timeout passes, and returns when the first reply came. The
// target's neighbour entry is set by hand first (and removed afterwards),
// so the figure is the data path's, not the prober's ARP retry timer
// (a second between tries for an address that did not answer yet).
func (p *pinger) firstReply(ctx context.Context, ip, mac string, interval, timeout time.Duration) (time.Time, error) {
	if out, err := exec.CommandContext(ctx, "ip", "-n", p.netns, "neigh", "replace", ip, "lladdr", mac, "dev", "eth0", "nud", "permanent").CombinedOutput(); err != nil {
		return time.Time{}, fmt.Errorf("neighbour %s in %s: %v: %s", ip, p.netns, err, out)
	}
	defer exec.Command("ip", "-n", p.netns, "neigh", "del", ip, "dev", "eth0").Run()
	ch := make(chan time.Time, 1)
	p.mu.Lock()
	p.waiting[ip] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, ip)
		p.mu.Unlock()
	}()
	dst := &net.IPAddr{IP: net.ParseIP(ip)}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.After(timeout)
	for seq := 1; ; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq & 0xffff, Data: []byte("switchyard-bench")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return time.Time{}, err
		}
		if _, err := p.conn.WriteTo(b, dst); err != nil && !os.IsTimeout(err) {
			return time.Time{}, fmt.Errorf("ping %s from %s: %w", ip, p.netns, err)
		}
		select {
		case at := <-ch:
			return at, nil
		case <-tick.C:
		case <-deadline:
			return time.Time{}, fmt.Errorf("%s did not answer a ping from %s within %s", ip, p.netns, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
