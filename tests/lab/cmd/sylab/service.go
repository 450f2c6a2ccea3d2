package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// demoService is the demo's service: the containers labelled app=web of
// blue, each answering HTTP with its name (tests/lab/cmd/syprobe, started
// by the demo in their namespaces), behind a VIP on port 80.
var demoService = struct {
	name, network, selector, healthPath string
	port                                int
	backends                            []string // the containers the demo starts an HTTP server in
	client                              string   // the container the checks run in
}{"web", "blue", "app=web", "/healthz", 80, []string{"web1", "web2"}, "api1"}

// dnsDomain is the controller's DNS domain: make run gives the demo the
// controller's environment, and the controller reads the same variable
// (lower case, without the final dot; default switchyard.local).
func dnsDomain() string {
	d := strings.TrimSuffix(strings.ToLower(os.Getenv("SWITCHYARD_DNS_DOMAIN")), ".")
	if d == "" {
		return "switchyard.local"
	}
	return d
}

// startService starts an HTTP server (the lab's probe server, stopped by
// pid with the lab) in every backend, creates the service (or takes the
// one of an earlier run) and adds its checks: a connection from the
// client through the VIP, and the service's name resolved from the
// client's namespace by `ip netns exec` (which uses the resolv.conf the
// agent wrote in /etc/netns/<sandbox>).
func (d *demo) startService() {
	s := demoService
	for _, name := range s.backends {
		d.lab.StartProbe(d.p, d.probeBin, name, d.sandbox(name))
	}
	body := map[string]any{
		"name": s.name, "network": s.network, "selector": s.selector,
		"ports": []map[string]any{{"name": "http", "port": s.port, "targetPort": lab.ProbeHTTPPort, "protocol": "TCP"}},
		"healthCheck": map[string]any{"protocol": "HTTP", "port": lab.ProbeHTTPPort, "path": s.healthPath,
			"intervalSeconds": 2, "timeoutSeconds": 1, "unhealthyThreshold": 3, "healthyThreshold": 1},
	}
	svc, err := d.api.service(d.ctx, body)
	d.must(err, "service "+s.name)
	backends := strings.Join(s.backends, " and ")
	fqdn := s.name + "." + s.network + "." + dnsDomain()
	d.checks = append(d.checks,
		check{what: fmt.Sprintf("a service: the VIP of %s balances over %s, which answer with their names (run it a few times)", s.name, backends),
			from: s.client, cmd: []string{"curl", "-s", fmt.Sprintf("http://%s/", svc.VIP)},
			want: func(out string) error {
				for _, b := range s.backends {
					if strings.TrimSpace(out) == b {
						return nil
					}
				}
				return fmt.Errorf("answer %q, want one of %s", out, backends)
			}},
		check{what: "DNS: every container's resolver is its network's gateway, answered by the agent of its own host",
			from: s.client, cmd: []string{"getent", "hosts", fqdn},
			want: func(out string) error {
				if f := strings.Fields(out); len(f) < 2 || f[0] != svc.VIP {
					return fmt.Errorf("answer %q, want %s %s", strings.TrimSpace(out), svc.VIP, fqdn)
				}
				return nil
			}})
}

// runCheck runs a command check as printed, `ip netns exec <sandbox> cmd`,
// until it gives the expected answer or 20 seconds pass (the flows, and
// the health checks of a service taken over from an earlier run, may take
// a few seconds to settle).
func (d *demo) runCheck(c *check) {
	ns := d.checkNetns(*c)
	if _, err := exec.LookPath(c.cmd[0]); err != nil {
		d.p.Logf("check %q: %s is not installed on this machine", c.what, c.cmd[0])
		return
	}
	var last error
	err := poll(d.ctx, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(d.ctx, 3*time.Second)
		defer cancel()
		out, err := lab.RunIn(ctx, "", "ip", append([]string{"netns", "exec", ns}, c.cmd...)...)
		if err == nil {
			err = c.want(out)
		}
		last = err
		return err
	})
	d.must(nil, "checking the demo's service, DNS and published port")
	c.ok = err == nil
	if !c.ok {
		d.p.Logf("check %q: unexpected: %v", c.what, last)
	}
}
