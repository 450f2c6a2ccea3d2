package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// newHostKind describes hosts. Their status is the stored readiness
// (readiness.go): what the compiler saw in the host's last event.
func newHostKind() *kind[openapi.Host] {
	return &kind[openapi.Host]{
		name:  "host",
		alias: "x",
		from: `SELECT x.id::text, x.name, host(x.address), x.tunnel_type, x.labels, x.last_seen, x.applied_revision,
		        x.revision, x.created_at, x.updated_at, x.ready, x.agent_version FROM hosts x`,
		scan: func(r pgx.Row) (openapi.Host, error) {
			var h openapi.Host
			var ready bool
			err := r.Scan(&h.ID, &h.Name, &h.Address, &h.TunnelType, &h.Labels, &h.LastSeen, &h.AppliedRevision,
				&h.Revision, &h.CreatedAt, &h.UpdatedAt, &ready, &h.AgentVersion)
			h.Status = openapi.HostNotReady
			if ready {
				h.Status = openapi.HostReady
			}
			return h, err
		},
		key:  func(h *openapi.Host) (string, string) { return h.Name, h.ID },
		meta: func(h *openapi.Host) *openapi.Meta { return &h.Meta },
	}
}

// ListHosts returns one page of hosts.
func (s *Store) ListHosts(ctx context.Context, o ListOptions) ([]openapi.Host, string, error) {
	return s.hosts.list(ctx, s.Pool, o)
}

// GetHost resolves a host by name or id.
func (s *Store) GetHost(ctx context.Context, ref string) (openapi.Host, error) {
	return s.hosts.get(ctx, s.Pool, ref, "", false)
}

func validateHost(h *openapi.Host) error {
	if err := checkName("name", h.Name); err != nil {
		return err
	}
	if h.Address == "" {
		return problem.Invalid("address", "address is required")
	}
	if _, err := parseIPv4("address", h.Address); err != nil {
		return err
	}
	switch h.TunnelType {
	case "":
		h.TunnelType = openapi.TunnelGeneve
	case openapi.TunnelGeneve, openapi.TunnelVXLAN:
	default:
		return problem.Invalid("tunnelType", "unknown tunnel type %q: use geneve or vxlan", h.TunnelType)
	}
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	return checkLabels("labels", h.Labels)
}

// CreateHost validates and stores a host.
func (s *Store) CreateHost(ctx context.Context, actor string, h openapi.Host) (openapi.Host, error) {
	if err := validateHost(&h); err != nil {
		return h, err
	}
	var out openapi.Host
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		var err error
		out, err = s.insertHost(tx, h)
		return err
	})
	return out, err
}

func (s *Store) insertHost(tx *Tx, h openapi.Host) (openapi.Host, error) {
	if err := checkHostAddress(tx, h.Address); err != nil {
		return h, err
	}
	rev, err := tx.Rev()
	if err != nil {
		return h, err
	}
	var id string
	if err := tx.QueryRow(tx.ctx, `INSERT INTO hosts (name, address, tunnel_type, labels, revision, agent_version) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text`,
		h.Name, h.Address, h.TunnelType, h.Labels, rev, h.AgentVersion).Scan(&id); err != nil {
		return h, err
	}
	out, err := s.hosts.get(tx.ctx, tx, id, "", false)
	if err != nil {
		return out, err
	}
	return out, tx.Record("host", openapi.EventCreated, out.ID, out.Name, "", out)
}

// UpdateHost replaces a host's address, tunnel type and labels.
func (s *Store) UpdateHost(ctx context.Context, actor, ref string, ifMatch int64, h openapi.Host) (openapi.Host, error) {
	var out openapi.Host
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := s.hosts.getForWrite(ctx, tx, ref, "", ifMatch)
		if err != nil {
			return err
		}
		h.AgentVersion = cur.AgentVersion // the agent's to say (RegisterHost)
		out, err = s.updateHost(tx, cur, h)
		return err
	})
	return out, err
}

func (s *Store) updateHost(tx *Tx, cur, h openapi.Host) (openapi.Host, error) {
	if h.Name == "" {
		h.Name = cur.Name
	}
	if h.Name != cur.Name {
		return h, problem.Invalid("name", "a host cannot be renamed (it is %s)", cur.Name)
	}
	if h.Address == "" {
		h.Address = cur.Address
	}
	if err := validateHost(&h); err != nil {
		return h, err
	}
	if h.Address != cur.Address {
		if err := checkHostAddress(tx, h.Address); err != nil {
			return h, err
		}
	}
	rev, err := tx.Rev()
	if err != nil {
		return h, err
	}
	if _, err := tx.Exec(tx.ctx, `UPDATE hosts SET address = $2, tunnel_type = $3, labels = $4, revision = $5, agent_version = $6, updated_at = now() WHERE id = $1`,
		cur.ID, h.Address, h.TunnelType, h.Labels, rev, h.AgentVersion); err != nil {
		return h, err
	}
	if h.Address != cur.Address {
		// The ports published on the host's address follow it.
		if err := s.followHostAddress(tx, cur.ID, cur.Address, h.Address); err != nil {
			return h, err
		}
	}
	out, err := s.hosts.get(tx.ctx, tx, cur.ID, "", false)
	if err != nil {
		return out, err
	}
	return out, tx.Record("host", openapi.EventUpdated, out.ID, out.Name, "", out)
}

// DeleteHost removes a host that has no containers left. Its IPAM blocks
// go with it (ON DELETE CASCADE), free to be claimed again: no container
// is in a block of a host it is not on (see ipamblocks.go).
func (s *Store) DeleteHost(ctx context.Context, actor, ref string, ifMatch int64) (int64, error) {
	return s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := s.hosts.getForWrite(ctx, tx, ref, "", ifMatch)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM containers WHERE host_id = $1`, cur.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return problem.Conflict("name", "host %s still has %d containers: move or delete them first", cur.Name, n)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM hosts WHERE id = $1`, cur.ID); err != nil {
			return err
		}
		return tx.Record("host", openapi.EventDeleted, cur.ID, cur.Name, "", cur)
	})
}

// RegisterHost creates the named host or updates its address, tunnel type
// and agent version, as the node agent asks when it starts. Labels are kept.
func (s *Store) RegisterHost(ctx context.Context, actor, name string, reg openapi.NodeRegistration) (openapi.Host, error) {
	h := openapi.Host{Name: name, Address: reg.Address, TunnelType: reg.TunnelType, AgentVersion: reg.AgentVersion}
	if err := validateHost(&h); err != nil {
		return h, err
	}
	if len(h.AgentVersion) > 128 {
		return h, problem.Invalid("agentVersion", "agentVersion is at most 128 characters")
	}
	var out openapi.Host
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := s.hosts.get(ctx, tx, name, "", true)
		if IsNotFound(err) {
			out, err = s.insertHost(tx, h)
			return err
		}
		if err != nil {
			return err
		}
		if cur.Address == h.Address && cur.TunnelType == h.TunnelType && cur.AgentVersion == h.AgentVersion {
			out = cur
			return nil
		}
		h.Labels = cur.Labels
		out, err = s.updateHost(tx, cur, h)
		return err
	})
	return out, err
}
