package link

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// beneath resolves symlinks and ".." before it compares (no root needed).
func TestBeneath(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "netns")
	other := filepath.Join(root, "elsewhere")
	for _, d := range []string{dir, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(dir, "ok"), filepath.Join(other, "secret")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"out":      "../elsewhere/secret",
		"outabs":   filepath.Join(other, "secret"),
		"in":       "ok",
		"inabs":    filepath.Join(dir, "ok"),
		"dirself":  ".",
		"loopback": "out",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path string
		want string // relative result, or "" when refused
	}{
		{filepath.Join(dir, "ok"), "ok"},
		{filepath.Join(dir, "in"), "ok"},
		{filepath.Join(dir, "inabs"), "ok"},
		{filepath.Join(dir, "..", "netns", "ok"), "ok"},
		{filepath.Join(dir, "out"), ""},
		{filepath.Join(dir, "outabs"), ""},
		{filepath.Join(dir, "loopback"), ""},
		{dir + "/../elsewhere/secret", ""},
		{filepath.Join(dir, "dirself"), ""},
		{dir, ""},
		{"/proc/1/ns/net", ""},
		{dir + "/../../../../proc/1/ns/net", ""},
		{"netns/ok", ""},
		{filepath.Join(dir, "missing"), ""},
		{dir + "/ok\x00", ""},
	} {
		rel, err := beneath(dir, tc.path)
		if tc.want == "" {
			if err == nil {
				t.Errorf("beneath(%q) = %q, want refused", tc.path, rel)
			}
			continue
		}
		if err != nil || rel != tc.want {
			t.Errorf("beneath(%q) = %q, %v; want %q", tc.path, rel, err, tc.want)
		}
	}
}

// snapshotNetns is what a port must not change in a namespace: each
// link's index, name, type, MAC and alias, the IPv4 addresses and the IPv4
// routes of every table. (Link state and IPv6 link-local addresses are left
// out: the kernel changes them on its own, e.g. when a carrier comes up.)
func snapshotNetns(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(in(t, ns, "ip", "-d", "-o", "link"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		b.WriteString(f[0] + " " + f[1])
		for i, w := range f {
			if (w == "link/ether" || w == "alias" || w == "veth" || w == "dummy" || w == "bridge") && i+1 < len(f) {
				b.WriteString(" " + w + " " + f[i+1])
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(in(t, ns, "ip", "-4", "-o", "addr"))
	b.WriteString(in(t, ns, "ip", "-4", "route", "show", "table", "all"))
	return b.String()
}

// A container's netns path may name only a namespace of its own under the
// netns directory. The host's namespace (by any path, symlink or bind
// mount), init's, a managed sandbox, a plain file, a path outside the
// directory, and a namespace whose eth0 or default route is not the
// agent's are refused, and nothing in them changes.
func TestUserNetnsRefused(t *testing.T) {
	e := newEnv(t)
	dir := DefaultNetnsDir
	name := func(s string) string { return filepath.Join(dir, "sylt-"+e.id+"-"+s) }
	hostPath := filepath.Join(dir, e.host)

	mustSymlink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(link) })
	}
	mustSymlink(hostPath, name("to-host"))
	mustSymlink("/proc/1/ns/net", name("to-init"))
	mustSymlink("../../proc/1/ns/net", name("to-init-rel"))
	// A bind mount of the host namespace under another name.
	alias := name("host-bind")
	if err := os.WriteFile(alias, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(hostPath, alias, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamedNetns(alias) })
	plain := name("plain")
	if err := os.WriteFile(plain, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(plain) })

	// Namespaces of someone else's making: one with its own eth0 (a veth),
	// one with a default route of its own.
	foreignEth0 := name("foreign-eth0")
	foreignRoute := name("foreign-route")
	for _, ns := range []string{foreignEth0, foreignRoute} {
		if err := createNamedNetns(ns); err != nil {
			t.Fatal(err)
		}
	}
	in(t, filepath.Base(foreignEth0), "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	in(t, filepath.Base(foreignEth0), "ip", "addr", "add", "10.66.0.9/24", "dev", "eth0")
	in(t, filepath.Base(foreignEth0), "ip", "link", "set", "eth0", "up")
	in(t, filepath.Base(foreignEth0), "ip", "route", "add", "default", "via", "10.66.0.1")
	in(t, filepath.Base(foreignRoute), "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "other0")
	in(t, filepath.Base(foreignRoute), "ip", "addr", "add", "10.66.1.9/24", "dev", "uplink")
	in(t, filepath.Base(foreignRoute), "ip", "link", "set", "uplink", "up")
	in(t, filepath.Base(foreignRoute), "ip", "route", "add", "default", "via", "10.66.1.1")

	before := map[string]string{}
	for _, ns := range []string{e.host, filepath.Base(foreignEth0), filepath.Base(foreignRoute)} {
		before[ns] = snapshotNetns(t, ns)
	}
	for i, tc := range []struct {
		path, want string
	}{
		{hostPath, "host's network namespace"},
		{name("to-host"), "host's network namespace"},
		{alias, "host's network namespace"},
		{"/proc/1/ns/net", "not under"},
		{"/proc/self/ns/net", "not under"},
		{name("to-init"), "netns"},
		{name("to-init-rel"), "netns"},
		{dir + "/../../proc/1/ns/net", "not under"},
		{"run/netns/x", "not an absolute path"},
		{plain, "not a network namespace"},
		{filepath.Join(dir, e.prefix+"c9"), "reserved for the agent's managed sandboxes"},
		{foreignEth0, "did not create"},
		{foreignRoute, "did not create"},
	} {
		p := port("vref"+e.id[:4], "r"+string(rune('a'+i)), "10.66.0.2", "02:00:00:00:00:66")
		p.Netns, p.Sandbox = tc.path, ""
		d, err := e.m.Ensure(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("netns %q: Ensure = %v, %v; want an error saying %q", tc.path, d, err, tc.want)
		}
		if _, cerr := e.m.Check(p); cerr == nil {
			t.Errorf("netns %q: Check found nothing wrong", tc.path)
		}
	}
	for ns, was := range before {
		if now := snapshotNetns(t, ns); now != was {
			t.Errorf("netns %s changed:\nbefore:\n%s\nafter:\n%s", ns, was, now)
		}
	}
	if ok, _ := isNetns(filepath.Join(dir, e.prefix+"c9")); ok {
		t.Errorf("a managed sandbox was created for a refused path")
	}
}

// Two containers naming one namespace (by one path or two): the first gets
// it, the second fails and changes nothing; a symlink to a namespace of
// its own under the directory is fine.
func TestSharedUserNetnsRefused(t *testing.T) {
	e := newEnv(t)
	ns := filepath.Join(DefaultNetnsDir, "sylt-"+e.id+"-shared")
	if err := createNamedNetns(ns); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(DefaultNetnsDir, "sylt-"+e.id+"-shared-link")
	if err := os.Symlink(filepath.Base(ns), link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	first := port("vsh1"+e.id[:4], "s1", "10.77.0.11", "02:00:00:00:00:11")
	first.Netns, first.Sandbox = link, ""
	mustEnsure(t, e.m, first)
	before := snapshotNetns(t, filepath.Base(ns))
	for _, path := range []string{ns, link} {
		second := port("vsh2"+e.id[:4], "s2", "10.77.0.12", "02:00:00:00:00:12")
		second.Netns, second.Sandbox = path, ""
		_, err := e.m.Ensure(second)
		if err == nil || !strings.Contains(err.Error(), "another switchyard port (id-s1)") {
			t.Errorf("second container in %s: %v, want refused naming the first", path, err)
		}
	}
	if now := snapshotNetns(t, filepath.Base(ns)); now != before {
		t.Errorf("the shared netns changed:\nbefore:\n%s\nafter:\n%s", before, now)
	}
	if d, err := e.m.Check(first); err != nil || len(d) != 0 {
		t.Errorf("first container after the refusal: %v %v", d, err)
	}
	if out := in(t, filepath.Base(ns), "ip", "-d", "link", "show", "dev", "eth0"); !strings.Contains(out, "alias switchyard:id-s1") {
		t.Errorf("eth0 is not labelled as the agent's: %s", out)
	}
	if out := in(t, filepath.Base(ns), "ip", "route", "show", "default"); !strings.Contains(out, "proto 83") {
		t.Errorf("the default route does not carry the agent's protocol: %s", out)
	}
}
