package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// The agent's part of the node-local DNS, with the real binaries: its DNS
// namespace and the sydns0 port on br-int, the resolver serving inside
// that namespace (also after an agent restart, which reuses both), and a
// managed sandbox's resolv.conf written with the container and removed
// with it. (Answers from the program's names through the steering flows
// are TestDNSLab's, node/internal/converge, until the compiler emits them.)
func TestNodeLocalDNSAgent(t *testing.T) {
	c := cluster.New(t, cluster.Options{Hosts: 1, Tunnel: "geneve"})
	c.Network(t, "blue", "10.10.0.0/24")
	c.Container(t, "a", "blue", "h1", nil)
	dnsNetns := c.Lab.Prefix() + "dns-h1"
	c.Eventually(t, 30*time.Second, func() error {
		if !slices.Contains(c.Ports(t, "h1"), openapi.DNSPortName) {
			return fmt.Errorf("no %s on br-int: %v", openapi.DNSPortName, c.Ports(t, "h1"))
		}
		return nil
	})
	ofport := c.Lab.Host("h1").OFPort(t, openapi.DNSPortName)
	c.Eventually(t, 30*time.Second, func() error { return askIn("/run/netns/" + dnsNetns) })

	rc := filepath.Join("/etc/netns", c.Sandbox("h1", "a", "blue"), "resolv.conf")
	c.Eventually(t, 30*time.Second, func() error {
		b, err := os.ReadFile(rc)
		if err != nil || !strings.Contains(string(b), "nameserver 10.10.0.1\n") || !strings.Contains(string(b), "options ndots:2\n") {
			return fmt.Errorf("resolv.conf %s: %q %v", rc, b, err)
		}
		return nil
	})

	c.Agents["h1"].Restart()
	c.Eventually(t, 30*time.Second, func() error { return askIn("/run/netns/" + dnsNetns) })
	if p := c.Lab.Host("h1").OFPort(t, openapi.DNSPortName); p != ofport {
		t.Errorf("sydns0 ofport %d after an agent restart, was %d", p, ofport)
	}

	c.MustDo(t, 204, "DELETE", "/api/v1/containers/a?wait=realized&timeout=30s", nil, nil)
	c.Eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat(filepath.Dir(rc)); !os.IsNotExist(err) {
			return fmt.Errorf("%s still there: %v", filepath.Dir(rc), err)
		}
		return nil
	})
	c.Lab.DumpOnFailure(t)
}

// askIn sends one query to 127.0.0.1:53 from inside the namespace at path
// (UDP, then TCP): any answer means the resolver serves there.
func askIn(path string) error {
	var cs []net.Conn
	err := lab.InNetns(path, func() error {
		u, uerr := net.Dial("udp4", "127.0.0.1:53")
		tc, terr := net.DialTimeout("tcp4", "127.0.0.1:53", 2*time.Second)
		if uerr != nil || terr != nil {
			for _, c := range []net.Conn{u, tc} {
				if c != nil {
					c.Close()
				}
			}
			return fmt.Errorf("dial: %v %v", uerr, terr)
		}
		cs = []net.Conn{u, tc}
		return nil
	})
	if err != nil {
		return err
	}
	for i, proto := range []string{"udp", "tcp"} {
		defer cs[i].Close()
		q := new(dns.Msg)
		q.SetQuestion("nothing.invalid.", dns.TypeA)
		cl := &dns.Client{Net: proto, Timeout: 10 * time.Second}
		if _, _, err := cl.ExchangeWithConn(q, &dns.Conn{Conn: cs[i]}); err != nil {
			return fmt.Errorf("%s query in %s: %w", proto, path, err)
		}
	}
	return nil
}
