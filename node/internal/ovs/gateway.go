package ovs

import (
	"github.com/switchyard/switchyard/openapi"
)

// The gateway port (Options.GatewayPort set): an OVS internal port
// openapi.GatewayPortName on br-int, in the host's namespace, between the
// switch and the host's own IP stack. Like the DNS port it is an agent
// port (KeyAgentPort "gateway"), present while the program has a Gateway;
// the kernel side (MAC, routes, NAT, egress IPs) is package gateway's.

func (a *Switch) gatewayPortSpec(prog *openapi.Program) []portSpec {
	if !a.opts.GatewayPort || prog.Gateway == nil {
		return nil
	}
	return []portSpec{{Name: openapi.GatewayPortName, Type: "internal",
		IDs: map[string]string{KeyOwner: OwnerValue, KeyAgentPort: "gateway"}}}
}
