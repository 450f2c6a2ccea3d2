package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestExpose serves HTTP on loopback and reaches it from inside a host over
// the underlay, at the lab's gateway, through the relay; then switches the
// relay to another backend.
func TestExpose(t *testing.T) {
	l := New(t, Options{Hosts: 1})
	serve := func(name string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	a, b := serve("a"), serve("b")
	r := l.Expose(t, a)
	_, port, _ := net.SplitHostPort(a)
	if want := net.JoinHostPort(l.Gateway().String(), port); r.Addr() != want {
		t.Errorf("relay listens on %s, want %s", r.Addr(), want)
	}
	get := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := RunIn(ctx, l.Hosts[0].Netns, "curl", "-sS", "--max-time", "5", "http://"+r.Addr()+"/")
		if err != nil {
			t.Fatalf("from h1: %v", err)
		}
		return strings.TrimSpace(out)
	}
	if got := get(); got != "a" {
		t.Errorf("got %q, want a", got)
	}
	r.SetBackend(b)
	if got := get(); got != "b" {
		t.Errorf("after SetBackend: got %q, want b", got)
	}
	// A second Expose on the same lab reuses the gateway address.
	r2 := l.Expose(t, b)
	if !strings.HasPrefix(r2.Addr(), l.Gateway().String()+":") {
		t.Errorf("second relay on %s", r2.Addr())
	}
}

// TestExposeManagement: with Options.Management the relay serves on the
// management network, which each host reaches by its own mg0 link (not
// the underlay: the route to it leaves by mg0).
func TestExposeManagement(t *testing.T) {
	l := New(t, Options{Hosts: 2, Management: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "m") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r := l.Expose(t, ln.Addr().String())
	if !strings.HasPrefix(r.Addr(), MgmtSubnet.Addr().Next().String()+":") {
		t.Fatalf("relay listens on %s, want the management gateway", r.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, h := range l.Hosts {
		route, err := RunIn(ctx, h.Netns, "ip", "-4", "route", "get", MgmtSubnet.Addr().Next().String())
		if err != nil || !strings.Contains(route, "dev mg0") {
			t.Errorf("%s: route to the management gateway %q (%v), want dev mg0", h.Name, route, err)
		}
		out, err := RunIn(ctx, h.Netns, "curl", "-sS", "--max-time", "5", "http://"+r.Addr()+"/")
		if err != nil || strings.TrimSpace(out) != "m" {
			t.Errorf("%s: got %q (%v), want m", h.Name, out, err)
		}
	}
}
