package store

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// MaxVNI is the largest VXLAN/Geneve network identifier.
const MaxVNI = 1<<24 - 1

var networks = &kind[openapi.Network]{
	name:  "network",
	alias: "x",
	from: `SELECT x.id::text, x.name, x.cidr::text, host(x.gateway), x.vni, x.mtu, x.labels, x.revision, x.created_at, x.updated_at,
	        (SELECT count(*) FROM containers c WHERE c.network_id = x.id), x.egress_snat, coalesce(host(x.egress_ip), '')
	       FROM networks x`,
	scan: func(r pgx.Row) (openapi.Network, error) {
		var n openapi.Network
		var used int64
		n.Egress = &openapi.NetworkEgress{}
		err := r.Scan(&n.ID, &n.Name, &n.CIDR, &n.Gateway, &n.VNI, &n.MTU, &n.Labels, &n.Revision, &n.CreatedAt, &n.UpdatedAt, &used,
			&n.Egress.SNAT, &n.EgressIP)
		if err == nil {
			p := netip.MustParsePrefix(n.CIDR)
			total := size(p) - 3 // network, broadcast, gateway
			n.Addresses = &openapi.AddressUsage{Total: total, Used: used, Free: total - used}
		}
		return n, err
	},
	key:  func(n *openapi.Network) (string, string) { return n.Name, n.ID },
	meta: func(n *openapi.Network) *openapi.Meta { return &n.Meta },
}

// ListNetworks returns one page of networks.
func (s *Store) ListNetworks(ctx context.Context, o ListOptions) ([]openapi.Network, string, error) {
	return networks.list(ctx, s.Pool, o)
}

// GetNetwork resolves a network by name or id.
func (s *Store) GetNetwork(ctx context.Context, ref string) (openapi.Network, error) {
	return networks.get(ctx, s.Pool, ref, "", false)
}

// networkSpec is a validated network.
type networkSpec struct {
	cidr netip.Prefix
	gw   netip.Addr
}

func (s *Store) validateNetwork(n *openapi.Network) (networkSpec, error) {
	var sp networkSpec
	if err := checkName("name", n.Name); err != nil {
		return sp, err
	}
	if n.CIDR == "" {
		return sp, problem.Invalid("cidr", "cidr is required")
	}
	p, err := parseCIDR("cidr", n.CIDR)
	if err != nil {
		return sp, err
	}
	if p.Bits() > 30 {
		return sp, problem.Invalid("cidr", "%s is too small: a network needs at least a /30", p)
	}
	if p.Overlaps(s.opts.ServiceCIDR) {
		return sp, problem.Conflict("cidr", "%s overlaps the service range %s", p, s.opts.ServiceCIDR)
	}
	sp.cidr = p
	sp.gw = p.Addr().Next()
	if n.Gateway != "" {
		gw, err := parseIPv4("gateway", n.Gateway)
		if err != nil {
			return sp, err
		}
		off := addrOffset(p, gw)
		if !p.Contains(gw) || off == 0 || off == size(p)-1 {
			return sp, problem.Invalid("gateway", "gateway %s must be a usable address of %s", gw, p)
		}
		sp.gw = gw
	}
	if n.VNI != 0 && (n.VNI < 1 || n.VNI > MaxVNI) {
		return sp, problem.Invalid("vni", "vni %d is out of range 1-%d", n.VNI, MaxVNI)
	}
	if n.MTU == 0 {
		n.MTU = s.opts.DefaultMTU
	}
	if n.MTU < 576 || n.MTU > 9000 {
		return sp, problem.Invalid("mtu", "mtu %d is out of range 576-9000", n.MTU)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.Egress == nil {
		n.Egress = &openapi.NetworkEgress{SNAT: true}
	}
	if err := s.validateEgressIP(n); err != nil {
		return sp, err
	}
	return sp, checkLabels("labels", n.Labels)
}

// CreateNetwork validates and stores a network, allocating its VNI.
func (s *Store) CreateNetwork(ctx context.Context, actor string, n openapi.Network) (openapi.Network, error) {
	sp, err := s.validateNetwork(&n)
	if err != nil {
		return n, err
	}
	var out openapi.Network
	_, err = s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		// Network creates are rare: one at a time keeps VNI allocation simple.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('switchyard.networks'))`); err != nil {
			return err
		}
		if err := checkEgress(tx, &n, sp.cidr, ""); err != nil {
			return err
		}
		vni := n.VNI
		if vni == 0 {
			// The smallest free VNI, from the free list.
			v, ok, err := firstFree(ctx, tx, poolVNI, 1, MaxVNI)
			if err != nil {
				return err
			}
			if !ok {
				return problem.Exhausted("vni", "no free VNI left")
			}
			vni = v
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO networks (name, cidr, gateway, vni, mtu, labels, revision, egress_snat, egress_ip)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id::text`,
			n.Name, sp.cidr.String(), sp.gw.String(), vni, n.MTU, n.Labels, rev, n.Egress.SNAT, nullable(n.EgressIP)).Scan(&id); err != nil {
			return err
		}
		if out, err = networks.get(ctx, tx, id, "", false); err != nil {
			return err
		}
		return tx.Record("network", openapi.EventCreated, out.ID, out.Name, "", out)
	})
	return out, err
}

// UpdateNetwork replaces the mutable fields (mtu, labels, egress, egressIP)
// of a network.
// ifMatch, when not zero, must equal the stored revision.
func (s *Store) UpdateNetwork(ctx context.Context, actor, ref string, ifMatch int64, n openapi.Network) (openapi.Network, error) {
	var out openapi.Network
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := networks.getForWrite(ctx, tx, ref, "", ifMatch)
		if err != nil {
			return err
		}
		// Unset immutable fields keep their value; changed ones are refused.
		if n.CIDR == "" {
			n.CIDR = cur.CIDR
		}
		if n.Gateway == "" {
			n.Gateway = cur.Gateway
		}
		if n.VNI == 0 {
			n.VNI = cur.VNI
		}
		if n.Name == "" {
			n.Name = cur.Name
		}
		if err := immutable("name", cur.Name, n.Name, "cidr", cur.CIDR, n.CIDR, "gateway", cur.Gateway, n.Gateway,
			"vni", fmt.Sprint(cur.VNI), fmt.Sprint(n.VNI)); err != nil {
			return err
		}
		sp, err := s.validateNetwork(&n)
		if err != nil {
			return err
		}
		if err := checkEgress(tx, &n, sp.cidr, cur.ID); err != nil {
			return err
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE networks SET mtu = $2, labels = $3, revision = $4, updated_at = now(),
			egress_snat = $5, egress_ip = $6 WHERE id = $1`,
			cur.ID, n.MTU, n.Labels, rev, n.Egress.SNAT, nullable(n.EgressIP)); err != nil {
			return err
		}
		if out, err = networks.get(ctx, tx, cur.ID, "", false); err != nil {
			return err
		}
		return tx.Record("network", openapi.EventUpdated, out.ID, out.Name, "", out)
	})
	return out, err
}

// DeleteNetwork removes a network that nothing refers to any more.
func (s *Store) DeleteNetwork(ctx context.Context, actor, ref string, ifMatch int64) (int64, error) {
	return s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := networks.getForWrite(ctx, tx, ref, "", ifMatch)
		if err != nil {
			return err
		}
		var users int64
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM containers WHERE network_id = $1)
			+ (SELECT count(*) FROM services WHERE network_id = $1) + (SELECT count(*) FROM policies WHERE network_id = $1)`, cur.ID).Scan(&users); err != nil {
			return err
		}
		if users > 0 {
			return problem.Conflict("name", "network %s still has %d containers, services or policies", cur.Name, users)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM networks WHERE id = $1`, cur.ID); err != nil {
			return err
		}
		return tx.Record("network", openapi.EventDeleted, cur.ID, cur.Name, "", cur)
	})
}

// checkMatch enforces If-Match: ifMatch 0 means no precondition.
func checkMatch(ifMatch, revision int64) error {
	if ifMatch != 0 && ifMatch != revision {
		return problem.PreconditionFailed("the object changed: it is at revision %d, not %d", revision, ifMatch)
	}
	return nil
}

func exists(ctx context.Context, q Querier, sql string, args ...any) (bool, error) {
	var one int
	err := q.QueryRow(ctx, sql, args...).Scan(&one)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	return err == nil, err
}
