package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// External ids the agent puts on the OVS rows it owns (node/internal/ovs).
const (
	extContainerID = "switchyard-container-id"
	extPeerHost    = "switchyard-peer-host"
)

// GetContainer reads a container through the API.
func (c *Cluster) GetContainer(t testing.TB, name string) openapi.Container {
	t.Helper()
	var out openapi.Container
	c.MustDo(t, 200, "GET", "/api/v1/containers/"+name, nil, &out)
	return out
}

// GetHost reads a host through the API.
func (c *Cluster) GetHost(t testing.TB, name string) openapi.Host {
	t.Helper()
	var out openapi.Host
	c.MustDo(t, 200, "GET", "/api/v1/hosts/"+name, nil, &out)
	return out
}

// WaitContainer waits until the container has the status and returns it.
func (c *Cluster) WaitContainer(t testing.TB, name, status string, timeout time.Duration) openapi.Container {
	t.Helper()
	var got openapi.Container
	c.Eventually(t, timeout, func() error {
		got = openapi.Container{}
		if _, err := c.Do("GET", "/api/v1/containers/"+name, nil, &got); err != nil {
			return err
		}
		if got.Status != status {
			return fmt.Errorf("container %s is %q (%s), want %q", name, got.Status, got.StatusDetail, status)
		}
		return nil
	})
	return got
}

// WaitHost waits until the host has the status (Ready, NotReady).
func (c *Cluster) WaitHost(t testing.TB, name, status string, timeout time.Duration) openapi.Host {
	t.Helper()
	var got openapi.Host
	c.Eventually(t, timeout, func() error {
		got = openapi.Host{}
		if _, err := c.Do("GET", "/api/v1/hosts/"+name, nil, &got); err != nil {
			return err
		}
		if got.Status != status {
			return fmt.Errorf("host %s is %s, want %s", name, got.Status, status)
		}
		return nil
	})
	return got
}

// portsWith lists the names of host's OVS ports whose external_ids hold
// key=value.
func (c *Cluster) portsWith(t testing.TB, host, key, value string) []string {
	t.Helper()
	return strings.Fields(c.Lab.Host(host).VSCtl(t, "--bare", "--columns=name", "find", "Port",
		fmt.Sprintf("external_ids:%s=%q", key, value)))
}

// ContainerPorts lists host's OVS ports that belong to the container with
// that id (none or one).
func (c *Cluster) ContainerPorts(t testing.TB, host, containerID string) []string {
	t.Helper()
	return c.portsWith(t, host, extContainerID, containerID)
}

// TunnelPorts lists host's tunnel ports towards peer (none or one).
func (c *Cluster) TunnelPorts(t testing.TB, host, peer string) []string {
	t.Helper()
	return c.portsWith(t, host, extPeerHost, peer)
}

// Bridges lists the OVS bridges of host.
func (c *Cluster) Bridges(t testing.TB, host string) []string {
	t.Helper()
	return strings.Fields(c.Lab.Host(host).VSCtl(t, "list-br"))
}

// FlowTerm is something a flow may name: an address, a MAC, a port.
type FlowTerm struct {
	What string
	re   *regexp.Regexp
}

// IPTerm matches an IPv4 address as a whole (10.0.0.4 is not in 10.0.0.40).
func IPTerm(ip string) FlowTerm {
	return FlowTerm{"ip " + ip, regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(ip) + `($|[^0-9])`)}
}

// MACTerm matches a MAC address, written with colons or as a 0x number.
func MACTerm(mac string) FlowTerm {
	hex := strings.ReplaceAll(strings.ToLower(mac), ":", "")
	return FlowTerm{"mac " + mac, regexp.MustCompile(`(?i)(^|[^0-9a-f:])(` + regexp.QuoteMeta(mac) + `|0x0*` + strings.TrimLeft(hex, "0") + `)($|[^0-9a-f:])`)}
}

// FlowsNaming returns the flows that name any of the terms, each prefixed
// with what it names.
func FlowsNaming(flows []string, terms ...FlowTerm) []string {
	var out []string
	for _, f := range flows {
		for _, term := range terms {
			if term.re.MatchString(f) {
				out = append(out, term.What+": "+f)
			}
		}
	}
	return out
}

var (
	ofctlPort = regexp.MustCompile(`(?m)^\s*(\d+)\(([^)]+)\):`)
	flowPort  = regexp.MustCompile(`(in_port=|output:)(\d+)`)
)

// DanglingFlows returns br-int's flows on host that match or output on a
// port number br-int does not have (any more): flows left behind by a
// removed container or tunnel.
func (c *Cluster) DanglingFlows(t testing.TB, host string) []string {
	t.Helper()
	have := map[string]bool{}
	for _, m := range ofctlPort.FindAllStringSubmatch(c.Lab.Host(host).OFCtl(t, "show", "br-int"), -1) {
		have[m[1]] = true
	}
	var out []string
	for _, f := range c.Flows(t, host) {
		for _, m := range flowPort.FindAllStringSubmatch(f, -1) {
			if !have[m[2]] {
				out = append(out, "port "+m[2]+": "+f)
				break
			}
		}
	}
	return out
}

// NetnsExists reports whether the named network namespace exists.
func NetnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(lab.NetnsDir, name))
	return err == nil
}

// LinkExists reports whether netns has a link of that name.
func LinkExists(netns, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := lab.RunIn(ctx, netns, "ip", "link", "show", "dev", name)
	return err == nil
}

// IP runs `ip args...` in netns and fails the test on error.
func IP(t testing.TB, netns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := lab.RunIn(ctx, netns, "ip", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// NetnsState is what the agent must leave alone in a namespace it may not
// use: each link's index, name, kind, MAC and alias, the IPv4 addresses,
// and the IPv4 routes of every table. Link state and IPv6 link-local
// addresses are left out (the kernel changes them on its own).
func NetnsState(t testing.TB, netns string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(IP(t, netns, "-d", "-o", "link"), "\n") {
		f := strings.Fields(line)
		// Only link lines ("N: name ..."): ip also prints notes such as
		// "Error: Peer netns reference is invalid." when a veth peer's
		// namespace id changes under it (other labs come and go), which
		// say nothing about this namespace.
		if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimSuffix(f[0], ":")); err != nil {
			continue
		}
		b.WriteString(f[0] + " " + f[1])
		for i, w := range f[:len(f)-1] {
			switch w {
			case "link/ether", "alias", "veth", "dummy", "bridge", "openvswitch":
				b.WriteString(" " + w + " " + f[i+1])
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(IP(t, netns, "-4", "-o", "addr"))
	b.WriteString(IP(t, netns, "-4", "route", "show", "table", "all"))
	return b.String()
}

// Reach waits until a ping from netns gets a reply from ip.
func (c *Cluster) Reach(t testing.TB, netns, ip string) {
	t.Helper()
	c.Eventually(t, 20*time.Second, func() error {
		if res := Ping(t, netns, ip, 1, 200*time.Millisecond); res.Received == 0 {
			return fmt.Errorf("ping %s from %s: %s", ip, netns, res.Output)
		}
		return nil
	})
}

// PingFrom pings dst from netns with source address src (ping -I) and
// reports whether any reply came back. It fails the test when ping could
// not even send (for example src is not an address of netns).
func PingFrom(t testing.TB, netns, src, dst string, count int) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*time.Second+10*time.Second)
	defer cancel()
	out, err := lab.RunIn(ctx, netns, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-I", src, dst)
	if !strings.Contains(out, "packets transmitted") && (err == nil || !strings.Contains(err.Error(), "packets transmitted")) {
		t.Fatalf("ping -I %s %s in %s did not run: %v %s", src, dst, netns, err, out)
	}
	return err == nil
}

// WaitLog waits until p's log holds every one of the strings
// (case-insensitive) and returns the log.
func (c *Cluster) WaitLog(t testing.TB, p *lab.Proc, timeout time.Duration, want ...string) string {
	t.Helper()
	var log string
	c.Eventually(t, timeout, func() error {
		log = p.Log()
		for _, w := range want {
			if !strings.Contains(strings.ToLower(log), strings.ToLower(w)) {
				return fmt.Errorf("log %s lacks %q:\n%s", p.LogPath(), w, log)
			}
		}
		return nil
	})
	return log
}

// Capture is a running tcpdump.
type Capture struct {
	c *Cluster
	p *lab.Proc
}

// tcpdump prints one line per packet, starting with the time of day.
var packetLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d+ `)

// Capture starts tcpdump on iface in netns (link-level headers, no
// promiscuous mode) with a pcap filter, and returns once it listens.
func (c *Cluster) Capture(t testing.TB, netns, iface, filter string) *Capture {
	t.Helper()
	p := c.Lab.Start(t, lab.ProcSpec{Name: "tcpdump", Netns: netns, Path: "tcpdump",
		Args: []string{"-l", "-n", "-e", "-p", "--immediate-mode", "-i", iface, filter}})
	c.Eventually(t, 10*time.Second, func() error {
		if strings.Contains(p.Log(), "listening on") {
			return nil
		}
		if p.Exited() {
			t.Fatalf("tcpdump in %s exited: %s", netns, p.Log())
		}
		return errors.New("tcpdump is not listening yet")
	})
	return &Capture{c: c, p: p}
}

// lines returns one line per packet seen so far.
func (cp *Capture) lines() []string {
	var out []string
	for _, line := range strings.Split(cp.p.Log(), "\n") {
		if packetLine.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

// WaitFor waits until the capture has seen a packet whose line holds every
// one of the strings. tcpdump reports packets in order, so once a packet
// sent last is seen, every packet before it has been reported too.
func (cp *Capture) WaitFor(t testing.TB, timeout time.Duration, want ...string) {
	t.Helper()
	cp.c.Eventually(t, timeout, func() error {
		lines := cp.lines()
		for _, w := range want {
			lines = Matching(lines, w)
		}
		if len(lines) == 0 {
			return fmt.Errorf("no packet with %q in %s:\n%s", want, cp.p.LogPath(), cp.p.Log())
		}
		return nil
	})
}

// Packets stops the capture and returns one line per packet seen.
func (cp *Capture) Packets() []string {
	cp.p.Stop()
	return cp.lines()
}

// Matching returns the lines that contain s.
func Matching(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
