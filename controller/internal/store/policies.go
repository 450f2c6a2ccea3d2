package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

var policies = &kind[openapi.Policy]{
	name:   "policy",
	alias:  "x",
	scoped: true,
	from: `SELECT x.id::text, x.name, n.name, x.selector, x.priority, x.action, x.ingress, x.egress, x.log, x.labels,
	        x.revision, x.created_at, x.updated_at
	       FROM policies x JOIN networks n ON n.id = x.network_id`,
	scan: func(r pgx.Row) (openapi.Policy, error) {
		var p openapi.Policy
		err := r.Scan(&p.ID, &p.Name, &p.Network, &p.Selector, &p.Priority, &p.Action, &p.Ingress, &p.Egress, &p.Log, &p.Labels,
			&p.Revision, &p.CreatedAt, &p.UpdatedAt)
		return p, err
	},
	key:     func(p *openapi.Policy) (string, string) { return p.Name, p.ID },
	meta:    func(p *openapi.Policy) *openapi.Meta { return &p.Meta },
	network: func(p *openapi.Policy) string { return p.Network },
}

// DefaultPolicyPriority is a policy's priority when none is given.
const DefaultPolicyPriority = 1000

// MinPolicyPriority and MaxPolicyPriority bound a policy's priority; lower
// is evaluated first.
const (
	MinPolicyPriority = 1
	MaxPolicyPriority = 10000
)

// ListPolicies returns one page of policies.
func (s *Store) ListPolicies(ctx context.Context, o ListOptions) ([]openapi.Policy, string, error) {
	return policies.list(ctx, s.Pool, o)
}

// GetPolicy resolves a policy by id, or by name within network ("" = any).
func (s *Store) GetPolicy(ctx context.Context, ref, network string) (openapi.Policy, error) {
	return policies.get(ctx, s.Pool, ref, network, false)
}

// validatePolicy checks every field of a policy and fills defaults. It
// keeps a nil ingress or egress nil: absent (the policy says nothing about
// that direction) is not [] (isolate, allow nothing).
func validatePolicy(p *openapi.Policy) error {
	if err := checkName("name", p.Name); err != nil {
		return err
	}
	if p.Network == "" {
		return problem.Invalid("network", "network is required")
	}
	if _, err := parseSelector("selector", p.Selector); err != nil {
		return err
	}
	if p.Priority == 0 {
		p.Priority = DefaultPolicyPriority
	}
	if p.Priority < MinPolicyPriority || p.Priority > MaxPolicyPriority {
		return problem.Invalid("priority", "priority %d is out of range %d-%d (lower is evaluated first)",
			p.Priority, MinPolicyPriority, MaxPolicyPriority)
	}
	switch p.Action {
	case "":
		p.Action = openapi.ActionAllow
	case openapi.ActionAllow, openapi.ActionDeny:
	default:
		return problem.Invalid("action", "unknown action %q: use allow or deny", p.Action)
	}
	for _, d := range []struct {
		name  string
		rules []openapi.PolicyRule
	}{{"ingress", p.Ingress}, {"egress", p.Egress}} {
		for i := range d.rules {
			if err := validateRule(fmt.Sprintf("%s[%d]", d.name, i), &d.rules[i]); err != nil {
				return err
			}
		}
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	return checkLabels("labels", p.Labels)
}

// validateRule checks one rule, naming fields from field (ingress[0]), and
// makes its nil peers and ports [] (both mean "any").
func validateRule(field string, r *openapi.PolicyRule) error {
	if r.Peers == nil {
		r.Peers = []openapi.PolicyPeer{}
	}
	if r.Ports == nil {
		r.Ports = []openapi.PolicyPort{}
	}
	for i := range r.Peers {
		if err := validatePeer(fmt.Sprintf("%s.peers[%d]", field, i), &r.Peers[i]); err != nil {
			return err
		}
	}
	for i := range r.Ports {
		if err := validatePort(fmt.Sprintf("%s.ports[%d]", field, i), &r.Ports[i]); err != nil {
			return err
		}
	}
	return nil
}

// validatePeer checks a peer: exactly one of selector and cidr (else 422
// naming the peer), a valid selector, or a cidr whose excepts lie inside it.
// A cidr may cover the network's own addresses: it matches them by address.
func validatePeer(f string, peer *openapi.PolicyPeer) error {
	switch {
	case peer.Selector != nil && peer.CIDR != "":
		return problem.Unprocessable(f, "a peer has either a selector or a cidr, not both")
	case peer.Selector != nil:
		if _, err := parseSelector(f+".selector", *peer.Selector); err != nil {
			return err
		}
		if len(peer.Except) > 0 {
			return problem.Invalid(f+".except", "except goes with a cidr peer, not a selector")
		}
	case peer.CIDR != "":
		block, err := parseCIDR(f+".cidr", peer.CIDR)
		if err != nil {
			return err
		}
		for j, e := range peer.Except {
			ef := fmt.Sprintf("%s.except[%d]", f, j)
			ex, err := parseCIDR(ef, e)
			if err != nil {
				return err
			}
			if !block.Contains(ex.Addr()) || ex.Bits() < block.Bits() {
				return problem.Invalid(ef, "%s is not inside the peer's cidr %s", ex, block)
			}
		}
	default:
		return problem.Unprocessable(f, "a peer needs a selector or a cidr (selector \"\" selects every container of the network)")
	}
	return nil
}

// validatePort checks a port or range and upper-cases its protocol (TCP
// when absent).
func validatePort(f string, pp *openapi.PolicyPort) error {
	proto, err := normProtocol(f+".protocol", pp.Protocol, "TCP", "UDP", "SCTP", "ICMP")
	if err != nil {
		return err
	}
	pp.Protocol = proto
	if proto == "ICMP" {
		switch {
		case pp.Port != 0:
			return problem.Invalid(f+".port", "ICMP has no ports")
		case pp.EndPort != 0:
			return problem.Invalid(f+".endPort", "ICMP has no ports")
		}
		return nil
	}
	if pp.Port != 0 {
		if err := checkPort(f+".port", pp.Port); err != nil {
			return err
		}
	}
	if pp.EndPort != 0 {
		if pp.Port == 0 {
			return problem.Invalid(f+".endPort", "endPort needs a port (the start of the range)")
		}
		if err := checkPort(f+".endPort", pp.EndPort); err != nil {
			return err
		}
		if pp.EndPort < pp.Port {
			return problem.Invalid(f+".endPort", "endPort %d is below port %d", pp.EndPort, pp.Port)
		}
	}
	return nil
}

// rulesArg is the SQL argument of a direction's rules: NULL when absent.
func rulesArg(rules []openapi.PolicyRule) any {
	if rules == nil {
		return nil
	}
	return rules
}

// CreatePolicy validates and stores a policy.
func (s *Store) CreatePolicy(ctx context.Context, actor string, p openapi.Policy) (openapi.Policy, error) {
	if err := validatePolicy(&p); err != nil {
		return p, err
	}
	var out openapi.Policy
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		nid, err := networkID(tx, p.Network)
		if err != nil {
			return err
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO policies (name, network_id, selector, priority, action, ingress, egress, log, labels, revision)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id::text`,
			p.Name, nid, p.Selector, p.Priority, p.Action, rulesArg(p.Ingress), rulesArg(p.Egress), p.Log, p.Labels, rev).Scan(&id); err != nil {
			return err
		}
		if out, err = policies.get(ctx, tx, id, "", false); err != nil {
			return err
		}
		return tx.Record("policy", openapi.EventCreated, out.ID, out.Name, out.Network, out)
	})
	return out, err
}

// UpdatePolicy replaces everything but a policy's name and network.
func (s *Store) UpdatePolicy(ctx context.Context, actor, ref, network string, ifMatch int64, p openapi.Policy) (openapi.Policy, error) {
	var out openapi.Policy
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := policies.getForWrite(ctx, tx, ref, network, ifMatch)
		if err != nil {
			return err
		}
		if err := immutable("name", cur.Name, p.Name, "network", cur.Network, p.Network); err != nil {
			return err
		}
		p.Name, p.Network = cur.Name, cur.Network
		if err := validatePolicy(&p); err != nil {
			return err
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE policies SET selector = $2, priority = $3, action = $4, ingress = $5, egress = $6, log = $7, labels = $8,
			revision = $9, updated_at = now() WHERE id = $1`,
			cur.ID, p.Selector, p.Priority, p.Action, rulesArg(p.Ingress), rulesArg(p.Egress), p.Log, p.Labels, rev); err != nil {
			return err
		}
		if out, err = policies.get(ctx, tx, cur.ID, "", false); err != nil {
			return err
		}
		return tx.Record("policy", openapi.EventUpdated, out.ID, out.Name, out.Network, out)
	})
	return out, err
}

// DeletePolicy removes a policy.
func (s *Store) DeletePolicy(ctx context.Context, actor, ref, network string, ifMatch int64) (int64, error) {
	return deleteScoped(ctx, s, actor, policies, "policies", ref, network, ifMatch)
}

// NetworkPolicies is one network with its containers and policies, read at
// one revision: what policy is evaluated on.
type NetworkPolicies struct {
	Revision   int64
	Network    openapi.Network
	Containers []openapi.Container
	Policies   []openapi.Policy
}

// LoadNetworkPolicies reads the network ref (a name or an id), its
// containers and its policies in one consistent snapshot; 404 when there
// is no such network.
func (s *Store) LoadNetworkPolicies(ctx context.Context, ref string) (NetworkPolicies, error) {
	var out NetworkPolicies
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return out, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	if err := tx.QueryRow(ctx, `SELECT revision FROM sy_revision`).Scan(&out.Revision); err != nil {
		return out, err
	}
	if out.Network, err = networks.get(ctx, tx, ref, "", false); err != nil {
		return out, err
	}
	o := ListOptions{Network: out.Network.Name}
	if out.Containers, err = containers.all(ctx, tx, o); err != nil {
		return out, err
	}
	out.Policies, err = policies.all(ctx, tx, o)
	return out, err
}
