package ovs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// TestPolicyDatapath applies programs compiled by controller/internal/compile
// (testdata/policy-*.json, kept current by its TestLabPrograms) to two real
// OVS hosts joined by Geneve, then VXLAN: web and client on h1, remote on
// h2, in three policy phases, and probes real ICMP and TCP between them. It checks that
// policies drop and pass what they should, on one host and across the
// tunnel, and that replies of allowed connections pass into an
// ingress-isolated container (conntrack on both hosts).
func TestPolicyDatapath(t *testing.T) {
	for _, tunnel := range []string{"geneve", "vxlan"} {
		t.Run(tunnel, func(t *testing.T) { testPolicyDatapath(t, tunnel) })
	}
}

func testPolicyDatapath(t *testing.T, tunnel string) {
	l := newLab(t, 2, tunnel)
	hosts := map[string]*lab.Host{}
	appliers := map[string]*Applier{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, h := range l.Hosts {
		hosts[h.Name] = h
		appliers[h.Name] = newApplier(t, l, h)
		if err := appliers[h.Name].EnsureUnderlay(ctx, h.UnderlayIface, h.UnderlayAddr); err != nil {
			t.Fatalf("%s EnsureUnderlay: %v", h.Name, err)
		}
	}
	netns := map[string]string{} // container -> sandbox
	ips := map[string]string{}
	rev := int64(0)
	applyPhase := func(phase string) {
		rev++
		for name, h := range hosts {
			p := loadProgram(t, phase, name, l)
			for i := range p.Tunnels {
				p.Tunnels[i].Type = tunnel
			}
			p.Revision = rev
			if r := apply(t, appliers[name], p); r.Degraded() {
				t.Fatalf("%s %s: degraded: %+v", phase, name, r)
			}
			if o := observe(t, appliers[name]); o.Drifted() {
				t.Fatalf("%s %s: drift after apply: %v", phase, name, o.Drift)
			}
			for _, cp := range p.Containers {
				netns[cp.Container], ips[cp.Container] = sandboxPrefix(l, h)+cp.Sandbox, cp.IP
			}
		}
	}
	applyPhase("open")
	for _, c := range []string{"web", "remote"} { // TCP listeners
		p := l.Start(t, lab.ProcSpec{Name: "iperf3-" + c, Netns: netns[c], Path: "iperf3", Args: []string{"-s"}})
		if err := lab.WaitListening(ctx, p, lab.IPerf3Port); err != nil {
			t.Fatal(err)
		}
	}
	type probe struct {
		from, to, proto string
		pass            bool
	}
	check := func(phase string, probes []probe) {
		for _, pr := range probes {
			var err error
			if pr.proto == "icmp" {
				_, err = lab.Ping(ctx, netns[pr.from], ips[pr.to], 1, 0)
			} else {
				_, err = lab.RunIn(ctx, netns[pr.from], "timeout", "2", "bash", "-c",
					fmt.Sprintf("echo > /dev/tcp/%s/%d", ips[pr.to], lab.IPerf3Port))
			}
			if got := err == nil; got != pr.pass {
				t.Errorf("%s: %s %s -> %s: passed=%v, want %v (%v)", phase, pr.proto, pr.from, pr.to, got, pr.pass, err)
			}
		}
	}
	check("open", []probe{
		{"client", "web", "tcp", true}, {"remote", "web", "tcp", true}, {"client", "web", "icmp", true},
		{"web", "remote", "icmp", true}, {"web", "remote", "tcp", true},
	})
	// web admits only TCP 5201 from client; its own connections still get
	// their replies (ICMP and TCP from remote, through Geneve).
	applyPhase("isolate")
	check("isolate", []probe{
		{"client", "web", "tcp", true}, {"remote", "web", "tcp", false}, {"client", "web", "icmp", false},
		{"web", "remote", "icmp", true}, {"web", "remote", "tcp", true},
	})
	// A priority-10 deny on client's egress beats the allow at web; a
	// priority-5 allow admits remote.
	applyPhase("deny")
	check("deny", []probe{
		{"client", "web", "tcp", false}, {"remote", "web", "tcp", true}, {"client", "web", "icmp", false},
		{"web", "remote", "icmp", true}, {"remote", "client", "icmp", true},
	})
	// The deny rule's verdict flow counted client's attempts.
	h1 := hosts["h1"]
	for _, f := range loadProgram(t, "deny", "h1", l).Flows {
		if strings.HasPrefix(f.Match, "conj_id=") && f.Actions == "drop" {
			out := h1.OFCtl(t, "dump-flows", "br-int", fmt.Sprintf("cookie=%#x/%#x", f.Cookie, uint64(CookieOwnerMask)))
			if n := nPackets(out); n == 0 {
				t.Errorf("deny rule %#x counted no packets:\n%s", f.Cookie, out)
			}
		}
	}
}

// loadProgram reads a compiled program and points its tunnels at the lab's
// underlay addresses.
func loadProgram(t *testing.T, phase, host string, l *lab.Lab) *openapi.Program {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "policy-"+phase+"-"+host+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var p openapi.Program
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	for i := range p.Tunnels {
		p.Tunnels[i].RemoteIP = l.Host(p.Tunnels[i].PeerHost).UnderlayAddr.Addr().String()
	}
	return &p
}

// nPackets sums the n_packets of a dump-flows output.
func nPackets(out string) int {
	n := 0
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "n_packets="); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(v, ","))
			n += k
		}
	}
	return n
}
