package ovs

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// fakeUnixctl answers one JSON-RPC request per connection on a unix socket
// the way ovs-vswitchd's unixctl server does, and records the requests.
func fakeUnixctl(t *testing.T, answer func(method string, params []string) (any, any)) (string, chan []string) {
	sock := filepath.Join(t.TempDir(), "vswitchd.ctl")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var req struct {
				Method string   `json:"method"`
				Params []string `json:"params"`
			}
			if json.NewDecoder(c).Decode(&req) == nil {
				got <- append([]string{req.Method}, req.Params...)
				res, e := answer(req.Method, req.Params)
				json.NewEncoder(c).Encode(map[string]any{"result": res, "error": e, "id": 0})
			}
			c.Close()
		}
	}()
	return sock, got
}

func TestTraceOverUnixctl(t *testing.T) {
	sock, got := fakeUnixctl(t, func(method string, params []string) (any, any) {
		if len(params) > 1 && strings.Contains(params[1], "bad") {
			return nil, "Bad openflow flow syntax"
		}
		return "Flow: ...\nDatapath actions: 3\n", nil
	})
	a := &Switch{opts: Options{VSwitchdCtl: sock}}
	out, err := a.Trace(context.Background(), "br-int", "in_port=p,tcp", []string{"trk,new", "trk,new,dnat"})
	if err != nil || out != "Flow: ...\nDatapath actions: 3\n" {
		t.Fatalf("trace: %q %v", out, err)
	}
	if req := <-got; strings.Join(req, " ") != "ofproto/trace br-int in_port=p,tcp --ct-next trk,new --ct-next trk,new,dnat" {
		t.Fatalf("request %v", req)
	}
	if _, err := a.Trace(context.Background(), "br-int", "bad", nil); err == nil || !strings.Contains(err.Error(), "Bad openflow") {
		t.Fatalf("a refused flow: %v", err)
	}
	if err := unixctlArgs(context.Background(), sock, "revalidator/purge"); err != nil {
		t.Fatalf("a call without a result: %v", err)
	}
}
