package nodes_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
)

// call sends an admin request to a test controller.
func call(t *testing.T, ctl *testenv.Controller, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, ctl.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := testenv.Client(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// Through the API: a report of a revision never sent is a 400 naming
// appliedRevision and changes nothing; one the controller sent is taken;
// the node layer's health shows in /readyz and /metrics.
func TestStatusRevisionOverHTTP(t *testing.T) {
	ctl := testenv.Start(t, testenv.DatabaseURL(t), nil)
	if code, b := call(t, ctl, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}); code != 201 {
		t.Fatalf("create host: %d %s", code, b)
	}
	code, b := call(t, ctl, "GET", "/api/v1/nodes/h1/program?timeout=60s", nil)
	var up openapi.ProgramUpdate
	if code != 200 || json.Unmarshal(b, &up) != nil || up.Program == nil {
		t.Fatalf("program: %d %s", code, b)
	}
	forged := openapi.NodeStatus{AppliedRevision: up.Revision + 1_000_000, Digest: up.Program.Digest, Ports: []openapi.PortStatus{}}
	code, b = call(t, ctl, "POST", "/api/v1/nodes/h1/status", forged)
	var p map[string]any
	if code != 400 || json.Unmarshal(b, &p) != nil || p["field"] != "appliedRevision" {
		t.Fatalf("forged report: %d %s", code, b)
	}
	var h openapi.Host
	if _, b := call(t, ctl, "GET", "/api/v1/hosts/h1", nil); json.Unmarshal(b, &h) != nil || h.AppliedRevision != 0 || h.LastSeen != nil {
		t.Fatalf("host after a refused report: %s", b)
	}
	good := openapi.NodeStatus{AppliedRevision: up.Revision, Digest: up.Program.Digest, Ports: []openapi.PortStatus{}}
	if code, b := call(t, ctl, "POST", "/api/v1/nodes/h1/status", good); code != 204 {
		t.Fatalf("report: %d %s", code, b)
	}
	if code, b := call(t, ctl, "GET", "/readyz", nil); code != 200 {
		t.Fatalf("readyz: %d %s", code, b)
	}
	_, b = call(t, ctl, "GET", "/metrics", nil)
	for _, want := range []string{"switchyard_nodes_compiler_diverged 0", `switchyard_nodes_compiler_reloads_total{reason="start"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
