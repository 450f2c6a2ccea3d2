package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/tests/lab"
)

// demoPublish is the demo's published port: web1's HTTP server (the
// probe server the service uses, answering with the container's name) on
// its host's address, reached from the lab's outside, a namespace on the
// underlay that is no Switchyard host (a client on the internet).
var demoPublish = struct {
	container, network string
	hostPort, port     int
}{"web1", "blue", 18080, lab.ProbeHTTPPort}

// publish makes the lab's outside, publishes web1's HTTP port (PATCH, so
// a container taken over from an earlier run gets it too) and adds the
// check: curl from the outside to <host address>:hostPort answers "web1".
// Call it after startService (which starts web1's HTTP server).
func (d *demo) publish() {
	p := demoPublish
	o := d.lab.AddOutside(d.p)
	d.outside = o
	path := "/api/v1/containers/" + url.PathEscape(p.container) + "?network=" + url.QueryEscape(p.network) + "&wait=realized&timeout=30s"
	body := map[string]any{"publish": []map[string]any{{"hostPort": p.hostPort, "port": p.port, "protocol": "TCP"}}}
	d.must(d.api.call(d.ctx, "PATCH", path, body, nil), "publishing port "+fmt.Sprint(p.port)+" of "+p.container)
	h := d.lab.Host(d.containers[p.container].Host)
	target := fmt.Sprintf("http://%s:%d/", h.UnderlayAddr.Addr(), p.hostPort)
	d.checks = append(d.checks, check{
		what: fmt.Sprintf("external access: %s's port %d is published on %s's address as %d; from the outside (%s, a namespace on the underlay that is no Switchyard host) it answers with its name",
			p.container, p.port, h.Name, p.hostPort, o.Client),
		netns: o.Netns, cmd: []string{"curl", "-s", "--max-time", "3", target},
		want: func(out string) error {
			if strings.TrimSpace(out) != p.container {
				return fmt.Errorf("answer %q, want %s", out, p.container)
			}
			return nil
		}})
}
