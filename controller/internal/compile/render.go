package compile

import (
	"slices"
	"strconv"

	"github.com/switchyard/switchyard/openapi"
)

// Render prints p's flows as an ovs-ofctl flow file, one flow per line,
// sorted (table, priority descending, match):
//
//	table=N, priority=P, cookie=0x..., MATCH actions=ACTIONS
//
// Ports appear as ${port:NAME}; after the agent substitutes ofports, the
// text is valid input for `ovs-ofctl -O OpenFlow15 replace-flows`.
func Render(p *openapi.Program) string {
	flows := p.Flows
	if !slices.IsSortedFunc(flows, func(a, b openapi.Flow) int { return compareFlows(&a, &b) }) {
		flows = slices.Clone(flows)
		sortFlows(flows)
	}
	var b []byte
	for i := range flows {
		b = renderFlow(b, &flows[i])
		b = append(b, '\n')
	}
	return string(b)
}

// renderFlow appends f in ovs-ofctl syntax, without a newline.
func renderFlow(b []byte, f *openapi.Flow) []byte {
	b = append(b, "table="...)
	b = strconv.AppendInt(b, int64(f.Table), 10)
	b = append(b, ", priority="...)
	b = strconv.AppendInt(b, int64(f.Priority), 10)
	b = append(b, ", cookie=0x"...)
	b = strconv.AppendUint(b, f.Cookie, 16)
	if f.Match != "" {
		b = append(b, ", "...)
		b = append(b, f.Match...)
	}
	b = append(b, " actions="...)
	return append(b, f.Actions...)
}
