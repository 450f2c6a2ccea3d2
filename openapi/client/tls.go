package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Settings every client of the controller reads (the node agent, its CNI
// server, syctl): see docs/security.md.
const (
	// EnvCAFile names a PEM file of the CA certificates that sign the
	// controller's certificate (empty: the system's roots).
	EnvCAFile = "SWITCHYARD_CA_FILE"
	// EnvTLSServerName is the name verified in the controller's
	// certificate instead of the URL's host (a controller reached through
	// a relay or by address).
	EnvTLSServerName = "SWITCHYARD_TLS_SERVER_NAME"
	// EnvInsecureHTTP=1 allows plain http:// to an address that is not
	// loopback (bearer tokens then cross the network in clear).
	EnvInsecureHTTP = "SWITCHYARD_INSECURE_HTTP"
)

// Security is how a client reaches the controller: an https:// URL is
// verified against CAFile (the system's roots when empty), an http:// URL is
// plain, and only to a loopback address unless InsecureHTTP.
type Security struct {
	CAFile       string
	ServerName   string
	InsecureHTTP bool
}

// SecurityFromEnv reads the Env* settings; getenv is os.Getenv outside
// tests.
func SecurityFromEnv(getenv func(string) string) (Security, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := Security{CAFile: getenv(EnvCAFile), ServerName: getenv(EnvTLSServerName)}
	var err error
	s.InsecureHTTP, err = ParseInsecureHTTP(getenv(EnvInsecureHTTP))
	return s, err
}

// ParseInsecureHTTP reads EnvInsecureHTTP's value: 1 or true allow plain
// HTTP to other hosts; empty, 0 or false do not.
func ParseInsecureHTTP(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("%s %q: want 1 (allow plain HTTP to other hosts) or 0", EnvInsecureHTTP, v)
}

// IsLoopback tells whether host (a name or an address, without port)
// is this machine's loopback: localhost or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// CheckURL refuses a base URL that is neither https:// nor http:// to a
// loopback address, unless InsecureHTTP allows plain HTTP anywhere.
func (s Security) CheckURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return fmt.Errorf("controller URL %q: want https://HOST:PORT (or http:// on loopback)", base)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) || s.InsecureHTTP {
			return nil
		}
		return fmt.Errorf("controller URL %q: plain HTTP to another host sends the token in clear: use https:// "+
			"(with %s naming the CA when it is private), or set %s=1 to allow it", base, EnvCAFile, EnvInsecureHTTP)
	}
	return fmt.Errorf("controller URL %q: the scheme must be https or http", base)
}

// TLSConfig is the client side of TLS: TLS 1.2 or later, the controller's
// certificate verified against CAFile (or the system's roots) for
// ServerName (or the URL's host).
func (s Security) TLSConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvCAFile, err)
	}
	c.RootCAs = x509.NewCertPool()
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", EnvCAFile, s.CAFile)
	}
	return c, nil
}

// NewSecure is New for a URL that CheckURL accepts, verifying an https://
// controller as TLSConfig says.
func NewSecure(base, token string, s Security) (*Client, error) {
	if err := s.CheckURL(base); err != nil {
		return nil, err
	}
	c := New(base, token)
	tc, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr, ok := c.HTTP.Transport.(*http.Transport)
	if !ok {
		return nil, errors.New("client: unexpected transport")
	}
	tr.TLSClientConfig = tc
	return c, nil
}
