package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
)

// TestNetnsGuard: the agent runs as root and a container's netns path comes
// from whoever may create containers. A container naming the host's own
// namespace (by its path, or a symlink under /run/netns), init's
// (/proc/1/ns/net, directly or through a symlink; the API itself refuses a
// path with ".."), or the
// namespace another container already uses fails with a detail that says
// why, gets no OVS port, and nothing in the namespace it named changes:
// same links, addresses and routes before and after. The container already
// in the shared namespace keeps working.
func TestNetnsGuard(t *testing.T) {
	c := cluster.New(t, cluster.Options{Hosts: 1})
	defer c.Lab.DumpOnFailure(t)
	h1 := c.Lab.Host("h1")
	c.Network(t, "blue", "10.10.0.0/24")
	a := c.Container(t, "a", "blue", "h1", nil)
	shared := c.Lab.NewNetns(t, "shared")
	u := c.Container(t, "u", "blue", "h1", map[string]any{"netns": filepath.Join(lab.NetnsDir, shared)})
	c.WaitContainer(t, "u", openapi.ContainerRunning, 30*time.Second)

	symlink := func(name, target string) string {
		path := filepath.Join(lab.NetnsDir, c.Lab.Prefix()+name)
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
		return path
	}
	hostPath := filepath.Join(lab.NetnsDir, h1.Netns)
	for i, tc := range []struct {
		name, netns string
		watch       string // the namespace that must not change ("" = the root namespace)
		detail      string
	}{
		{"host netns", hostPath, h1.Netns, "host's network namespace"},
		{"symlink to host netns", symlink("to-h1", hostPath), h1.Netns, "host's network namespace"},
		{"init netns", "/proc/1/ns/net", "", "not under " + lab.NetnsDir},
		{"symlink to init netns", symlink("to-init", "/proc/1/ns/net"), "", "netns"},
		{"another container's netns", filepath.Join(lab.NetnsDir, shared), shared, "another switchyard port"},
		{"another container's netns by symlink", symlink("to-shared", shared), shared, "another switchyard port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "bad" + cluster.Itoa(i)
			before := rootSafeState(t, tc.watch)
			hostBefore := cluster.NetnsState(t, h1.Netns)
			// The realized wait says that h1 applied the change degraded.
			code, err := c.Do("POST", "/api/v1/containers?wait=realized&timeout=30s",
				map[string]any{"name": name, "network": "blue", "host": "h1", "netns": tc.netns}, nil)
			if code != 502 || err == nil || !strings.Contains(err.Error(), `"degraded"`) || !strings.Contains(err.Error(), `"h1"`) {
				t.Errorf("realized wait for a refused netns: %d %v, want 502 naming h1 degraded", code, err)
			}
			bad := c.GetContainer(t, name)
			got := c.WaitContainer(t, name, openapi.ContainerFailed, 30*time.Second)
			if !strings.Contains(got.StatusDetail, tc.detail) {
				t.Errorf("detail %q does not say %q", got.StatusDetail, tc.detail)
			}
			if ports := c.ContainerPorts(t, "h1", bad.ID); len(ports) != 0 {
				t.Errorf("refused container has OVS ports %v", ports)
			}
			// The failure is reported after the apply that refused it:
			// whatever that apply did is done by now.
			if after := rootSafeState(t, tc.watch); after != before {
				t.Errorf("namespace %q changed:\nbefore:\n%s\nafter:\n%s", tc.watch, before, after)
			}
			if after := cluster.NetnsState(t, h1.Netns); after != hostBefore {
				t.Errorf("host namespace changed:\nbefore:\n%s\nafter:\n%s", hostBefore, after)
			}
			c.MustDo(t, 204, "DELETE", "/api/v1/containers/"+name+"?wait=realized&timeout=30s", nil, nil)
		})
	}
	if got := c.GetContainer(t, "u"); got.Status != openapi.ContainerRunning {
		t.Errorf("u, whose netns others named: %s (%s)", got.Status, got.StatusDetail)
	}
	c.Reach(t, shared, a.IP)
	c.Reach(t, c.Sandbox("h1", "a", "blue"), u.IP)
}

// rootSafeState is NetnsState for a lab namespace; for the machine's own
// namespace ("") only what the agent could have touched there, eth0 and
// the default routes, since other tests change the rest of it.
func rootSafeState(t *testing.T, netns string) string {
	t.Helper()
	if netns != "" {
		return cluster.NetnsState(t, netns)
	}
	out := cluster.IP(t, "", "-4", "route", "show", "default")
	if cluster.LinkExists("", "eth0") {
		out += cluster.IP(t, "", "-d", "-o", "link", "show", "dev", "eth0")
		out += cluster.IP(t, "", "-4", "-o", "addr", "show", "dev", "eth0")
	}
	return out
}
