package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/switchyard/switchyard/node/internal/cniproto"
)

// fakeAgent answers every request on a socket with answer(req), and keeps
// the requests.
type fakeAgent struct {
	sock   string
	answer func(cniproto.Request) cniproto.Response
	mu     sync.Mutex
	got    []cniproto.Request
}

func newFakeAgent(t *testing.T, answer func(cniproto.Request) cniproto.Response) *fakeAgent {
	t.Helper()
	a := &fakeAgent{sock: filepath.Join(t.TempDir(), "cni.sock"), answer: answer}
	ln, err := net.Listen("unix", a.sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			req, err := cniproto.ReadRequest(conn)
			if err == nil {
				a.mu.Lock()
				a.got = append(a.got, req)
				a.mu.Unlock()
				_ = cniproto.WriteResponse(conn, a.answer(req))
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return a
}

func (a *fakeAgent) last() cniproto.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[len(a.got)-1]
}

var okResult = &cniproto.Result{Container: "abc", Interface: "eth0", MAC: "02:00:0a:0a:00:02", MTU: 1400,
	Sandbox: "/run/netns/x", Address: "10.10.0.2/24", Gateway: "10.10.0.1", Nameservers: []string{"10.10.0.1"},
	Search: []string{"blue.switchyard.local"}}

func conf(sock string, extra string) []byte {
	return []byte(`{"cniVersion":"1.1.0","name":"sy-blue","type":"switchyard-cni","network":"blue","labels":{"app":"web"},"socket":"` +
		sock + `"` + extra + `}`)
}

func args(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "abc", Netns: "/run/netns/x", IfName: "eth0", StdinData: stdin,
		Args: "IgnoreUnknown=1;K8S_POD_NAME=web-0"}
}

func noEnv(string) string { return "" }

func wantCNIError(t *testing.T, err error, code uint, substr string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T), want a CNI error %d", err, err, code)
	}
	if te.Code != code || !strings.Contains(te.Error(), substr) {
		t.Fatalf("error %d %q, want %d with %q", te.Code, te.Error(), code, substr)
	}
}

func TestEveryVerbIsOneRoundTrip(t *testing.T) {
	a := newFakeAgent(t, func(r cniproto.Request) cniproto.Response {
		if r.Command == cniproto.Add || r.Command == cniproto.Check {
			return cniproto.Response{Result: okResult}
		}
		return cniproto.Response{}
	})
	stdin := conf(a.sock, `,"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"ips":["10.10.0.9/24"]},
		"cni.dev/valid-attachments":[{"containerID":"abc","ifname":"eth0"}]`)
	for i, verb := range []string{cniproto.Add, cniproto.Check, cniproto.Del, cniproto.Status, cniproto.GC} {
		_, res, err := call(verb, args(stdin), noEnv)
		if err != nil {
			t.Fatalf("%s: %v", verb, err)
		}
		if len(a.got) != i+1 {
			t.Fatalf("%s: %d requests, want %d", verb, len(a.got), i+1)
		}
		r := a.last()
		if r.Command != verb || r.ContainerID != "abc" || r.Netns != "/run/netns/x" || r.IfName != "eth0" ||
			r.Network != "blue" || r.Config != "sy-blue" || r.Labels["app"] != "web" || r.Args["K8S_POD_NAME"] != "web-0" ||
			len(r.IPs) != 1 || r.IPs[0] != "10.10.0.9/24" || len(r.PortMappings) != 1 || r.PortMappings[0].HostPort != 8080 ||
			len(r.ValidAttachments) != 1 || r.ValidAttachments[0].ContainerID != "abc" {
			t.Fatalf("%s: request %+v", verb, r)
		}
		if verb == cniproto.Add && res.Result == nil {
			t.Fatalf("%s: result %+v", verb, res.Result)
		}
	}
}

func TestResult(t *testing.T) {
	r, err := toCurrent(&NetConf{}, okResult)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	for _, want := range []string{`"interfaces":[{"mac":"02:00:0a:0a:00:02","mtu":1400,"name":"eth0","sandbox":"/run/netns/x"}]`,
		`"ips":[{"address":"10.10.0.2/24","gateway":"10.10.0.1","interface":0}]`,
		`"routes":[{"dst":"0.0.0.0/0","gw":"10.10.0.1"}]`,
		`"dns":{"nameservers":["10.10.0.1"],"search":["blue.switchyard.local"]}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("result %s lacks %s", b, want)
		}
	}
	if _, err := toCurrent(&NetConf{}, &cniproto.Result{Address: "bogus"}); err == nil {
		t.Error("bad address accepted")
	}
}

func TestErrors(t *testing.T) {
	a := newFakeAgent(t, func(r cniproto.Request) cniproto.Response {
		return cniproto.Response{Error: &cniproto.Error{Code: types.ErrTryAgainLater, Msg: "the Switchyard controller is unreachable: try again later", Details: "x"}}
	})
	_, _, err := call(cniproto.Add, args(conf(a.sock, "")), noEnv)
	wantCNIError(t, err, types.ErrTryAgainLater, "try again later")

	// No agent: 50, naming the socket.
	gone := filepath.Join(t.TempDir(), "nothing.sock")
	_, _, err = call(cniproto.Status, args(conf(gone, "")), noEnv)
	wantCNIError(t, err, types.ErrPluginNotAvailable, gone)

	// A silent agent: 11 once the config's timeout passes.
	hang := make(chan struct{})
	defer close(hang)
	slow := newFakeAgent(t, func(cniproto.Request) cniproto.Response { <-hang; return cniproto.Response{} })
	_, _, err = call(cniproto.Add, args(conf(slow.sock, `,"timeout":"100ms"`)), noEnv)
	wantCNIError(t, err, types.ErrTryAgainLater, "did not answer in time")

	// An ADD answered without a result.
	empty := newFakeAgent(t, func(cniproto.Request) cniproto.Response { return cniproto.Response{} })
	_, _, err = call(cniproto.Add, args(conf(empty.sock, "")), noEnv)
	wantCNIError(t, err, types.ErrInternal, "no result")

	for _, c := range []struct {
		stdin string
		args  string
		code  uint
		msg   string
	}{
		{`{not json`, "", types.ErrDecodingFailure, "decode the network config"},
		{`{"cniVersion":"1.1.0","name":"n","type":"switchyard-cni"}`, "", types.ErrInvalidNetworkConfig, `no "network"`},
		{string(conf(a.sock, `,"timeout":"soon"`)), "", types.ErrInvalidNetworkConfig, "timeout"},
		{string(conf(a.sock, "")), "K8S_POD_NAME", types.ErrInvalidEnvironmentVariables, "CNI_ARGS"},
	} {
		ca := args([]byte(c.stdin))
		ca.Args = c.args
		_, _, err := call(cniproto.Add, ca, noEnv)
		wantCNIError(t, err, c.code, c.msg)
	}
}

func TestSocketChoice(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == cniproto.EnvSocket {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		conf, env, want string
	}{
		{"/a.sock", "/b.sock", "/a.sock"},
		{"", "/b.sock", "/b.sock"},
		{"", "", cniproto.DefaultSocket},
	} {
		if got := socket(&NetConf{Socket: c.conf}, env(c.env)); got != c.want {
			t.Errorf("conf %q env %q: %q, want %q", c.conf, c.env, got, c.want)
		}
	}
}

func TestCheckComparesPrevResult(t *testing.T) {
	prev := `,"prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}],"ips":[{"interface":0,"address":"10.10.0.3/24"}]}`
	c, err := parseConf(conf("/s", prev))
	if err != nil {
		t.Fatal(err)
	}
	wantCNIError(t, checkPrev(c, okResult), types.ErrInternal, "address changed")
	c, _ = parseConf(conf("/s", strings.Replace(prev, "10.10.0.3", "10.10.0.2", 1)))
	if err := checkPrev(c, okResult); err != nil {
		t.Fatal(err)
	}
}

// The built plugin, run as a runtime runs it: VERSION, ADD printing the
// result in the config's version, and an error as JSON on stdout with
// exit status 1.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "switchyard-cni")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	a := newFakeAgent(t, func(r cniproto.Request) cniproto.Response { return cniproto.Response{Result: okResult} })
	run := func(command string, stdin []byte) (string, error) {
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=abc", "CNI_NETNS=/run/netns/x", "CNI_IFNAME=eth0",
			"CNI_PATH=/opt/cni/bin", "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		return string(out), err
	}
	out, err := run("VERSION", []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil || !strings.Contains(out, `"supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]`) {
		t.Fatalf("VERSION: %v %s", err, out)
	}
	out, err = run("ADD", conf(a.sock, ""))
	if err != nil || !strings.Contains(out, `"cniVersion": "1.1.0"`) || !strings.Contains(out, `"address": "10.10.0.2/24"`) {
		t.Fatalf("ADD: %v %s", err, out)
	}
	out, err = run("ADD", bytes.Replace(conf(a.sock, ""), []byte("1.1.0"), []byte("0.4.0"), 1))
	if err != nil || !strings.Contains(out, `"cniVersion": "0.4.0"`) {
		t.Fatalf("ADD 0.4.0: %v %s", err, out)
	}
	out, err = run("STATUS", conf(filepath.Join(t.TempDir(), "none.sock"), ""))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, `"code": 50`) {
		t.Fatalf("STATUS without agent: %v %s", err, out)
	}
}
