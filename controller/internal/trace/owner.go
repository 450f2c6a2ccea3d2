package trace

import (
	"fmt"
	"strconv"

	"github.com/switchyard/switchyard/controller/internal/compile"
)

// Owners maps the owner part of compiled cookies back to the objects they
// stand for (compile.Owner and the policy cookies).
type Owners map[uint64]string

// NewOwners builds the map for every object of s. A policy's rule cookies
// are computed for its rules only, so the cost is the snapshot's size.
func NewOwners(s *compile.Snapshot) Owners {
	o := Owners{0: "base", compile.Owner(compile.KindPolicyClause, ""): "policy clauses"}
	for _, h := range s.Hosts {
		o[compile.Owner(compile.KindHost, h.Name)] = "host " + h.Name
	}
	for _, n := range s.Networks {
		o[compile.Owner(compile.KindNetwork, n.Name)] = "network " + n.Name
	}
	for _, c := range s.Containers {
		o[compile.Owner(compile.KindContainer, c.ID)] = "container " + c.Name
		for _, dir := range []string{compile.DirIngress, compile.DirEgress} {
			o[compile.IsolationCookie(c.ID, dir)] = fmt.Sprintf("isolation of %s (%s)", c.Name, dir)
		}
	}
	for _, sv := range s.Services {
		o[compile.Owner(compile.KindService, sv.ID)] = "service " + sv.Name
	}
	for _, p := range s.Policies {
		for _, side := range []struct {
			dir string
			n   int
		}{{compile.DirIngress, len(p.Ingress)}, {compile.DirEgress, len(p.Egress)}} {
			for i := 0; i < side.n; i++ {
				name := "policy " + p.Name + " " + side.dir + "[" + strconv.Itoa(i) + "]"
				o[compile.RuleCookie(p.ID, side.dir, i)&compile.CookieMask] = name
				o[compile.ConnCookie(p.ID, side.dir, i)&compile.CookieMask] = name + " (new connections)"
			}
		}
	}
	return o
}

// Name names the owner of cookie (the agent's generation bits ignored).
func (o Owners) Name(cookie uint64) string {
	if n, ok := o[cookie&compile.CookieMask]; ok {
		return n
	}
	return "unknown (" + CookieString(cookie&compile.CookieMask) + ")"
}

// CookieString is a cookie as the contract writes it.
func CookieString(c uint64) string { return "0x" + strconv.FormatUint(c, 16) }
