package store

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/selector"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// checkName validates an object name: a DNS label (lower case, digits and
// dashes, at most 63 characters), so it can become a DNS name.
func checkName(field, name string) error {
	if name == "" {
		return problem.Invalid(field, "%s is required", field)
	}
	if len(name) > 63 || !nameRE.MatchString(name) {
		return problem.Invalid(field, "%q is not a valid name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// checkLabels validates label keys and values with Kubernetes' rules.
func checkLabels(field string, labels map[string]string) error {
	for k, v := range labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return problem.Invalid(field, "label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return problem.Invalid(field, "label %q value %q: %s", k, v, strings.Join(errs, "; "))
		}
	}
	return nil
}

// parseSelector validates a selector string.
func parseSelector(field, s string) (selector.Selector, error) {
	sel, err := selector.Parse(s)
	if err != nil {
		return sel, problem.Invalid(field, "%v", err)
	}
	return sel, nil
}

// parseIPv4 parses an IPv4 address.
func parseIPv4(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, problem.Invalid(field, "%q is not an IPv4 address", s)
	}
	return a, nil
}

// parseCIDR parses an IPv4 prefix with no host bits set.
func parseCIDR(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, problem.Invalid(field, "%q is not an IPv4 CIDR like 10.10.0.0/24", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, problem.Invalid(field, "%q has host bits set: did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// checkPort validates a port number.
func checkPort(field string, p int) error {
	if p < 1 || p > 65535 {
		return problem.Invalid(field, "port %d is out of range 1-65535", p)
	}
	return nil
}

// normProtocol validates a protocol, defaulting to TCP.
func normProtocol(field, p string, allowed ...string) (string, error) {
	if p == "" {
		return "TCP", nil
	}
	up := strings.ToUpper(p)
	for _, a := range allowed {
		if up == a {
			return up, nil
		}
	}
	return "", problem.Invalid(field, "unknown protocol %q: use one of %s", p, strings.Join(allowed, ", "))
}

// checkNetnsPath validates a user-given network namespace path.
func checkNetnsPath(field, p string) error {
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return problem.Invalid(field, "netns %q must be an absolute, clean path like /var/run/netns/web1", p)
	}
	return nil
}

// offsetAddr returns the address offset positions into prefix p.
func offsetAddr(p netip.Prefix, off int64) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(off)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// addrOffset is the position of a inside p.
func addrOffset(p netip.Prefix, a netip.Addr) int64 {
	x, y := p.Addr().As4(), a.As4()
	u := func(b [4]byte) int64 {
		return int64(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	}
	return u(y) - u(x)
}

// size is the number of addresses in p.
func size(p netip.Prefix) int64 { return int64(1) << (32 - p.Bits()) }

// macFor derives a container MAC from its IPv4 address: locally administered
// (0a:58 prefix, as OVN does) and unique because network CIDRs never overlap.
func macFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// immutable checks (field, stored, asked) triples: an asked value that is
// set and differs from the stored one is refused, naming the field.
func immutable(triples ...string) error {
	for i := 0; i+2 < len(triples); i += 3 {
		field, old, asked := triples[i], triples[i+1], triples[i+2]
		if asked != "" && asked != "0" && asked != old {
			return problem.Invalid(field, "%s cannot change once the object exists (it is %s)", field, old)
		}
	}
	return nil
}
