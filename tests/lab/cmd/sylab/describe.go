package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// check is one of the commands the demo shows, tried once by the demo
// itself: a ping, or (cmd set) a command run with `ip netns exec` in a
// container's namespace, exactly as printed.
type check struct {
	what     string // comment line above the command
	from, to string // container names; to "" means the gateway of from's network
	reach    bool   // whether from should reach to
	// cmd, when set, is run in from's namespace (or netns, when set)
	// instead of a ping; want says whether its output is the expected
	// answer.
	cmd   []string
	netns string
	want  func(out string) error
	ok    bool // what the demo saw
}

var demoChecks = []check{
	{what: "same host (h1): web1 -> api1", from: "web1", to: "api1", reach: true},
	{what: "across hosts, over the tunnel: web1 (h1) -> web2 (h2)", from: "web1", to: "web2", reach: true},
	{what: "across hosts: web1 (h1) -> db1 (h3)", from: "web1", to: "db1", reach: true},
	{what: "the gateway of blue, answered on every host by its own flows", from: "web1", reach: true},
	{what: "isolation: blue cannot reach red, not even on one host (web2 and cache1 are both on h2): 100% packet loss",
		from: "web2", to: "cache1", reach: false},
}

// sandbox is the namespace of a demo container, where the agent made it.
func (d *demo) sandbox(name string) string {
	c := d.containers[name]
	return d.lab.Sandbox(c.Host, c.Name, c.Network)
}

// checkNetns is the namespace a check runs in.
func (d *demo) checkNetns(c check) string {
	if c.netns != "" {
		return c.netns
	}
	return d.sandbox(c.from)
}

// target is the address a check pings.
func (d *demo) target(c check) string {
	if c.to == "" {
		return d.networks[d.containers[c.from].Network].Gateway
	}
	return d.containers[c.to].IP
}

// waitSandboxes waits until the agents have made every container's
// sandbox: the database may say "running" from an earlier run before this
// run's agents have made anything.
func (d *demo) waitSandboxes() {
	err := poll(d.ctx, 60*time.Second, func() error {
		for name := range d.containers {
			if _, err := os.Stat(filepath.Join(lab.NetnsDir, d.sandbox(name))); err != nil {
				return fmt.Errorf("sandbox of %s: %w", name, err)
			}
		}
		return nil
	})
	d.must(err, "waiting for the agents to make the containers' sandboxes")
}

// selfCheck runs every check once, so the text can say what works. It
// gives each check that should succeed a few seconds for the flows to land.
func (d *demo) selfCheck() {
	d.checks = append(append([]check(nil), demoChecks...), d.checks...)
	for i := range d.checks {
		c := &d.checks[i]
		if c.cmd != nil {
			d.runCheck(c)
			continue
		}
		ns, dst := d.sandbox(c.from), d.target(*c)
		var r lab.PingResult
		if c.reach {
			_ = poll(d.ctx, 15*time.Second, func() error {
				var err error
				r, err = lab.Ping(d.ctx, ns, dst, 1, 200*time.Millisecond)
				return err
			})
		} else {
			r, _ = lab.Ping(d.ctx, ns, dst, 3, 200*time.Millisecond)
		}
		d.must(nil, "checking the demo's pings")
		c.ok = r.Sent > 0 && (r.Received > 0) == c.reach
		if !c.ok {
			d.p.Logf("check %q: %d of %d replies, unexpected:\n%s", c.what, r.Received, r.Sent, r.Output)
		}
	}
}

// command is what a check runs in the namespace of c.from.
func (d *demo) command(c check) []string {
	if c.cmd != nil {
		return c.cmd
	}
	if !c.reach {
		return []string{"ping", "-c3", "-W1", d.target(c)}
	}
	return []string{"ping", "-c3", d.target(c)}
}

// describe is the try-this text: the hosts and containers, the commands to
// run, and where to look.
func (d *demo) describe() string {
	sudo := ""
	if _, err := exec.LookPath("sudo"); err == nil {
		sudo = "sudo "
	}
	var b strings.Builder
	l := d.lab
	fmt.Fprintf(&b, "\n  Switchyard demo lab is up: lab %s, %d hosts joined by %s tunnels over the underlay %s\n", l.ID, len(l.Hosts), l.Tunnel, l.Subnet)
	byHost := map[string][]string{}
	for _, c := range d.containers {
		byHost[c.Host] = append(byHost[c.Host], fmt.Sprintf("%s %s (%s)", c.Name, c.IP, c.Network))
	}
	for _, h := range l.Hosts {
		cs := byHost[h.Name]
		sort.Strings(cs)
		fmt.Fprintf(&b, "    %-3s %-15s %s\n", h.Name, h.UnderlayAddr.Addr(), strings.Join(cs, ", "))
	}
	if o := d.outside; o != nil {
		fmt.Fprintf(&b, "    outside %s, %s  (%s: a client and a server on the underlay, no Switchyard host)\n", o.Client, o.Server, o.Netns)
	}
	fmt.Fprintf(&b, "\n  Every container is a network namespace (%s<host>-<container>.<network>). Try:\n", l.Prefix())
	failed := 0
	for _, c := range d.checks {
		mark := "checked just now"
		if !c.ok {
			mark = "NOT as expected just now, see the agent logs"
			failed++
		}
		fmt.Fprintf(&b, "    # %s [%s]\n", c.what, mark)
		fmt.Fprintf(&b, "    %sip netns exec %s %s\n", sudo, d.checkNetns(c), strings.Join(d.command(c), " "))
	}
	fmt.Fprintf(&b, "\n  The API, as admin:\n")
	fmt.Fprintf(&b, "    TOKEN=%s API=%s/api/v1\n", d.api.c.Token, d.api.c.Base)
	if d.caFile != "" { // curl verifies the controller with the lab's CA
		fmt.Fprintf(&b, "    export CURL_CA_BUNDLE=%s\n", d.caFile)
	}
	fmt.Fprintf(&b, "    # the backends of %s and their health (the agents probe HTTP :%d%s)\n", demoService.name, lab.ProbeHTTPPort, demoService.healthPath)
	fmt.Fprintf(&b, "    curl -s -H \"Authorization: Bearer $TOKEN\" \"$API/services/%s/endpoints?network=%s\"\n", demoService.name, demoService.network)
	fmt.Fprintf(&b, "    # add a container and ping it from web1\n")
	fmt.Fprintf(&b, "    curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -X POST \"$API/containers?wait=realized\" \\\n")
	fmt.Fprintf(&b, "         -d '{\"name\":\"web3\",\"network\":\"blue\",\"host\":\"h3\"}'\n")
	fmt.Fprintf(&b, "    %sip netns exec %s ping -c3 <the ip in the answer>\n", sudo, d.sandbox("web1"))
	h1 := l.Hosts[0]
	fmt.Fprintf(&b, "\n  Look inside (h1; h2 and h3 alike):\n")
	fmt.Fprintf(&b, "    %sovs-vsctl --db=%s show\n", sudo, h1.DB)
	fmt.Fprintf(&b, "    %sovs-ofctl -O OpenFlow15 dump-flows %s\n", sudo, h1.MgmtSocket("br-int"))
	fmt.Fprintf(&b, "    %sip netns exec %s ip -br addr      # the host's own namespace\n", sudo, h1.Netns)
	fmt.Fprintf(&b, "    logs: agents %s/agent-h*.log, OVS %s/h*/vswitchd.log (removed when the demo stops)\n", l.Dir, l.Dir)
	fmt.Fprintf(&b, "  The demo stops with the controller (Ctrl-C or 'make stop'); 'SWITCHYARD_DEMO=0 make run' skips it.\n")
	if failed > 0 {
		fmt.Fprintf(&b, "  WARNING: %d of %d checks did not behave as expected.\n", failed, len(d.checks))
	}
	b.WriteString("\n")
	return b.String()
}
