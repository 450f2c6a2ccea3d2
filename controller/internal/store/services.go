package store

import (
	"context"
	"reflect"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

var services = &kind[openapi.Service]{
	name:   "service",
	alias:  "x",
	scoped: true,
	from: `SELECT x.id::text, x.name, n.name, host(x.vip), x.ports, x.selector, x.labels, x.revision, x.created_at, x.updated_at,
	        x.weights, x.session_affinity, x.affinity_timeout, x.health_check, x.group_id, x.external_traffic_policy
	       FROM services x JOIN networks n ON n.id = x.network_id`,
	scan: func(r pgx.Row) (openapi.Service, error) {
		var v openapi.Service
		err := r.Scan(&v.ID, &v.Name, &v.Network, &v.VIP, &v.Ports, &v.Selector, &v.Labels, &v.Revision, &v.CreatedAt, &v.UpdatedAt,
			&v.Weights, &v.SessionAffinity, &v.SessionAffinityTimeoutSeconds, &v.HealthCheck, &v.GroupID, &v.ExternalTrafficPolicy)
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
	if err := validatePorts(v.Ports); err != nil {
		return err
	}
	if err := validateNodePorts(v); err != nil {
		return err
	}
	if _, err := parseSelector("selector", v.Selector); err != nil {
		return err
	}
	if err := validateWeights(v.Weights); err != nil {
		return err
	}
	if len(v.Weights) == 0 {
		v.Weights = nil
	}
	if err := validateAffinity(v); err != nil {
		return err
	}
	if err := validateHealthCheck(v.HealthCheck, v.Ports); err != nil {
		return err
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	return checkLabels("labels", v.Labels)
}

// lockServices serializes service creates (VIP and group id allocation):
// they are rare next to container creates.
func lockServices(tx *Tx) error {
	_, err := tx.Exec(tx.ctx, `SELECT pg_advisory_xact_lock(hashtext('switchyard.services'))`)
	return err
}

// allocateGroupID returns the smallest free group id. Callers hold
// lockServices.
func allocateGroupID(tx *Tx) (int64, error) {
	v, ok, err := firstFree(tx.ctx, tx, poolGroup, 1, MaxGroupID)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, problem.Exhausted("groupId", "no free service group id left (%d services)", MaxGroupID)
	}
	return v, nil
}

// jsonOrNull is v for a jsonb column, or SQL NULL when empty.
func jsonOrNull[T any](v []T) any {
	if len(v) == 0 {
		return nil
	}
	return v
}

// allocateVIP returns the first free address of the service range.
// Callers hold lockServices.
func (s *Store) allocateVIP(tx *Tx) (string, error) {
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
		if err := checkPortClaims(tx, nodePortClaims(&v), nil, nil, nil, nil); err != nil {
			return err
		}
		if err := lockServices(tx); err != nil {
			return err
		}
		if v.VIP == "" {
			if v.VIP, err = s.allocateVIP(tx); err != nil {
				return err
			}
		}
		gid, err := allocateGroupID(tx)
		if err != nil {
			return err
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO services (name, network_id, vip, ports, selector, labels, revision,
			weights, session_affinity, affinity_timeout, health_check, group_id, external_traffic_policy)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id::text`,
			v.Name, nid, v.VIP, v.Ports, v.Selector, v.Labels, rev,
			jsonOrNull(v.Weights), v.SessionAffinity, v.SessionAffinityTimeoutSeconds, v.HealthCheck, gid, v.ExternalTrafficPolicy).Scan(&id); err != nil {
			return err
		}
		if out, err = services.get(ctx, tx, id, "", false); err != nil {
			return err
		}
		return tx.Record("service", openapi.EventCreated, out.ID, out.Name, out.Network, out)
	})
	return out, err
}

// UpdateService replaces a service's mutable fields: all but name, network,
// VIP and group id (read-only: whatever v says is ignored). A changed or
// removed health check drops the verdicts of the old one.
func (s *Store) UpdateService(ctx context.Context, actor, ref, network string, ifMatch int64, v openapi.Service) (openapi.Service, error) {
	var out openapi.Service
	var before *openapi.HealthCheck
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
		before = cur.HealthCheck
		if err := s.validateService(&v); err != nil {
			return err
		}
		if err := checkPortClaims(tx, nodePortClaims(&v), nil, nil, nil, &cur.ID); err != nil {
			return err
		}
		rev, err := tx.Rev()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE services SET ports = $2, selector = $3, labels = $4, revision = $5, updated_at = now(),
			weights = $6, session_affinity = $7, affinity_timeout = $8, health_check = $9, external_traffic_policy = $10 WHERE id = $1`,
			cur.ID, v.Ports, v.Selector, v.Labels, rev,
			jsonOrNull(v.Weights), v.SessionAffinity, v.SessionAffinityTimeoutSeconds, v.HealthCheck, v.ExternalTrafficPolicy); err != nil {
			return err
		}
		if !reflect.DeepEqual(cur.HealthCheck, v.HealthCheck) {
			// The verdicts were about the old check.
			if err := clearEndpointHealth(tx, "service_id", cur.ID); err != nil {
				return err
			}
		}
		if out, err = services.get(ctx, tx, cur.ID, "", false); err != nil {
			return err
		}
		return tx.Record("service", openapi.EventUpdated, out.ID, out.Name, out.Network, out)
	})
	if err == nil && !reflect.DeepEqual(before, out.HealthCheck) {
		// Reports equal to a host's last must be looked at again: their
		// rows may be gone.
		s.health.clear()
	}
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
		if col, ok := healthColumn[table]; ok {
			// The verdicts go too (the cascade would, without events).
			if err := clearEndpointHealth(tx, col, id); err != nil {
				return err
			}
		}
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
