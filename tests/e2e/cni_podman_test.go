package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/cnilab"
)

// podman is one host's podman: its own storage and containers.conf (CNI
// backend, the host's CNI config directory, the plugin's directory).
type podman struct {
	dir, conf string
}

// newPodman configures podman for host: the CNI network backend with
// switchyard-cni; runc, as crun refuses this machine's hybrid cgroups
// ("cgroups in hybrid mode not supported"); cgroupfs; and resource limits
// at or below the machine's hard limits (it may not raise them: no
// CAP_SYS_RESOURCE). The image is busybox-static imported from a tarball:
// no registry.
func newPodman(t *testing.T, k *cnilab.Lab, host string) *podman {
	t.Helper()
	p := &podman{dir: filepath.Join(k.Lab.Dir, "podman-"+host)}
	p.conf = filepath.Join(p.dir, "containers.conf")
	rootfs := filepath.Join(p.dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
`, k.BinDir, k.ConfDir(host))
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Every container (and its netns) first, then the storage.
		if out, err := p.run("rm", "-a", "-f", "-t", "0"); err != nil {
			t.Logf("podman rm -a: %v: %s", err, out)
		}
		if out, err := p.run("system", "reset", "-f"); err != nil {
			t.Logf("podman system reset: %v: %s", err, out)
		}
	})
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (deploy/local/deps.sh installs it): %v", err)
	}
	b, err := os.ReadFile(busybox)
	if err == nil {
		err = os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755)
	}
	for _, c := range []string{"sh", "ping", "ip", "sleep"} {
		if err == nil {
			err = os.Symlink("busybox", filepath.Join(rootfs, "bin", c))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(p.dir, "busybox.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	p.must(t, "import", tarball, "localhost/sybusybox")
	return p
}

func (p *podman) run(args ...string) (string, error) {
	cmd := exec.Command("podman", append([]string{"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "runroot"),
		"--storage-driver", "vfs"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (p *podman) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestCNIPodman is issue 13's real runtime: podman (Debian's, CNI backend)
// runs a container on h1 attached by switchyard-cni, which gets an address,
// pings a container on h2 (and is pinged back), keeps its address across
// podman restart, and is released by podman rm; podman network inspect
// shows the network.
func TestCNIPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (deploy/local/deps.sh installs it)")
	}
	k := cnilab.New(t, cluster.Options{Hosts: 2})
	defer k.Lab.DumpOnFailure(t)
	k.Network(t, "blue", "10.40.0.0/24")
	// Podman 4.3's libcni speaks CNI up to 1.0.0.
	for _, h := range []string{"h1", "h2"} {
		b, _ := json.MarshalIndent(k.Conf(h, "sy-blue", "blue", "1.0.0", nil), "", "  ")
		if err := os.MkdirAll(k.ConfDir(h), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(k.ConfDir(h), "sy-blue.conflist"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nb := k.Lab.NewNetns(t, "pod-b")
	rb := k.Add(t, "h2", "sy-blue", nb)

	p := newPodman(t, k, "h1")
	id := p.must(t, "run", "-d", "--name", "pa", "--network", "sy-blue", "localhost/sybusybox", "sleep", "3600")
	ip := p.must(t, "inspect", "pa", "--format", `{{(index .NetworkSettings.Networks "sy-blue").IPAddress}}`)
	// Podman passes K8S_POD_NAME=<its container name>: the name at the controller.
	c := k.GetContainer(t, "pa?network=blue")
	if c.Labels["cni.switchyard.io/id"] != id[:63] || c.Host != "h1" || c.IP != ip || c.Status != openapi.ContainerRunning || !strings.HasPrefix(c.Netns, "/run/netns/") {
		t.Fatalf("podman's container at the controller: %+v (podman says %s)", c, ip)
	}
	if out, err := p.run("exec", "pa", "ping", "-c", "3", "-W", "2", rb.IP()); err != nil {
		t.Fatalf("podman container -> h2 %s: %v: %s", rb.IP(), err, out)
	}
	if res := cluster.Ping(t, nb, ip, 3, 200*time.Millisecond); res.Received != 3 {
		t.Fatalf("h2 -> podman container %s: %+v", ip, res)
	}
	inspect := p.must(t, "network", "inspect", "sy-blue")
	if !strings.Contains(inspect, `"name": "sy-blue"`) || !strings.Contains(inspect, "switchyard-cni") {
		t.Fatalf("podman network inspect: %s", inspect)
	}

	// podman restart: DEL then ADD with the same container ID, same address.
	p.must(t, "restart", "-t", "0", "pa")
	if again := p.must(t, "inspect", "pa", "--format", `{{(index .NetworkSettings.Networks "sy-blue").IPAddress}}`); again != ip {
		t.Fatalf("restarted: %s, had %s", again, ip)
	}
	if out, err := p.run("exec", "pa", "ping", "-c", "2", "-W", "2", rb.IP()); err != nil {
		t.Fatalf("after restart: %v: %s", err, out)
	}

	p.must(t, "rm", "-f", "-t", "0", "pa")
	if code, err := k.Do("GET", "/api/v1/containers/pa?network=blue", nil, nil); code != 404 {
		t.Fatalf("after podman rm: %d %v", code, err)
	}
	if res := cluster.Ping(t, nb, ip, 2, 200*time.Millisecond); res.Received != 0 {
		t.Fatalf("the released address still answers: %+v", res)
	}
}
