package e2e

import (
	"crypto/sha512"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/cnilab"
)

// TestCNI is issue 13's CNI plugin driven by cnitool (and the plugin run
// directly, as libcni runs it) against real namespaces on two hosts:
// ADD/CHECK/DEL/GC/STATUS, pings across hosts, a static address and port
// mappings (published ports), ADD of an attached container refused, DEL twice,
// a restarted container getting its address back, DEL after the agent
// restarted, and ADD/STATUS/DEL while the controller is down.
func TestCNI(t *testing.T) {
	k := cnilab.New(t, cluster.Options{Hosts: 2})
	defer k.Lab.DumpOnFailure(t)
	k.Network(t, "blue", "10.30.0.0/24")
	for _, h := range []string{"h1", "h2"} {
		k.WriteConf(t, h, "sy-blue", "blue", nil)
	}
	if _, err := k.CNITool(t, "h1", "status", "sy-blue", "none"); err != nil {
		t.Fatal(err)
	}

	na, nb := k.Lab.NewNetns(t, "cni-a"), k.Lab.NewNetns(t, "cni-b")
	ra := k.Add(t, "h1", "sy-blue", na)
	// A runtime passes the same CNI_ARGS to every verb of a container.
	podB := "CNI_ARGS=K8S_POD_NAME=pod-b;K8S_POD_NAMESPACE=default"
	rb := k.Add(t, "h2", "sy-blue", nb, podB)
	if ra.CNIVersion != "1.1.0" || ra.Interfaces[0].Name != "eth0" || ra.Interfaces[0].Sandbox != "/run/netns/"+na ||
		ra.IPs[0].Gateway != "10.30.0.1" || len(ra.DNS.Nameservers) == 0 {
		t.Fatalf("result %+v", ra)
	}
	// The result is what the namespace has and what the controller says.
	if got := cluster.IP(t, na, "-4", "-o", "addr", "show", "eth0"); !strings.Contains(got, ra.IPs[0].Address) {
		t.Fatalf("eth0 in %s: %s, result says %s", na, got, ra.IPs[0].Address)
	}
	pb := k.GetContainer(t, "pod-b?network=blue")
	if pb.Host != "h2" || pb.IP != rb.IP() || pb.Netns != "/run/netns/"+nb || pb.Status != openapi.ContainerRunning ||
		pb.Labels["runtime"] != "cnitool" {
		t.Fatalf("container pod-b %+v", pb)
	}
	for _, p := range []struct{ from, to, what string }{{na, rb.IP(), "h1 -> h2"}, {nb, ra.IP(), "h2 -> h1"}, {na, "10.30.0.1", "gateway"}} {
		if res := cluster.Ping(t, p.from, p.to, 3, 200*time.Millisecond); res.Received != 3 {
			t.Fatalf("ping %s (%s): %+v", p.what, p.to, res)
		}
	}
	for _, c := range []struct{ host, ns, args string }{{"h1", na, ""}, {"h2", nb, podB}} {
		if _, err := k.CNITool(t, c.host, "check", "sy-blue", c.ns, c.args); err != nil {
			t.Fatal(err)
		}
	}

	// ADD of an attachment that exists fails (the spec), and changes nothing.
	if _, err := k.CNITool(t, "h1", "add", "sy-blue", na); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Fatalf("second ADD: %v", err)
	}
	if res := cluster.Ping(t, nb, ra.IP(), 1, 200*time.Millisecond); res.Received != 1 {
		t.Fatalf("after the refused second ADD: %+v", res)
	}

	// CHECK sees what the agent's own check sees: eth0 down in its
	// namespace (which also drops its default route) fails it; up again,
	// with its route, passes.
	cluster.IP(t, na, "link", "set", "eth0", "down")
	if _, err := k.CNITool(t, "h1", "check", "sy-blue", na); err == nil || !strings.Contains(err.Error(), "check failed") {
		t.Fatalf("CHECK with eth0 down: %v", err)
	}
	cluster.IP(t, na, "link", "set", "eth0", "up")
	cluster.IP(t, na, "route", "replace", "default", "via", "10.30.0.1", "dev", "eth0")
	if _, err := k.CNITool(t, "h1", "check", "sy-blue", na); err != nil {
		t.Fatalf("CHECK with eth0 up again: %v", err)
	}

	top := t
	t.Run("static address and port mappings", func(t *testing.T) {
		nc := k.Lab.NewNetns(t, "cni-c")
		r := k.Add(t, "h1", "sy-blue", nc,
			`CAP_ARGS={"ips":["10.30.0.77/24"],"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}`)
		if r.IP() != "10.30.0.77" {
			t.Fatalf("static address: %+v", r)
		}
		// portMappings become the container's published ports.
		if c := k.GetContainer(t, cnitoolName(nc)+"?network=blue"); len(c.Publish) != 1 ||
			c.Publish[0].HostPort != 18080 || c.Publish[0].Port != 80 || c.Publish[0].Protocol != "TCP" {
			t.Fatalf("published ports: %+v", c.Publish)
		}
		if res := cluster.Ping(t, nb, "10.30.0.77", 2, 200*time.Millisecond); res.Received != 2 {
			t.Fatalf("ping the static address: %+v", res)
		}
		if _, err := k.CNITool(t, "h1", "del", "sy-blue", nc); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("del twice, then the same container again", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if _, err := k.CNITool(t, "h1", "del", "sy-blue", na); err != nil {
				t.Fatalf("DEL %d: %v", i+1, err)
			}
		}
		if cluster.LinkExists(na, "eth0") {
			t.Fatal("eth0 still in the namespace after a realized DEL")
		}
		if _, err := k.CNITool(t, "h1", "check", "sy-blue", na); err == nil || !strings.Contains(err.Error(), "unknown container") {
			t.Fatalf("CHECK after DEL: %v", err)
		}
		// The runtime restarts it (same container ID): same address.
		again := k.Add(t, "h1", "sy-blue", na)
		if again.IP() != ra.IP() {
			t.Fatalf("restarted container got %s, had %s", again.IP(), ra.IP())
		}
		if res := cluster.Ping(t, nb, ra.IP(), 2, 200*time.Millisecond); res.Received != 2 {
			t.Fatalf("ping the restarted container: %+v", res)
		}
	})

	t.Run("del after the agent restarted", func(t *testing.T) {
		nd := k.Lab.NewNetns(t, "cni-d")
		k.Add(t, "h1", "sy-blue", nd)
		if err := k.Agents["h1"].Restart(); err != nil {
			t.Fatal(err)
		}
		k.WaitCNI(t, "h1")
		if _, err := k.CNITool(t, "h1", "del", "sy-blue", nd); err != nil {
			t.Fatal(err)
		}
		if cluster.LinkExists(nd, "eth0") {
			t.Fatal("eth0 left")
		}
	})

	t.Run("gc", func(t *testing.T) {
		ne, nf := k.Lab.NewNetns(t, "cni-e"), k.Lab.NewNetns(t, "cni-f")
		k.WriteConf(t, "h1", "sy-blue-gc", "blue", nil)
		k.Add(t, "h1", "sy-blue-gc", ne, "CNI_ARGS=K8S_POD_NAME=gc-e")
		k.Add(t, "h1", "sy-blue-gc", nf, "CNI_ARGS=K8S_POD_NAME=gc-f")
		// As libcni runs it: the attachments still valid, gc-e's only.
		var e openapi.Container
		k.MustDo(t, 200, "GET", "/api/v1/containers/gc-e?network=blue", nil, &e)
		conf := cnilab.Flat(k.Conf("h1", "sy-blue-gc", "blue", "1.1.0", map[string]any{
			"cni.dev/valid-attachments": []map[string]string{{"containerID": e.Labels["cni.switchyard.io/id"], "ifname": "eth0"}}}))
		if out, code := k.Plugin(t, "GC", "", "", conf); code != 0 {
			t.Fatalf("GC: %s", out)
		}
		names := cniNames(t, k)
		if !names["gc-e"] || names["gc-f"] || !names[cnitoolName(na)] {
			t.Fatalf("after GC: %v", names)
		}
		// cnitool's gc passes no valid attachment: every container of that config goes, no other.
		if _, err := k.CNITool(t, "h1", "gc", "sy-blue-gc", ne); err != nil {
			t.Fatal(err)
		}
		names = cniNames(t, k)
		if names["gc-e"] || !names[cnitoolName(na)] || !names["pod-b"] {
			t.Fatalf("after cnitool gc: %v", names)
		}
	})

	t.Run("controller down", func(t *testing.T) {
		nd := k.Lab.NewNetns(t, "cni-down")
		k.Controller.Stop()
		conf := cnilab.Flat(k.Conf("h1", "sy-blue", "blue", "1.1.0", nil))
		out, code := k.Plugin(t, "ADD", "down-1", "/run/netns/"+nd, conf)
		if code != 1 || !strings.Contains(out, `"code": 11`) || !strings.Contains(out, "try again later") {
			t.Fatalf("ADD with the controller down: exit %d: %s", code, out)
		}
		out, code = k.Plugin(t, "STATUS", "", "", conf)
		if code != 1 || !strings.Contains(out, `"code": 50`) || !strings.Contains(out, "cannot reach the controller") {
			t.Fatalf("STATUS with the controller down: exit %d: %s", code, out)
		}
		// DEL succeeds, cleans the namespace now and the controller later.
		if _, err := k.CNITool(t, "h1", "del", "sy-blue", na); err != nil {
			t.Fatal(err)
		}
		if cluster.LinkExists(na, "eth0") {
			t.Fatal("eth0 left by a DEL without the controller")
		}
		k.StartController(top) // the whole test's: a subtest's processes stop with it
		name := cnitoolName(na)
		k.Eventually(t, 30*time.Second, func() error {
			if cniNames(t, k)[name] {
				return errNotYet
			}
			return nil
		})
		if res := cluster.Ping(t, nb, "10.30.0.1", 2, 200*time.Millisecond); res.Received != 2 {
			t.Fatalf("h2 after the controller came back: %+v", res)
		}
	})

	if _, err := k.CNITool(t, "h2", "del", "sy-blue", nb, podB); err != nil {
		t.Fatal(err)
	}
	if names := cniNames(t, k); len(names) != 0 {
		t.Fatalf("containers left: %v", names)
	}
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}

// cniNames are the names of the plugin's containers on network blue.
func cniNames(t *testing.T, k *cnilab.Lab) map[string]bool {
	t.Helper()
	var l openapi.List[openapi.Container]
	k.MustDo(t, 200, "GET", "/api/v1/containers?network=blue&selector="+url.QueryEscape("cni.switchyard.io/id"), nil, &l)
	names := map[string]bool{}
	for _, c := range l.Items {
		names[c.Name] = true
	}
	return names
}

// cnitoolName is the container name of cnitool's container in netns:
// cnitool's container ID, which it derives from the namespace's path.
func cnitoolName(netns string) string {
	s := sha512.Sum512([]byte("/run/netns/" + netns))
	return fmt.Sprintf("cnitool-%x", s[:10])
}
