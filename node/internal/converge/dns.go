package converge

import (
	"context"
	"slices"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// The agent's DNS namespace (Options.DNSNetns set): package link keeps the
// namespace and the veth into it; package ovs puts its host end,
// openapi.DNSPortName, in every apply's ports.

// EnsureDNS converges the DNS namespace (before the first apply too, so
// that the resolver can open its sockets there) and returns its path. The
// OVS port follows with the next apply.
func (h *Host) EnsureDNS(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	spec := h.dnsSpec(h.dnsVNIs)
	spec.KeepAddrs = h.last == nil // the networks are not known yet
	if _, err := h.links.EnsureDNS(spec); err != nil {
		h.dnsOK = false
		return "", err
	}
	return h.DNSPath(), nil
}

// DNSPath is the path of the DNS namespace.
func (h *Host) DNSPath() string { return h.links.DNSPath(h.opts.DNSNetns) }

func (h *Host) dnsSpec(vnis []int64) link.DNSSpec {
	return link.DNSSpec{Netns: h.opts.DNSNetns, Port: openapi.DNSPortName, VNIs: vnis}
}

// ensureDNSLinks converges the DNS namespace for prog's networks, on a
// full pass or when they changed; a failure fails the port (and so the
// flows naming it).
func (h *Host) ensureDNSLinks(prog *openapi.Program, full bool, res *ApplyResult, fresh map[string]bool, failed map[string]string) {
	if h.opts.DNSNetns == "" {
		return
	}
	vnis := dnsVNIs(prog)
	if !full && h.dnsOK && slices.Equal(vnis, h.dnsVNIs) {
		return
	}
	diffs, err := h.links.EnsureDNS(h.dnsSpec(vnis))
	recordLinkChanges(openapi.DNSPortName, diffs, res, fresh)
	h.dnsOK = err == nil
	if err != nil {
		failed[openapi.DNSPortName] = err.Error()
		return
	}
	h.dnsVNIs = vnis
}

// dnsVNIs are the networks of prog's DNS records, sorted.
func dnsVNIs(prog *openapi.Program) []int64 {
	var out []int64
	for i := range prog.DNS {
		if v := prog.DNS[i].VNI; !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}
