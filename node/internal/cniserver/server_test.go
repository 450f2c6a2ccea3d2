package cniserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/switchyard/switchyard/node/internal/cniproto"
	"github.com/switchyard/switchyard/openapi"
)

func TestAddAnswersTheRealizedAttachment(t *testing.T) {
	e := newEnv(t, "")
	res := e.call(addReq("abc123"))
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	want := cniproto.Result{Container: "abc123", Interface: "eth0", MAC: "02:00:0a:0a:00:02", MTU: 1400,
		Sandbox: "/run/netns/abc123", Address: "10.10.0.2/24", Gateway: "10.10.0.1",
		Nameservers: []string{"10.10.0.1"}, Search: []string{"blue.switchyard.local"}}
	if got := *res.Result; got.Address != want.Address || got.MAC != want.MAC || got.Sandbox != want.Sandbox ||
		got.Gateway != want.Gateway || got.Container != want.Container || len(got.Nameservers) != 1 {
		t.Fatalf("result %+v, want %+v", got, want)
	}
	c := e.ctl.containers["abc123"]
	if c.Host != "h1" || c.Netns != "/run/netns/abc123" || c.Labels["app"] != "web" ||
		c.Labels[LabelID] != "abc123" || c.Labels[LabelConfig] != "sy-blue" {
		t.Fatalf("created %+v", c)
	}
	// The same ADD again fails (the spec: the interface exists), and
	// leaves the container as it was.
	wantCode(t, e.call(addReq("abc123")), cniproto.ErrConflict, "already attached")
	if !e.has("abc123") {
		t.Fatal("the attached container went")
	}
}

func TestAddStaticIPAndPorts(t *testing.T) {
	e := newEnv(t, "")
	req := addReq("c1")
	req.IPs = []string{"10.10.0.50/24"}
	req.PortMappings = []cniproto.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	res := e.call(req)
	if res.Error != nil || res.Result.Address != "10.10.0.50/24" {
		t.Fatalf("%+v %+v", res.Error, res.Result)
	}
	c := e.ctl.containers["c1"]
	if len(c.Publish) != 1 || c.Publish[0] != (openapi.PublishedPort{HostPort: 8080, Port: 80, Protocol: "TCP"}) {
		t.Fatalf("publish %+v", c.Publish)
	}
	req = addReq("c2")
	req.IPs = []string{"fe80::1"}
	wantCode(t, e.call(req), types.ErrInvalidNetworkConfig, "no IPv4 address")
	// A static address another container holds is a conflict.
	req.IPs = []string{"10.10.0.50"}
	wantCode(t, e.call(req), cniproto.ErrConflict, "address taken")
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		req  cniproto.Request
		want string
	}{
		{cniproto.Request{ContainerID: "ABC_def.1"}, "abc-def-1"},
		{cniproto.Request{ContainerID: strings.Repeat("a", 64)}, strings.Repeat("a", 63)},
		{cniproto.Request{ContainerID: "x", Args: map[string]string{"K8S_POD_NAME": "Web-0"}}, "web-0"},
	} {
		if got, err := ContainerName(c.req); err != nil || got != c.want {
			t.Errorf("%+v: %q %v, want %q", c.req, got, err, c.want)
		}
	}
	if _, err := ContainerName(cniproto.Request{ContainerID: "___"}); err == nil {
		t.Error("no name from ___")
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, "")
	r := addReq("x")
	r.IfName = "net1"
	wantCode(t, e.call(r), types.ErrInvalidEnvironmentVariables, "CNI_IFNAME")
	r = addReq("x")
	r.Netns = ""
	wantCode(t, e.call(r), types.ErrInvalidEnvironmentVariables, "CNI_NETNS")
	r = addReq("x")
	r.Network = ""
	wantCode(t, e.call(r), types.ErrInvalidNetworkConfig, "network")
	wantCode(t, e.call(cniproto.Request{Command: "FROB"}), types.ErrInvalidEnvironmentVariables, "unknown CNI command")
	// The controller refusing the container (no such network, say).
	e.ctl.failCreate = 404
	wantCode(t, e.call(addReq("x")), types.ErrInvalidNetworkConfig, "injected")
	e.ctl.failCreate = 403
	wantCode(t, e.call(addReq("x")), cniproto.ErrForbidden, "node token")
}

func TestAddWhileControllerDownIsTryAgainLater(t *testing.T) {
	e := newEnv(t, "")
	e.setDown(true)
	wantCode(t, e.call(addReq("x")), types.ErrTryAgainLater, "try again later")
	e.setDown(false)
	if res := e.call(addReq("x")); res.Error != nil {
		t.Fatal(res.Error)
	}
}

func TestAddNotRealizedInTime(t *testing.T) {
	e := newEnv(t, "")
	e.ctl.failCreate = 504
	wantCode(t, e.call(addReq("x")), types.ErrTryAgainLater, "not realized in time")
	e.ctl.failCreate = 502
	wantCode(t, e.call(addReq("x")), cniproto.ErrAttachFailed, "failed to attach")
}

func TestAddNameOfAnotherContainer(t *testing.T) {
	e := newEnv(t, "")
	e.ctl.containers["web"] = openapi.Container{Name: "web", Network: "blue", Host: "h2", IP: "10.10.0.9"}
	r := addReq("id1")
	r.Args = map[string]string{"K8S_POD_NAME": "web"}
	wantCode(t, e.call(r), cniproto.ErrConflict, "already has a container web on host h2")
	// And DEL of it leaves the other's container alone.
	if res := e.call(with(r, cniproto.Del)); res.Error != nil || !e.has("web") {
		t.Fatalf("DEL: %+v, container still there: %v", res.Error, e.has("web"))
	}
}

func TestDelIsIdempotent(t *testing.T) {
	e := newEnv(t, "")
	r := addReq("x")
	if res := e.call(r); res.Error != nil {
		t.Fatal(res.Error)
	}
	for i := 0; i < 2; i++ {
		if res := e.call(with(r, cniproto.Del)); res.Error != nil {
			t.Fatalf("DEL %d: %v", i+1, res.Error)
		}
	}
	if e.has("x") {
		t.Fatal("container left")
	}
	// A DEL without a netns (the runtime lost it) is fine too.
	r.Netns = ""
	if res := e.call(with(r, cniproto.Del)); res.Error != nil {
		t.Fatal(res.Error)
	}
}

func TestRestartedContainerGetsItsAddressBack(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	first := e.call(addReq("x")).Result
	e.call(addReq("y"))
	e.call(with(addReq("x"), cniproto.Del))
	e.call(addReq("z")) // takes the next free address, not x's
	// The agent restarts: a new server on the same state directory.
	e2 := newEnv(t, dir)
	e2.ctl.containers, e2.ctl.next = e.ctl.containers, e.ctl.next
	for id, p := range e.ctl.local.ports {
		e2.ctl.local.ports[id] = p
	}
	again := e2.call(addReq("x")).Result
	if again == nil || again.Address != first.Address {
		t.Fatalf("restarted x: %+v, had %s", again, first.Address)
	}
	// If its address went to another container meanwhile, it gets a new one.
	e2.call(with(addReq("x"), cniproto.Del))
	taker := addReq("w")
	taker.IPs = []string{strings.TrimSuffix(first.Address, "/24")}
	if res := e2.call(taker); res.Error != nil {
		t.Fatal(res.Error)
	}
	if res := e2.call(addReq("x")); res.Error != nil || res.Result.Address == first.Address {
		t.Fatalf("x while its address is taken: %+v %+v", res.Error, res.Result)
	}
}

func TestDelWhileControllerDownIsQueued(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	r := addReq("x")
	if res := e.call(r); res.Error != nil {
		t.Fatal(res.Error)
	}
	e.setDown(true)
	if res := e.call(with(r, cniproto.Del)); res.Error != nil {
		t.Fatalf("DEL with the controller down: %v", res.Error)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "state.json")); err != nil || !strings.Contains(string(b), `"Name":"x"`) {
		t.Fatalf("queued delete not saved: %s %v", b, err)
	}
	if !e.has("x") {
		t.Fatal("deleted while down?")
	}
	e.setDown(false)
	e.eventually("the queued delete reaches the controller", func() bool { return !e.has("x") })
	e.eventually("the queue empties", func() bool { return len(e.srv.state.pending()) == 0 })
}

func TestQueuedDeleteSparesTheReAddedContainer(t *testing.T) {
	e := newEnv(t, "")
	r := addReq("x")
	e.call(r)
	e.setDown(true)
	e.call(with(r, cniproto.Del))
	e.setDown(false)
	// The runtime adds the container again before the retry ran: ADD
	// drops the queued delete and re-creates it in its new namespace.
	r.Netns = "/run/netns/x2"
	if res := e.call(r); res.Error != nil {
		t.Fatal(res.Error)
	}
	if n := len(e.srv.state.pending()); n != 0 {
		t.Fatalf("%d deletes still queued", n)
	}
	if c := e.ctl.containers["x"]; c.Netns != "/run/netns/x2" {
		t.Fatalf("container %+v", c)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, "")
	r := addReq("x")
	wantCode(t, e.call(with(r, cniproto.Check)), types.ErrUnknownContainer, "unknown container")
	e.call(r)
	// The fake netns path does not exist: the interface check fails.
	wantCode(t, e.call(with(r, cniproto.Check)), cniproto.ErrAttachFailed, "no such network namespace")
	r.Netns = "/run/netns/other"
	wantCode(t, e.call(with(r, cniproto.Check)), cniproto.ErrAttachFailed, "attached to netns /run/netns/x")
	e.setDown(true)
	wantCode(t, e.call(with(r, cniproto.Check)), types.ErrTryAgainLater, "unreachable")
}

func TestStatus(t *testing.T) {
	e := newEnv(t, "")
	st := cniproto.Request{Command: cniproto.Status}
	if res := e.call(st); res.Error != nil {
		t.Fatal(res.Error)
	}
	e.setDown(true)
	wantCode(t, e.call(st), types.ErrPluginNotAvailable, "cannot reach the controller")
	e.setDown(false)
	e.ctl.local.ready = os.ErrDeadlineExceeded
	wantCode(t, e.call(st), types.ErrPluginNotAvailable, "not ready")
}

func TestGC(t *testing.T) {
	e := newEnv(t, "")
	for _, id := range []string{"keep", "stale1", "stale2"} {
		e.call(addReq(id))
	}
	other := addReq("otherconf")
	other.Config = "another"
	e.call(other)
	e.ctl.containers["manual"] = openapi.Container{Name: "manual", Network: "blue", Host: "h1", Labels: map[string]string{}}
	gc := cniproto.Request{Command: cniproto.GC, Config: "sy-blue", Network: "blue",
		ValidAttachments: []cniproto.Attachment{{ContainerID: "keep", IfName: "eth0"}}}
	if res := e.call(gc); res.Error != nil {
		t.Fatal(res.Error)
	}
	for name, want := range map[string]bool{"keep": true, "stale1": false, "stale2": false, "otherconf": true, "manual": true} {
		if e.has(name) != want {
			t.Errorf("after GC, %s there: %v, want %v", name, e.has(name), want)
		}
	}
	// A failed delete does not stop the others, and is reported.
	for _, id := range []string{"s3", "s4"} {
		e.call(addReq(id))
	}
	e.ctl.failDelete = map[string]int{"s3": 500}
	wantCode(t, e.call(gc), types.ErrInternal, "delete 1 stale containers (s3)")
	if !e.has("s3") || e.has("s4") {
		t.Fatalf("s3 %v s4 %v", e.has("s3"), e.has("s4"))
	}
	e.setDown(true)
	wantCode(t, e.call(gc), types.ErrTryAgainLater, "unreachable")
}

func TestSocketIsRootOnly(t *testing.T) {
	e := newEnv(t, "")
	fi, err := os.Stat(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(e.sock))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v", di.Mode().Perm())
	}
}

// After a missed DEL, the same runtime container added in a new namespace
// is re-created there, with the address it asks for.
func TestAddInANewNamespaceAfterAMissedDel(t *testing.T) {
	e := newEnv(t, "")
	r := addReq("x")
	r.IPs = []string{"10.10.0.60/24"}
	e.call(r)
	r.Netns = "/run/netns/x-new"
	res := e.call(r)
	if res.Error != nil || res.Result.Address != "10.10.0.60/24" || res.Result.Sandbox != "/run/netns/x-new" {
		t.Fatalf("%+v %+v", res.Error, res.Result)
	}
	if c := e.ctl.containers["x"]; c.Netns != "/run/netns/x-new" || c.IP != "10.10.0.60" {
		t.Fatalf("container %+v", c)
	}
}
