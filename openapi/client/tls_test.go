package client

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://10.0.0.1:8443", false, true},
		{"https://controller.example:8443", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://10.0.0.1:8080", false, false},
		{"http://controller.example:8080", false, false},
		{"http://10.0.0.1:8080", true, true},
		{"ftp://10.0.0.1", true, false},
		{"10.0.0.1:8080", true, false},
		{"", false, false},
	} {
		err := Security{InsecureHTTP: c.insecure}.CheckURL(c.url)
		if (err == nil) != c.ok {
			t.Errorf("CheckURL(%q, insecure=%v) = %v, want ok=%v", c.url, c.insecure, err, c.ok)
		}
		if err != nil && c.url == "http://10.0.0.1:8080" && !strings.Contains(err.Error(), EnvInsecureHTTP+"=1") {
			t.Errorf("refusal does not say how to allow it: %v", err)
		}
	}
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "1": true, "TRUE": true} {
		if got, err := ParseInsecureHTTP(v); err != nil || got != want {
			t.Errorf("ParseInsecureHTTP(%q) = %v %v", v, got, err)
		}
	}
	if _, err := ParseInsecureHTTP("yes please"); err == nil {
		t.Error("ParseInsecureHTTP accepted a value it does not know")
	}
}

// A client verifies an HTTPS server with the CA file it is given, for the
// name it is given; without the CA (system roots) or with the wrong name it
// is refused before sending its token.
func TestNewSecureVerifies(t *testing.T) {
	var sawToken bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken = r.Header.Get("Authorization") != ""
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	// httptest's certificate is its own CA, valid for 127.0.0.1 and example.com.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	call := func(s Security) error {
		sawToken = false
		c, err := NewSecure(srv.URL, "secret", s)
		if err != nil {
			return err
		}
		_, err = c.Do(context.Background(), "GET", "/", nil, nil)
		return err
	}
	if err := call(Security{CAFile: caFile}); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	if err := call(Security{CAFile: caFile, ServerName: "example.com"}); err != nil {
		t.Fatalf("with the CA and a server name the certificate has: %v", err)
	}
	for name, s := range map[string]Security{
		"system roots":      {},
		"wrong server name": {CAFile: caFile, ServerName: "controller.example"},
	} {
		if err := call(s); err == nil || !strings.Contains(err.Error(), "certificate") || sawToken {
			t.Errorf("%s: %v (token sent: %v), want a certificate error before any request", name, err, sawToken)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	_ = os.WriteFile(empty, []byte("not a certificate"), 0o600)
	for _, f := range []string{empty, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := NewSecure(srv.URL, "secret", Security{CAFile: f}); err == nil || !strings.Contains(err.Error(), EnvCAFile) {
			t.Errorf("CA file %s: %v, want an error naming %s", f, err, EnvCAFile)
		}
	}
}
