package ovs

import (
	"context"

	"github.com/switchyard/switchyard/openapi"
)

// The gateway port (Options.Gateway set): an OVS internal port
// openapi.GatewayPortName on br-int, in the host's namespace, between the
// switch and the host's own IP stack. Like the DNS port it is an agent
// port (KeyAgentPort "gateway"), present while the program has a Gateway;
// the kernel side (MAC, routes, NAT, egress IPs) is the realizer's.

// GatewayRealizer makes the host's kernel match a program's gateway (nil:
// none); full re-checks everything. Package gateway implements it.
type GatewayRealizer interface {
	Ensure(ctx context.Context, g *openapi.Gateway, full bool) ([]string, error)
	// Drift says how the host differs from g (nothing: in order); the
	// next Ensure with full set repairs it.
	Drift(ctx context.Context, g *openapi.Gateway) []string
}

func (a *Applier) gatewayPortSpec(prog *openapi.Program) []portSpec {
	if a.opts.Gateway == nil || prog.Gateway == nil {
		return nil
	}
	return []portSpec{{Name: openapi.GatewayPortName, Type: "internal",
		IDs: map[string]string{KeyOwner: OwnerValue, KeyAgentPort: "gateway"}}}
}

// ensureGateway runs the realizer once the port is in OVSDB; a failure
// degrades the apply without failing it (the overlay still works).
func (a *Applier) ensureGateway(ctx context.Context, prog *openapi.Program, full bool, res *ApplyResult) {
	if a.opts.Gateway == nil {
		return
	}
	changes, err := a.opts.Gateway.Ensure(ctx, prog.Gateway, full)
	for _, c := range changes {
		res.LinkChanges = append(res.LinkChanges, "gateway: "+c)
	}
	if err != nil {
		res.GatewayError = err.Error()
		res.Warnings = append(res.Warnings, "gateway: "+err.Error())
	}
}
