package trace

import (
	"bufio"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/golden"
	"github.com/switchyard/switchyard/openapi"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// loadCompilerGolden reads the programs of one of the compiler's golden
// files (controller/internal/compile/testdata): the hosts' tunnels,
// containers, flows and groups, as the compiler printed them.
func loadCompilerGolden(t *testing.T, name string) map[string]*openapi.Program {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "compile", "testdata", name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	progs := map[string]*openapi.Program{}
	var p *openapi.Program
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		kv := fields(line)
		switch {
		case strings.HasPrefix(line, "## host "):
			p = &openapi.Program{Host: strings.Fields(line)[2]}
			progs[p.Host] = p
		case strings.HasPrefix(line, "# tunnel "):
			p.Tunnels = append(p.Tunnels, openapi.TunnelPort{Name: strings.Fields(line)[2], PeerHost: kv["peer"], RemoteIP: kv["remote_ip"]})
		case strings.HasPrefix(line, "# container "):
			ip, _, _ := strings.Cut(kv["ip"], "/")
			p.Containers = append(p.Containers, openapi.ContainerPort{Name: strings.Fields(line)[2], Container: kv["name"], ID: kv["id"],
				Network: kv["network"], IP: ip, MAC: kv["mac"]})
		case strings.HasPrefix(line, "table="):
			p.Flows = append(p.Flows, parseFlowLine(t, line))
		case strings.HasPrefix(line, "group_id="):
			head, spec, _ := strings.Cut(line, ",")
			id, _ := strconv.ParseUint(strings.TrimPrefix(head, "group_id="), 10, 32)
			p.Groups = append(p.Groups, openapi.Group{ID: uint32(id), Spec: spec})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return progs
}

// fields reads the key=value words of a golden comment line.
func fields(line string) map[string]string {
	m := map[string]string{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

// parseFlowLine reads "table=N, priority=P, cookie=0x.., MATCH actions=A".
func parseFlowLine(t *testing.T, line string) openapi.Flow {
	t.Helper()
	var f openapi.Flow
	rest, acts, ok := strings.Cut(line, " actions=")
	if !ok {
		t.Fatalf("flow line %q", line)
	}
	f.Actions = acts
	parts := strings.SplitN(rest, ", ", 4)
	f.Table, _ = strconv.Atoi(strings.TrimPrefix(parts[0], "table="))
	f.Priority, _ = strconv.Atoi(strings.TrimPrefix(parts[1], "priority="))
	f.Cookie, _ = strconv.ParseUint(strings.TrimPrefix(parts[2], "cookie=0x"), 16, 64)
	if len(parts) == 4 {
		f.Match = parts[3]
	}
	return f
}

// containerPacket is a new connection from the container named src of
// prog to dst, its first hop's packet.
func containerPacket(t *testing.T, prog *openapi.Program, src, dstMAC, dst string, proto, port int) Packet {
	t.Helper()
	for _, c := range prog.Containers {
		if c.Container == src {
			p := Packet{InPort: c.Name, EthSrc: c.MAC, EthDst: dstMAC, Proto: proto, Src: netip.MustParseAddr(c.IP),
				Dst: netip.MustParseAddr(dst), SrcPort: 40000, DstPort: port}
			if proto == 1 {
				p.SrcPort, p.DstPort, p.ICMPType = 0, 0, 8
			}
			return p
		}
	}
	t.Fatalf("no container %s on host %s", src, prog.Host)
	return Packet{}
}

func renderResult(b *strings.Builder, host string, in Packet, r Result) {
	fmt.Fprintf(b, "## host %s flow %s\n", host, FlowText(in))
	for _, f := range r.Flows {
		fmt.Fprintf(b, "table=%d priority=%d cookie=%#x %s actions=%s\n", f.Table, f.Priority, f.Cookie, f.Match, f.Actions)
	}
	fmt.Fprintf(b, "verdict=%s output=%s backend=%s ct-next=%v\n", r.Verdict, r.Output, r.Backend, r.CtNext)
	fmt.Fprintf(b, "packet out: %s\n", FlowText(r.Packet))
	for _, n := range r.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}
}

// TestSimOnCompilerGoldens runs packets through the compiler's reviewed
// golden programs and checks where they end; every walk is kept in
// testdata/sim-<case>.golden (reviewed by eye; -update rewrites).
func TestSimOnCompilerGoldens(t *testing.T) {
	const (
		gw1  = "0a:58:0a:01:00:01" // blue's gateway MAC
		tcp  = 6
		udp  = 17
		icmp = 1
	)
	cases := []struct {
		name, golden, host, src, dstMAC, dst string
		proto, port                          int
		prefer                               string
		verdict, output                      string
		// then follows the output over a tunnel to the peer, which must
		// deliver to peerOutput.
		peerOutput string
	}{
		{name: "same-host", golden: "one-host", host: "h1", src: "web", dstMAC: "0a:58:0a:01:00:02", dst: "10.1.0.2", proto: tcp, port: 80,
			verdict: VerdictOutput},
		{name: "tunnel", golden: "three-hosts", host: "h2", src: "b1", dstMAC: "0a:58:0a:02:00:03", dst: "10.2.0.3", proto: tcp, port: 5432,
			verdict: VerdictOutput, peerOutput: "container b2"},
		{name: "service-remote-backend", golden: "svc-basic", host: "h1", src: "client", dstMAC: gw1, dst: "10.96.1.3", proto: tcp, port: 80,
			prefer: "10.1.0.3:8080", verdict: VerdictOutput, peerOutput: "container web2"},
		{name: "service-local-backend", golden: "svc-basic", host: "h1", src: "client", dstMAC: gw1, dst: "10.96.1.3", proto: udp, port: 53,
			prefer: "10.1.0.2:53", verdict: VerdictOutput, output: "container web1"},
		{name: "service-hairpin", golden: "svc-basic", host: "h1", src: "web1", dstMAC: gw1, dst: "10.96.1.3", proto: tcp, port: 80,
			prefer: "10.1.0.2:8080", verdict: VerdictOutput, output: "container web1"},
		{name: "service-reject", golden: "svc-reject", host: "h1", src: "client", dstMAC: gw1, dst: "10.96.1.4", proto: tcp, port: 80,
			verdict: VerdictController},
		{name: "gateway-echo", golden: "one-host", host: "h1", src: "web", dstMAC: gw1, dst: "10.1.0.1", proto: icmp,
			verdict: VerdictOutput, output: "container web"},
		{name: "outside", golden: "ext-basic", host: "h1", src: "web1", dstMAC: gw1, dst: "8.8.8.8", proto: udp, port: 53,
			verdict: VerdictOutput, peerOutput: openapi.GatewayPortName}, // blue's egress IP is on h2
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			progs := loadCompilerGolden(t, tc.golden)
			prog := progs[tc.host]
			if prog == nil {
				t.Fatalf("no host %s in %s", tc.host, tc.golden)
			}
			in := containerPacket(t, prog, tc.src, tc.dstMAC, tc.dst, tc.proto, tc.port)
			r := NewSim(prog).Run(in, tc.prefer)
			var b strings.Builder
			renderResult(&b, tc.host, in, r)
			if r.Verdict != tc.verdict || len(r.Notes) > 0 {
				t.Fatalf("verdict %s (notes %v), want %s\n%s", r.Verdict, r.Notes, tc.verdict, b.String())
			}
			if tc.output != "" && portOwner(prog, r.Output) != tc.output && r.Output != tc.output {
				t.Fatalf("output %s (%s), want %s\n%s", r.Output, portOwner(prog, r.Output), tc.output, b.String())
			}
			if tc.peerOutput != "" {
				var peer string
				for _, tn := range prog.Tunnels {
					if tn.Name == r.Output {
						peer = tn.PeerHost
					}
				}
				pp := progs[peer]
				if pp == nil {
					t.Fatalf("output %s is no tunnel\n%s", r.Output, b.String())
				}
				next := r.Packet
				next.Regs, next.CtState, next.CtZone = [8]uint32{}, 0, 0
				for _, tn := range pp.Tunnels {
					if tn.PeerHost == tc.host {
						next.InPort = tn.Name
					}
				}
				r2 := NewSim(pp).Run(next, tc.prefer)
				renderResult(&b, peer, next, r2)
				if r2.Verdict != VerdictOutput || portOwner(pp, r2.Output) != tc.peerOutput {
					t.Fatalf("peer %s: %s %s, want %s\n%s", peer, r2.Verdict, r2.Output, tc.peerOutput, b.String())
				}
			}
			checkGolden(t, "sim-"+tc.name, b.String())
		})
	}
}

func portOwner(p *openapi.Program, port string) string {
	for _, c := range p.Containers {
		if c.Name == port {
			return "container " + c.Container
		}
	}
	return port
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, name, got, *update)
}
