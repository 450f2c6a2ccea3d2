// Package cnilab runs the CNI plugin switchyard-cni against a lab cluster
// (tests/cluster), as a container runtime would: it builds the plugin and
// CNI's cnitool, starts every host's agent with its CNI socket and state
// directory in the lab's run directory, and writes one CNI config
// directory per host (the plugin finds its host's agent through the
// config's "socket"). The end-to-end tests (tests/e2e/cni_*) and the
// benchmark (tests/bench/cni_*) use it. It must not reach into the agent or
// plugin: binaries, environment, files and the REST API only.
package cnilab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/cluster"
)

// Lab is a cluster whose agents serve CNI.
type Lab struct {
	*cluster.Cluster
	// BinDir holds switchyard-cni and cnitool (CNI_PATH).
	BinDir, PluginBin, CNIToolBin string
}

// New builds the binaries and brings up the cluster with CNI servers.
func New(t testing.TB, o cluster.Options) *Lab {
	t.Helper()
	bin := t.TempDir()
	root := repoRoot()
	for _, c := range [][]string{
		{"go", "build", "-o", filepath.Join(bin, "switchyard-cni"), "./node/cmd/switchyard-cni"},
		// cnitool in its own module (its imports are not all in ours), at our CNI version.
		{"sh", "-c", "GOBIN=" + bin + " go install github.com/containernetworking/cni/cnitool@$(go list -m -f '{{.Version}}' github.com/containernetworking/cni)"},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	o.NoAgents = true
	k := &Lab{Cluster: cluster.New(t, o), BinDir: bin, PluginBin: filepath.Join(bin, "switchyard-cni"), CNIToolBin: filepath.Join(bin, "cnitool")}
	for _, h := range k.Lab.Hosts {
		k.StartAgent(t, h.Name, k.AgentCNIEnv(h.Name)...)
	}
	k.WaitReady(t, 30*time.Second)
	for _, h := range k.Lab.Hosts {
		k.WaitCNI(t, h.Name)
	}
	return k
}

// AgentCNIEnv is the CNI part of host's agent environment.
func (k *Lab) AgentCNIEnv(host string) []string {
	return []string{"SWITCHYARD_CNI_SOCKET=" + k.Socket(host), "SWITCHYARD_CNI_STATE_DIR=" + filepath.Join(k.Lab.Dir, "cni-"+host, "state")}
}

// Socket is host's agent's CNI socket.
func (k *Lab) Socket(host string) string { return filepath.Join(k.Lab.Dir, "cni-"+host, "cni.sock") }

// ConfDir is host's CNI config directory (NETCONFPATH).
func (k *Lab) ConfDir(host string) string { return filepath.Join(k.Lab.Dir, "cni-"+host, "net.d") }

// Conf is the plugin's config for network on host, with extra fields.
func (k *Lab) Conf(host, name, network, cniVersion string, extra map[string]any) map[string]any {
	c := map[string]any{"type": "switchyard-cni", "network": network, "socket": k.Socket(host),
		"labels": map[string]string{"runtime": "cnitool"}, "capabilities": map[string]bool{"ips": true, "portMappings": true}}
	for key, v := range extra {
		c[key] = v
	}
	return map[string]any{"cniVersion": cniVersion, "name": name, "plugins": []any{c}}
}

// WriteConf writes the config list name for network into host's config
// directory and returns its path.
func (k *Lab) WriteConf(t testing.TB, host, name, network string, extra map[string]any) string {
	t.Helper()
	b, _ := json.MarshalIndent(k.Conf(host, name, network, "1.1.0", extra), "", "  ")
	p := filepath.Join(k.ConfDir(host), name+".conflist")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// CNITool runs cnitool command (add, check, del, gc, status) for the
// config name and the namespace netns (a name under /run/netns) with
// host's configs, plus env; it returns stdout and the error with stderr.
func (k *Lab) CNITool(t testing.TB, host, command, name, netns string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(k.CNIToolBin, command, name, "/run/netns/"+netns)
	cmd.Env = append(os.Environ(), append([]string{"CNI_PATH=" + k.BinDir, "NETCONFPATH=" + k.ConfDir(host)}, env...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cnitool %s %s %s on %s: %v: %s", command, name, netns, host, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Result is the part of a CNI result the tests read.
type Result struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name, Mac, Sandbox string
	} `json:"interfaces"`
	IPs []struct {
		Address, Gateway string
	} `json:"ips"`
	DNS struct {
		Nameservers []string `json:"nameservers"`
	} `json:"dns"`
}

// IP is the result's first address without its prefix length.
func (r Result) IP() string {
	if len(r.IPs) == 0 {
		return ""
	}
	ip, _, _ := strings.Cut(r.IPs[0].Address, "/")
	return ip
}

// Add attaches netns on host through cnitool and returns the result.
func (k *Lab) Add(t testing.TB, host, name, netns string, env ...string) Result {
	t.Helper()
	out, err := k.CNITool(t, host, "add", name, netns, env...)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.IP() == "" {
		t.Fatalf("cnitool add: %v: %s", err, out)
	}
	return r
}

// Plugin runs the plugin directly as a runtime would (CNI_COMMAND, the
// config on stdin) and returns stdout and the exit status.
func (k *Lab) Plugin(t testing.TB, command, containerID, netnsPath string, conf map[string]any) (string, int) {
	t.Helper()
	b, _ := json.Marshal(conf)
	cmd := exec.Command(k.PluginBin)
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + containerID, "CNI_NETNS=" + netnsPath,
		"CNI_IFNAME=eth0", "CNI_PATH=" + k.BinDir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// WaitCNI waits until host's agent answers STATUS without error (its
// socket is up, it applied a program and reaches the controller).
func (k *Lab) WaitCNI(t testing.TB, host string) {
	t.Helper()
	flat := Flat(k.Conf(host, "status", "any", "1.1.0", nil))
	k.Eventually(t, 30*time.Second, func() error {
		if out, code := k.Plugin(t, "STATUS", "", "", flat); code != 0 {
			return fmt.Errorf("STATUS on %s: %s", host, out)
		}
		return nil
	})
}

// Flat is the single plugin config of a config list, as a runtime passes it
// to the plugin.
func Flat(list map[string]any) map[string]any {
	c := map[string]any{}
	for k, v := range list["plugins"].([]any)[0].(map[string]any) {
		c[k] = v
	}
	c["cniVersion"], c["name"] = list["cniVersion"], list["name"]
	return c
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
