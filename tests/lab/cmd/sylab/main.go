// Command sylab runs the demo lab of `make run`: simulated hosts built by
// tests/lab (network namespaces, each with its own Open vSwitch), one
// switchyard-agent per host connected to a running controller, two networks
// and a few containers, a service with an HTTP server in each of its
// backends, and one of them published on its host's address, so a new user
// sees a living network: can ping between containers, reach the service's
// VIP, resolve its name, and reach the published port from the lab's
// outside (a namespace on the underlay that is no Switchyard host). It runs until SIGINT or SIGTERM, then stops the
// agents and tears the lab down by pid, as every lab does.
//
//	sylab -controller http://127.0.0.1:8080   (admin token in SWITCHYARD_ADMIN_TOKEN)
//	sylab -controller https://127.0.0.1:8443  (and SWITCHYARD_CA_FILE: the agents verify it too)
//	sylab -clean                              tear down labs whose creator died
//
// deploy/local/run.sh starts it once the controller is ready. It needs root
// and the OVS binaries; without them it says why and exits with status 0, so
// the controller runs on alone. It only talks to the controller through the
// REST API, like any user, and it never changes the controller's state
// beyond the demo's own objects (networks blue and red, the containers
// below, the service web, web1's published port, the hosts' node tokens): those persist across
// runs, and the next run takes them over.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/lab"
)

// demoNet and demoContainer are the demo's intent.
type demoNet struct{ name, cidr string }

type demoContainer struct {
	name, network, host, app string
}

var (
	demoNets       = []demoNet{{"blue", "10.10.0.0/24"}, {"red", "10.20.0.0/24"}}
	demoContainers = []demoContainer{
		{"web1", "blue", "h1", "web"},
		{"api1", "blue", "h1", "api"},
		{"web2", "blue", "h2", "web"},
		{"cache1", "red", "h2", "cache"},
		{"db1", "blue", "h3", "db"},
	}
)

// tokenPrefix names the node tokens the demo creates: sylab-<lab id>-<host>.
const tokenPrefix = "sylab-"

func main() {
	var (
		controller = flag.String("controller", "http://127.0.0.1:8080", "controller base URL, as reachable from this machine")
		agentBin   = flag.String("agent", filepath.Join(exeDir(), "switchyard-agent"), "the node agent binary")
		probeBin   = flag.String("probe", filepath.Join(exeDir(), "syprobe"), "the lab's probe server (tests/lab/cmd/syprobe), the service's HTTP backends")
		tunnel     = flag.String("tunnel", openapi.TunnelGeneve, "tunnel type of the hosts: geneve or vxlan")
		infoFile   = flag.String("info", "", "also write the try-this text to this file (mode 0600; removed at exit)")
		clean      = flag.Bool("clean", false, "tear down labs whose creating process is gone (after a hard kill), then exit")
	)
	flag.Parse()
	p := lab.NewProgram("sylab", os.Stderr)
	if *clean {
		if err := lab.CleanupStale(); err != nil {
			p.Fatalf("cleaning stale labs: %v", err)
		}
		return
	}
	if err := lab.Requirements(); err != nil {
		p.Logf("no demo lab on this machine: %v; the controller runs on without it", err)
		return
	}
	token := os.Getenv("SWITCHYARD_ADMIN_TOKEN")
	if token == "" {
		p.Fatalf("set SWITCHYARD_ADMIN_TOKEN to the controller's admin token")
	}
	u, err := url.Parse(*controller)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		p.Fatalf("-controller %q: want http://HOST:PORT or https://HOST:PORT", *controller)
	}
	sec, err := client.SecurityFromEnv(os.Getenv)
	if err != nil {
		p.Fatalf("%v", err)
	}
	c, err := client.NewSecure(*controller, token, sec)
	if err != nil {
		p.Fatalf("-controller: %v", err)
	}
	for _, bin := range []string{*agentBin, *probeBin} {
		if _, err := os.Stat(bin); err != nil {
			p.Fatalf("%v (make build)", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop() // a signal during cleanup is swallowed until here: the teardown finishes
	d := &demo{p: p, ctx: ctx, agentBin: *agentBin, probeBin: *probeBin, tunnel: *tunnel,
		api: &api{c: c}}
	d.up(u, sec)
	text := d.describe()
	fmt.Print(text)
	if *infoFile != "" {
		if err := os.WriteFile(*infoFile, []byte(text), 0o600); err != nil {
			p.Errorf("writing %s: %v", *infoFile, err)
		}
		p.Cleanup(func() { _ = os.Remove(*infoFile) })
	}
	<-ctx.Done()
	p.Logf("stopping: agents, then lab %s", d.lab.ID)
	p.Exit(0)
}

// demo is one run of the demo lab.
type demo struct {
	p        *lab.Program
	ctx      context.Context // ends at SIGINT/SIGTERM
	api      *api
	agentBin string
	probeBin string
	tunnel   string
	caFile   string // the CA an https:// controller is verified with (absolute; "" for system roots)

	lab        *lab.Lab
	networks   map[string]openapi.Network
	containers map[string]openapi.Container
	checks     []check
	outside    *lab.Outside
}

// must ends the program (after its cleanups) on err, or quietly when a
// signal asked it to stop.
func (d *demo) must(err error, what string) {
	if d.ctx.Err() != nil {
		d.p.Logf("interrupted during %s", what)
		d.p.Exit(0)
	}
	if err != nil {
		d.p.Fatalf("%s: %v", what, err)
	}
}

// up builds the lab, connects the agents and creates the demo's networks
// and containers, then the service. controller is the controller's URL on
// this machine; over https the agents verify it as sec says, for the URL's
// host (they dial the relay's address).
func (d *demo) up(controller *url.URL, sec client.Security) {
	d.must(d.api.call(d.ctx, "GET", "/api/v1/revision", nil, nil), "reaching the controller at "+d.api.c.Base)
	d.revokeStaleTokens()
	d.lab = lab.New(d.p, lab.Options{Hosts: 3, Tunnel: d.tunnel})
	d.must(nil, "building the lab")
	// The agents inside the lab reach the controller at the underlay's
	// first address, through a relay into this namespace.
	agentURL := controller.Scheme + "://" + d.lab.Expose(d.p, controller.Host).Addr()
	var agentEnv []string
	if controller.Scheme == "https" {
		agentEnv = []string{client.EnvTLSServerName + "=" + cmp.Or(sec.ServerName, controller.Hostname())}
		if sec.CAFile != "" {
			ca, err := filepath.Abs(sec.CAFile)
			d.must(err, "the CA file")
			d.caFile = ca
			agentEnv = append(agentEnv, client.EnvCAFile+"="+ca)
		}
	}
	var names, tokens []string
	// Runs after the agents have stopped (cleanups run newest first).
	d.p.Cleanup(func() { d.revoke(tokens) })
	for _, h := range d.lab.Hosts {
		tok, err := d.api.createToken(d.ctx, tokenPrefix+d.lab.ID+"-"+h.Name, h.Name)
		d.must(err, "creating the node token of "+h.Name)
		tokens = append(tokens, tok.ID)
		d.lab.Start(d.p, lab.ProcSpec{Name: "agent-" + h.Name, Netns: h.Netns, Path: d.agentBin,
			Env: append(h.AgentEnv(agentURL, tok.Secret), agentEnv...)})
		names = append(names, h.Name)
	}
	d.must(d.api.waitReady(d.ctx, names, 60*time.Second), "waiting for the hosts to be Ready (agent logs: "+d.lab.Dir+"/agent-h*.log)")
	d.networks = map[string]openapi.Network{}
	for _, n := range demoNets {
		net, err := d.api.network(d.ctx, n.name, n.cidr)
		d.must(err, "network "+n.name)
		d.networks[n.name] = net
	}
	d.containers = map[string]openapi.Container{}
	for _, c := range demoContainers {
		got, err := d.api.container(d.ctx, c.name, c.network, c.host, map[string]string{"app": c.app})
		d.must(err, "container "+c.name+" (agent log: "+d.lab.Dir+"/agent-"+c.host+".log)")
		d.containers[c.name] = got
	}
	d.waitSandboxes()
	d.startService()
	d.publish()
	d.selfCheck()
}

// revoke revokes demo node tokens by id. The controller may be gone
// already (Ctrl-C stops it too); the next run revokes what is left.
func (d *demo) revoke(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := d.api.revoke(ctx, id); err != nil {
			d.p.Logf("node tokens not revoked (%v); the next demo run revokes them", err)
			return
		}
	}
}

// revokeStaleTokens revokes the node tokens of earlier demo labs that are
// gone (killed, or the controller stopped first).
func (d *demo) revokeStaleTokens() {
	toks, err := d.api.tokens(d.ctx)
	d.must(err, "listing tokens")
	var stale []string
	for _, t := range toks {
		rest, ok := strings.CutPrefix(t.Name, tokenPrefix)
		id, _, ok2 := strings.Cut(rest, "-")
		if !ok || !ok2 || t.RevokedAt != nil || t.Role != "node" {
			continue
		}
		if _, err := os.Stat(lab.RunDir(id)); err == nil {
			continue // that lab still runs
		}
		stale = append(stale, t.ID)
	}
	d.revoke(stale)
}

// exeDir is the directory of this binary (bin/ after make build).
func exeDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	return filepath.Dir(exe)
}
