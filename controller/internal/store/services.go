package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

var services = &kind[openapi.Service]{
	name:   "service",
	alias:  "x",
	scoped: true,
	from: `SELECT x.id::text, x.name, n.name, host(x.vip), x.ports, x.selector, x.labels, x.revision, x.created_at, x.updated_at
	       FROM services x JOIN networks n ON n.id = x.network_id`,
	scan: func(r pgx.Row) (openapi.Service, error) {
		var v openapi.Service
		err := r.Scan(&v.ID, &v.Name, &v.Network, &v.VIP, &v.Ports, &v.Selector, &v.Labels, &v.Revision, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
	key:     func(v *openapi.Service) (string, string) { return v.Name, v.ID },
	meta:    func(v *openapi.Service) *openapi.Meta { return &v.Meta },
	network: func(v *openapi.Service) string { return v.Network },
}

// ListServices returns one page of services.
func (s *Store) ListServices(ctx context.Context, o ListOptions) ([]openapi.Service, string, error) {
	return services.list(ctx, s.Pool, o)
}

// GetService resolves a service by id, or by name within network ("" = any).
func (s *Store) GetService(ctx context.Context, ref, network string) (openapi.Service, error) {
	return services.get(ctx, s.Pool, ref, network, false)
}

func (s *Store) validateService(v *openapi.Service) error {
	if err := checkName("name", v.Name); err != nil {
		return err
	}
	if v.Network == "" {
		return problem.Invalid("network", "network is required")
	}
	if v.VIP != "" {
		a, err := parseIPv4("vip", v.VIP)
		if err != nil {
			return err
		}
		if !s.opts.ServiceCIDR.Contains(a) {
			return problem.Invalid("vip", "vip %s is outside the service range %s", a, s.opts.ServiceCIDR)
		}
	}
	if len(v.Ports) == 0 {
		return problem.Invalid("ports", "a service needs at least one port")
	}
	seen := map[string]bool{}
	for i := range v.Ports {
		p := &v.Ports[i]
		field := fmt.Sprintf("ports[%d]", i)
		if err := checkPort(field+".port", p.Port); err != nil {
			return err
		}
		if p.TargetPort == 0 {
			p.TargetPort = p.Port
		}
		if err := checkPort(field+".targetPort", p.TargetPort); err != nil {
			return err
		}
		proto, err := normProtocol(field+".protocol", p.Protocol, "TCP", "UDP", "SCTP")
		if err != nil {
			return err
		}
		p.Protocol = proto
		if p.Name != "" {
			if err := checkName(field+".name", p.Name); err != nil {
				return err
			}
		}
		key := fmt.Sprint(p.Port, "/", p.Protocol)
		if seen[key] {
			return problem.Invalid(field, "port %s is listed twice", key)
		}
		seen[key] = true
	}
	if _, err := parseSelector("selector", v.Selector); err != nil {
		return err
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	return checkLabels("labels", v.Labels)
}

// allocateVIP returns the first free address of the service range.
func (s *Store) allocateVIP(tx *Tx) (string, error) {
	// Service creates are serialized: they are rare next to container creates.
	if _, err := tx.Exec(tx.ctx, `SELECT pg_advisory_xact_lock(hashtext('switchyard.services'))`); err != nil {
		return "", err
	}
	// The first free address of the range, without its network and
	// broadcast addresses, from the free list.
	p := s.opts.ServiceCIDR
	first := addrOffset(ipv4All, p.Addr())
	v, ok, err := firstFree(tx.ctx, tx, poolVIP, first+1, first+size(p)-2)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", problem.Exhausted("vip", "the service range %s is full", p)
	}
	return offsetAddr(ipv4All, v).String(), nil
}

// CreateService validates and stores a service, allocating its VIP unless given.
func (s *Store) CreateService(ctx context.Context, actor string, v openapi.Service) (openapi.Service, error) {
	if err := s.validateService(&v); err != nil {
		return v, err
	}
	var out openapi.Service
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		nid, err := networkID(tx, v.Network)
		if err != nil {
			return err
		}
		if v.VIP == "" {
			if v.VIP, err = s.allocateVIP(tx); err != nil {
				return err
			}
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO services (name, network_id, vip, ports, selector, labels, revision)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`,
			v.Name, nid, v.VIP, v.Ports, v.Selector, v.Labels, rev).Scan(&id); err != nil {
			return err
		}
		if out, err = services.get(ctx, tx, id, "", false); err != nil {
			return err
		}
		return tx.Record("service", openapi.EventCreated, out.ID, out.Name, out.Network, out)
	})
	return out, err
}

// UpdateService replaces a service's ports, selector and labels.
func (s *Store) UpdateService(ctx context.Context, actor, ref, network string, ifMatch int64, v openapi.Service) (openapi.Service, error) {
	var out openapi.Service
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := services.getForWrite(ctx, tx, ref, network, ifMatch)
		if err != nil {
			return err
		}
		if err := immutable("name", cur.Name, v.Name, "network", cur.Network, v.Network, "vip", cur.VIP, v.VIP); err != nil {
			return err
		}
		v.Name, v.Network, v.VIP = cur.Name, cur.Network, cur.VIP
		if err := s.validateService(&v); err != nil {
			return err
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE services SET ports = $2, selector = $3, labels = $4, revision = $5, updated_at = now() WHERE id = $1`,
			cur.ID, v.Ports, v.Selector, v.Labels, rev); err != nil {
			return err
		}
		if out, err = services.get(ctx, tx, cur.ID, "", false); err != nil {
			return err
		}
		return tx.Record("service", openapi.EventUpdated, out.ID, out.Name, out.Network, out)
	})
	return out, err
}

// DeleteService removes a service.
func (s *Store) DeleteService(ctx context.Context, actor, ref, network string, ifMatch int64) (int64, error) {
	return deleteScoped(ctx, s, actor, services, "services", ref, network, ifMatch)
}

// deleteScoped deletes one object of a network-scoped kind.
func deleteScoped[T any](ctx context.Context, s *Store, actor string, k *kind[T], table, ref, network string, ifMatch int64) (int64, error) {
	return s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := k.getForWrite(ctx, tx, ref, network, ifMatch)
		if err != nil {
			return err
		}
		name, id := k.key(&cur)
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1`, id); err != nil {
			return err
		}
		return tx.Record(k.name, openapi.EventDeleted, id, name, k.network(&cur), cur)
	})
}

func networkID(tx *Tx, name string) (string, error) {
	var id string
	err := tx.QueryRow(tx.ctx, `SELECT id::text FROM networks WHERE name = $1`, name).Scan(&id)
	if err == pgx.ErrNoRows {
		return "", problem.Unresolvable("network", "network %q does not exist", name)
	}
	return id, err
}
