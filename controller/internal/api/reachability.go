package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/policy"
	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/openapi"
)

// DefaultMaxReachability caps the containers of one reachability matrix
// (its answer grows with their square) unless Server.MaxReachability says
// otherwise; ?selector= narrows a larger network.
const DefaultMaxReachability = 200

// reachability answers GET /networks/:ref/reachability: for the network's
// containers (those ?selector= picks), whether each may open a connection
// to each other on ?protocol= and ?port=, and what decided, computed from
// intent by package policy. Nothing is probed.
func (s *Server) reachability(c *gin.Context) {
	proto, port, err := reachabilityQuery(c)
	if err != nil {
		fail(c, err)
		return
	}
	sel, err := selector.Parse(c.Query("selector"))
	if err != nil {
		fail(c, problem.Invalid("selector", "%v", err))
		return
	}
	in, err := s.Store.LoadNetworkPolicies(c.Request.Context(), c.Param("ref"))
	if err != nil {
		fail(c, err)
		return
	}
	containers := make([]policy.Container, 0, len(in.Containers))
	shown := 0
	for _, ct := range in.Containers {
		ip, _ := netip.ParseAddr(ct.IP) // the store writes valid addresses
		containers = append(containers, policy.Container{Name: ct.Name, IP: ip, Labels: ct.Labels})
		if sel.Matches(ct.Labels) {
			shown++
		}
	}
	limit := s.MaxReachability
	if limit <= 0 {
		limit = DefaultMaxReachability
	}
	if shown > limit {
		fail(c, problem.Unprocessable("selector", "the matrix would have %d containers, more than %d: narrow it with ?selector=", shown, limit))
		return
	}
	ev, err := policy.New(containers, in.Policies)
	if err != nil {
		fail(c, fmt.Errorf("network %s: a stored policy does not evaluate: %w", in.Network.Name, err))
		return
	}
	m := ev.MatrixOf(func(ct policy.Container) bool { return sel.Matches(ct.Labels) }, proto, port)
	out := openapi.Reachability{Network: in.Network.Name, Revision: in.Revision, Protocol: proto, Port: port,
		Containers: m.Names, Matrix: make([][]openapi.ReachabilityCell, len(m.Cells))}
	if out.Containers == nil {
		out.Containers = []string{}
	}
	for i, row := range m.Cells {
		out.Matrix[i] = make([]openapi.ReachabilityCell, len(row))
		for j, v := range row {
			out.Matrix[i][j] = openapi.ReachabilityCell{Allowed: v.Allowed, Egress: decision(v.Egress), Ingress: decision(v.Ingress)}
		}
	}
	c.JSON(http.StatusOK, out)
}

func decision(d policy.Decision) openapi.ReachabilityDecision {
	return openapi.ReachabilityDecision{Allowed: d.Allowed, Reason: d.Reason, Policy: d.Policy, PolicyID: d.PolicyID,
		Rule: d.RuleField(), Action: d.Action}
}

// reachabilityQuery reads ?protocol= (default TCP) and ?port=: required for
// TCP, UDP and SCTP, refused for ICMP. The contract has checked their
// syntax and range.
func reachabilityQuery(c *gin.Context) (string, int, error) {
	proto := c.DefaultQuery("protocol", "TCP")
	raw, given := c.GetQuery("port")
	if proto == "ICMP" {
		if given {
			return "", 0, problem.Invalid("port", "ICMP has no ports: leave port out")
		}
		return proto, 0, nil
	}
	if !given {
		return "", 0, problem.Invalid("port", "port is required for %s", proto)
	}
	port, err := strconv.Atoi(raw)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, problem.Invalid("port", "port must be a number from 1 to 65535")
	}
	return proto, port, nil
}
