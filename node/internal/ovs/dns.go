package ovs

import (
	"github.com/switchyard/switchyard/openapi"
)

// The agent's DNS port (Options.DNSNetns set): the host end
// openapi.DNSPortName on br-int of the veth into the DNS namespace (package
// link makes it).
// It is an agent port, not a program port: every apply puts it in the
// bridge's ports (so pruning keeps it, and ${port:sydns0} resolves), with
// KeyAgentPort in its external_ids.

// KeyAgentPort marks the ports the agent has for itself ("dns").
const KeyAgentPort = "switchyard-agent-port"

// dnsPortSpec is the DNS port, unless it is off or failed.
func (a *Switch) dnsPortSpec(failed map[string]string) []portSpec {
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
// external access is (no Options.GatewayPort). Flows naming them are left out
// of every apply without degrading it. Built once, by New.
func (a *Switch) portsOff() map[string]bool { return a.off }

// agentPortsOff is portsOff for opts (nil: none off).
func agentPortsOff(opts Options) map[string]bool {
	var off map[string]bool
	for name, isOff := range map[string]bool{openapi.DNSPortName: opts.DNSNetns == "", openapi.GatewayPortName: !opts.GatewayPort} {
		if isOff {
			if off == nil {
				off = map[string]bool{}
			}
			off[name] = true
		}
	}
	return off
}
