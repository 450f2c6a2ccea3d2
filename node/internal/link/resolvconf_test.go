package link

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	m := &Manager{opts: Options{ResolvConfDir: dir, NetnsDir: "/run/netns", SandboxPrefix: "sy-"}}
	p := openapi.ContainerPort{Name: "v1", Container: "web", ID: "id1", Sandbox: "web.net1", Gateway: "10.1.0.1",
		DNSDomain: "switchyard.local", DNSSearch: "net1.switchyard.local switchyard.local"}
	path := filepath.Join(dir, "sy-web.net1", "resolv.conf")
	if d, err := m.ensureResolvConf(p, false); err != nil || len(d) != 1 {
		t.Fatalf("check before: %v %v", d, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a check wrote the file")
	}
	if _, err := m.ensureResolvConf(p, true); err != nil {
		t.Fatal(err)
	}
	want := "# written by switchyard: id1\nnameserver 10.1.0.1\nsearch net1.switchyard.local switchyard.local\noptions ndots:2\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Fatalf("resolv.conf:\n%s\nwant:\n%s", b, want)
	}
	if d, err := m.ensureResolvConf(p, false); err != nil || len(d) != 0 {
		t.Fatalf("check after: %v %v", d, err)
	}
	// A user's sandbox netns and a port without gateway get none.
	for _, q := range []openapi.ContainerPort{{Name: "v2", Netns: "/run/netns/x", Gateway: "10.1.0.1"}, {Name: "v3", Sandbox: "s3"}} {
		if d, err := m.ensureResolvConf(q, true); err != nil || len(d) != 0 {
			t.Fatalf("%s: %v %v", q.Name, d, err)
		}
	}
	if err := m.removeResolvConf("sy-web.net1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatal("directory left behind")
	}
	// A file the agent did not write is never replaced nor deleted.
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.WriteFile(path, []byte("nameserver 192.0.2.1\n"), 0o644)
	if _, err := m.ensureResolvConf(p, true); err == nil {
		t.Fatal("replaced a foreign resolv.conf")
	}
	if err := m.removeResolvConf("sy-web.net1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "nameserver 192.0.2.1\n" {
		t.Fatalf("foreign resolv.conf changed: %q", b)
	}
}

func TestDNSNetnsName(t *testing.T) {
	if n := DNSNetnsName("h1"); len(n) != len("sydns-")+12 || n[:6] != "sydns-" || n == DNSNetnsName("h2") {
		t.Fatalf("DNSNetnsName(h1) = %q", n)
	}
}
