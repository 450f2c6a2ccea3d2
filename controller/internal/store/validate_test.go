package store

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

func TestAddressArithmetic(t *testing.T) {
	p := netip.MustParsePrefix("10.10.0.0/22")
	a := offsetAddr(p, 300)
	if a.String() != "10.10.1.44" || addrOffset(p, a) != 300 || size(p) != 1024 {
		t.Fatalf("offset 300 -> %s -> %d", a, addrOffset(p, a))
	}
	if m := macFor(netip.MustParseAddr("10.10.0.5")); m != "0a:58:0a:0a:00:05" {
		t.Fatalf("mac %s", m)
	}
}

func TestValidators(t *testing.T) {
	field := func(err error) string {
		pe, ok := problem.As(err)
		if !ok {
			t.Fatalf("not a problem: %v", err)
		}
		return pe.Field
	}
	if _, err := parseCIDR("cidr", "10.0.0.1/24"); field(err) != "cidr" {
		t.Error("host bits accepted")
	}
	if _, err := parseCIDR("cidr", "10.0.0.0/24"); err != nil {
		t.Error(err)
	}
	if err := checkName("name", "Web_1"); field(err) != "name" {
		t.Error("bad name accepted")
	}
	if err := checkName("name", "web-1"); err != nil {
		t.Error(err)
	}
	if err := checkLabels("labels", map[string]string{"app": "x y"}); field(err) != "labels" {
		t.Error("bad label value accepted")
	}
	if p, err := normProtocol("p", "udp", "TCP", "UDP"); err != nil || p != "UDP" {
		t.Errorf("protocol %q %v", p, err)
	}
	if err := checkNetnsPath("netns", "/run/netns/../x"); field(err) != "netns" {
		t.Error("unclean netns path accepted")
	}
	const id = "0b6f3a52-4f7c-4b8e-9d3e-1c2f3a4b5c6d"
	if c, err := decodeCursor(encodeCursor("a", id)); err != nil || c.Name != "a" || c.ID != id {
		t.Errorf("cursor %+v %v", c, err)
	}
	// Only what encodeCursor writes decodes: no other id, name or encoding.
	for _, bad := range []string{encodeCursor("a", "b"), encodeCursor("a\x00", id), encodeCursor("a\xff", id),
		encodeCursor(strings.Repeat("a", 254), id), encodeCursor("a", id) + "=", "", "%%%"} {
		if _, err := decodeCursor(bad); field(err) != "continue" {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}
