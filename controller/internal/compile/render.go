package compile

import (
	"slices"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// Render prints p's flows as an ovs-ofctl flow file, one flow per line,
// sorted (program.CompareFlows: table, priority descending, match):
//
//	table=N, priority=P, cookie=0x..., MATCH actions=ACTIONS
//
// Ports appear as ${port:NAME}; after the agent substitutes ofports, the
// text is valid input for `ovs-ofctl -O OpenFlow15 replace-flows`.
func Render(p *openapi.Program) string {
	flows := p.Flows
	if !program.FlowsSorted(flows) {
		flows = slices.Clone(flows)
		program.SortFlows(flows)
	}
	var b []byte
	for i := range flows {
		b = program.AppendFlow(b, &flows[i])
		b = append(b, '\n')
	}
	return string(b)
}
