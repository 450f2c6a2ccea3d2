package ovs

import (
	"context"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// The agent's DNS port (Options.DNSNetns set): the veth into the DNS
// namespace (package link) and its host end openapi.DNSPortName on br-int.
// It is an agent port, not a program port: every apply puts it in the
// bridge's ports (so pruning keeps it, and ${port:sydns0} resolves), with
// KeyAgentPort in its external_ids.

// KeyAgentPort marks the ports the agent has for itself ("dns").
const KeyAgentPort = "switchyard-agent-port"

// EnsureDNS converges the DNS namespace (before the first apply too, so
// that the resolver can open its sockets there) and returns its path. The
// OVS port follows with the next apply.
func (a *Applier) EnsureDNS(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	spec := a.dnsSpec(a.dnsVNIs)
	spec.KeepAddrs = a.applied == nil // the networks are not known yet
	if _, err := a.links.EnsureDNS(spec); err != nil {
		a.dnsOK = false
		return "", err
	}
	return a.links.DNSPath(a.opts.DNSNetns), nil
}

// DNSPath is the path of the DNS namespace.
func (a *Applier) DNSPath() string { return a.links.DNSPath(a.opts.DNSNetns) }

func (a *Applier) dnsSpec(vnis []int64) link.DNSSpec {
	return link.DNSSpec{Netns: a.opts.DNSNetns, Port: openapi.DNSPortName, VNIs: vnis}
}

// ensureDNSLinks converges the DNS namespace for prog's networks, on a
// full pass or when they changed; a failure fails the port (and so the
// flows naming it).
func (a *Applier) ensureDNSLinks(prog *openapi.Program, full bool, res *ApplyResult, fresh map[string]bool, failed map[string]string) {
	if a.opts.DNSNetns == "" {
		return
	}
	vnis := dnsVNIs(prog)
	if !full && a.dnsOK && slices.Equal(vnis, a.dnsVNIs) {
		return
	}
	diffs, err := a.links.EnsureDNS(a.dnsSpec(vnis))
	for _, d := range diffs {
		res.LinkChanges = append(res.LinkChanges, openapi.DNSPortName+": "+d)
		if strings.HasPrefix(d, link.CreatedVeth) {
			fresh[openapi.DNSPortName] = true
		}
	}
	a.dnsOK = err == nil
	if err != nil {
		failed[openapi.DNSPortName] = err.Error()
		return
	}
	a.dnsVNIs = vnis
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

// dnsPortSpec is the DNS port, unless it is off or failed.
func (a *Applier) dnsPortSpec(failed map[string]string) []portSpec {
	if a.opts.DNSNetns == "" {
		return nil
	}
	if _, bad := failed[openapi.DNSPortName]; bad {
		return nil
	}
	return []portSpec{{Name: openapi.DNSPortName, IDs: map[string]string{KeyOwner: OwnerValue, KeyAgentPort: "dns"}}}
}

// portsOff are the agent ports its configuration switches off: the DNS port
// when the resolver is off (no Options.DNSNetns), the gateway port when
// external access is (no Options.Gateway). Flows naming them are left out
// of every apply without degrading it. Built once, by New.
func (a *Applier) portsOff() map[string]bool { return a.off }

// agentPortsOff is portsOff for opts (nil: none off).
func agentPortsOff(opts Options) map[string]bool {
	var off map[string]bool
	for name, isOff := range map[string]bool{openapi.DNSPortName: opts.DNSNetns == "", openapi.GatewayPortName: opts.Gateway == nil} {
		if isOff {
			if off == nil {
				off = map[string]bool{}
			}
			off[name] = true
		}
	}
	return off
}
