package program

import (
	"encoding/json"
	"reflect"

	"github.com/switchyard/switchyard/openapi"
)

// A program's Gateway is one element, replaced whole: a delta carries the
// new one (ProgramDelta.Gateway) or says it goes (RemoveGateway). It is
// small (a host's routes, NAT rules and egress IPs), so it is not diffed
// rule by rule.

// GatewayKey is g's content hash (the zero Key for nil).
func GatewayKey(g *openapi.Gateway) Key {
	if g == nil {
		return Key{}
	}
	b, err := json.Marshal(g) // struct fields: a fixed order
	if err != nil {
		panic(err) // strings, ints and slices of them always marshal
	}
	return hashOf(append([]byte{'W'}, b...))
}

// SetGateway records the program's gateway by its key (GatewayKey; the
// zero Key: none).
func (s *Sums) SetGateway(k Key) { s.gw = k }

// diffGateway sets d's gateway fields to turn from's gateway into to's.
func diffGateway(from, to *openapi.Gateway, d *openapi.ProgramDelta) {
	switch {
	case reflect.DeepEqual(from, to):
	case to == nil:
		d.RemoveGateway = true
	default:
		g := cloneGateway(to)
		d.Gateway = g
	}
}

// patchGateway is from's gateway after d.
func patchGateway(from *openapi.Gateway, d *openapi.ProgramDelta) *openapi.Gateway {
	switch {
	case d.Gateway != nil:
		return cloneGateway(d.Gateway)
	case d.RemoveGateway:
		return nil
	}
	return from
}

// composeGateway gives out the gateway effect of ds in order: the last
// delta that mentions it wins.
func composeGateway(ds []*openapi.ProgramDelta, out *openapi.ProgramDelta) {
	for _, d := range ds {
		switch {
		case d.Gateway != nil:
			out.Gateway, out.RemoveGateway = cloneGateway(d.Gateway), false
		case d.RemoveGateway:
			out.Gateway, out.RemoveGateway = nil, true
		}
	}
}

func cloneGateway(g *openapi.Gateway) *openapi.Gateway {
	if g == nil {
		return nil
	}
	c := *g
	c.Routes = append([]openapi.GatewayRoute(nil), g.Routes...)
	c.NAT = append([]openapi.NATRule(nil), g.NAT...)
	c.EgressIPs = append([]string(nil), g.EgressIPs...)
	return &c
}
