// Package security tests Switchyard's transport security end to end: the
// controller binary serving HTTPS with a private CA's certificate, and real
// node agents in the lab that verify it (or are refused). It drives the
// binaries by their environment, as an operator would; it must not reach
// into their internals.
package security

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/cluster"
	"github.com/switchyard/switchyard/tests/lab"
	"github.com/switchyard/switchyard/tests/pgtest"
)

func TestMain(m *testing.M) { cluster.Main(m) }

const adminToken = "sy_security_admin_token"

// TestTLS: the controller serves HTTPS with a certificate of a private CA.
// A real agent given that CA registers over HTTPS (through the lab's relay,
// at the underlay address the certificate names) and its host turns Ready;
// an agent given another CA is refused and says why, never registering; an
// agent given plain http:// to that non-loopback address does not start
// unless SWITCHYARD_INSECURE_HTTP=1; plain HTTP to the HTTPS port gets no
// API answer.
func TestTLS(t *testing.T) {
	bin := cluster.Build(t)
	db := pgtest.DatabaseURL(t)
	l := lab.New(t, lab.Options{Hosts: 2})
	dir := t.TempDir()
	ca, other := newCA(t, "switchyard test CA"), newCA(t, "someone else's CA")
	caFile, otherFile := ca.write(t, dir, "ca"), other.write(t, dir, "other-ca")
	certFile, keyFile := ca.issue(t, dir, "controller", net.ParseIP("127.0.0.1"), net.IP(l.Gateway().AsSlice()))

	port := cluster.FreePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	ctrl := l.Start(t, lab.ProcSpec{Name: "controller", Path: bin.Controller, Env: []string{
		"SWITCHYARD_DATABASE_URL=" + db, "SWITCHYARD_LISTEN=" + listen, "SWITCHYARD_ADMIN_TOKEN=" + adminToken,
		"SWITCHYARD_TLS_CERT=" + certFile, "SWITCHYARD_TLS_KEY=" + keyFile, "SWITCHYARD_HEARTBEAT_TIMEOUT=5s",
	}})
	api, err := client.NewSecure("https://"+listen, adminToken, client.Security{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	cluster.Eventually(t, 30*time.Second, func() error {
		if ctrl.Exited() {
			t.Fatalf("controller exited:\n%s", ctrl.Log())
		}
		_, err := api.Do(context.Background(), "GET", "/api/v1/revision", nil, nil)
		return err
	})
	if !strings.Contains(ctrl.Log(), "url=https://"+listen) {
		t.Errorf("the controller does not say it serves HTTPS:\n%s", ctrl.Log())
	}
	plain := &client.Client{Base: "http://" + listen, Token: adminToken, HTTP: api.HTTP}
	if code, err := plain.Do(context.Background(), "GET", "/api/v1/revision", nil, nil); code != 400 || err == nil {
		t.Errorf("plain HTTP to the HTTPS port: %d %v, want Go's 400 refusal", code, err)
	}

	relay := l.Expose(t, listen)
	tokens := map[string]string{}
	for _, h := range l.Hosts {
		var tok openapi.Token
		if _, err := api.Do(context.Background(), "POST", "/api/v1/tokens",
			map[string]any{"name": "node-" + h.Name, "role": "node", "host": h.Name}, &tok); err != nil {
			t.Fatal(err)
		}
		tokens[h.Name] = tok.Secret
	}
	agent := func(host, url string, env ...string) *lab.Proc {
		h := l.Host(host)
		return l.Start(t, lab.ProcSpec{Name: "agent-" + host, Netns: h.Netns, Path: bin.Agent,
			Env: append(h.AgentEnv(url, tokens[host]), env...)})
	}
	hostStatus := func(host string) (int, openapi.Host) {
		var h openapi.Host
		code, _ := api.Do(context.Background(), "GET", "/api/v1/hosts/"+host, nil, &h)
		return code, h
	}

	t.Run("agent verifies the controller", func(t *testing.T) {
		a := agent("h1", "https://"+relay.Addr(), "SWITCHYARD_CA_FILE="+caFile, "SWITCHYARD_INSECURE_HTTP=0")
		cluster.Eventually(t, 30*time.Second, func() error {
			if a.Exited() {
				t.Fatalf("agent exited:\n%s", a.Log())
			}
			if code, h := hostStatus("h1"); code != 200 || h.Status != openapi.HostReady {
				return fmt.Errorf("h1: %d %s", code, h.Status)
			}
			return nil
		})
	})
	t.Run("wrong CA is refused", func(t *testing.T) {
		a := agent("h2", "https://"+relay.Addr(), "SWITCHYARD_CA_FILE="+otherFile)
		defer a.Stop()
		waitLog(t, a, "not trusted", "certificate signed by unknown authority", "SWITCHYARD_CA_FILE", "retrying")
		if code, _ := hostStatus("h2"); code != 404 {
			t.Errorf("h2 registered through an unverified controller: %d", code)
		}
		if a.Exited() {
			t.Errorf("the agent gave up instead of retrying:\n%s", a.Log())
		}
	})
	t.Run("plain HTTP to another host only when asked for", func(t *testing.T) {
		a := agent("h2", "http://"+relay.Addr(), "SWITCHYARD_INSECURE_HTTP=0")
		if err := a.Wait(10 * time.Second); err == nil || !strings.Contains(a.Log(), "SWITCHYARD_INSECURE_HTTP=1") {
			t.Errorf("agent with http:// to %s: exit %v, want a refusal naming SWITCHYARD_INSECURE_HTTP:\n%s", relay.Addr(), err, a.Log())
		}
	})
}

// ca is a private certificate authority for one test.
type ca struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert: cert, der: der, key: key}
}

// write stores the CA's certificate as <dir>/<name>.pem.
func (c *ca) write(t *testing.T, dir, name string) string {
	t.Helper()
	return writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", c.der)
}

// issue signs a server certificate for ips and localhost, and writes it
// and its key as <dir>/<name>.pem and <dir>/<name>-key.pem.
func (c *ca) issue(t *testing.T, dir, name string, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der),
		writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", kder)
}

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitLog waits until p's log says every one of want (case-insensitive).
func waitLog(t *testing.T, p *lab.Proc, want ...string) {
	t.Helper()
	cluster.Eventually(t, 20*time.Second, func() error {
		log := strings.ToLower(p.Log())
		for _, w := range want {
			if !strings.Contains(log, strings.ToLower(w)) {
				return fmt.Errorf("log %s lacks %q:\n%s", p.LogPath(), w, p.Log())
			}
		}
		return nil
	})
}
