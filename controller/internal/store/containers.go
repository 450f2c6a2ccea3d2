package store

import (
	"context"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

var containers = &kind[openapi.Container]{
	name:   "container",
	alias:  "x",
	scoped: true,
	hosted: true,
	from: `SELECT x.id::text, x.name, n.name, h.name, x.labels, host(x.ip), x.mac::text, x.netns, x.status, x.status_detail,
	        x.revision, x.created_at, x.updated_at, host(n.gateway), x.publish, coalesce(x.ip_block::text, '')
	       FROM containers x JOIN networks n ON n.id = x.network_id JOIN hosts h ON h.id = x.host_id`,
	scan: func(r pgx.Row) (openapi.Container, error) {
		var c openapi.Container
		var gw *string
		err := r.Scan(&c.ID, &c.Name, &c.Network, &c.Host, &c.Labels, &c.IP, &c.MAC, &c.Netns, &c.Status, &c.StatusDetail,
			&c.Revision, &c.CreatedAt, &c.UpdatedAt, &gw, &c.Publish, &c.IPBlock)
		if err == nil && gw != nil {
			c.DNS = &openapi.ContainerDNS{Nameservers: []string{*gw}} // Search: Store.withDNS
		}
		return c, err
	},
	key:     func(c *openapi.Container) (string, string) { return c.Name, c.ID },
	meta:    func(c *openapi.Container) *openapi.Meta { return &c.Meta },
	network: func(c *openapi.Container) string { return c.Network },
}

// ListContainers returns one page of containers.
func (s *Store) ListContainers(ctx context.Context, o ListOptions) ([]openapi.Container, string, error) {
	cs, next, err := containers.list(ctx, s.Pool, o)
	for i := range cs {
		s.withDNS(&cs[i])
	}
	return cs, next, err
}

// withDNS completes c's resolver configuration with the search list of its
// network under the store's DNS domain.
func (s *Store) withDNS(c *openapi.Container) *openapi.Container {
	if c.DNS != nil {
		c.DNS.Search = []string{c.Network + "." + s.opts.DNSDomain, s.opts.DNSDomain}
	}
	return c
}

// GetContainer resolves a container by id, or by name within network ("" = any).
func (s *Store) GetContainer(ctx context.Context, ref, network string) (openapi.Container, error) {
	c, err := containers.get(ctx, s.Pool, ref, network, false)
	return *s.withDNS(&c), err
}

func validateContainer(c *openapi.Container) error {
	if err := checkName("name", c.Name); err != nil {
		return err
	}
	if c.Network == "" {
		return problem.Invalid("network", "network is required")
	}
	if c.Host == "" {
		return problem.Invalid("host", "host is required")
	}
	if c.IP != "" {
		if _, err := parseIPv4("ip", c.IP); err != nil {
			return err
		}
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	if err := checkLabels("labels", c.Labels); err != nil {
		return err
	}
	if err := validatePublish(c); err != nil {
		return err
	}
	return checkNetnsPath("netns", c.Netns)
}

// netRow is what IPAM needs of a network, read under its row lock, with the
// host's id and address and the transaction's time.
type netRow struct {
	id       string
	name     string
	cidr     netip.Prefix
	gw       netip.Addr
	cursor   int64
	hostID   *string
	hostAddr string
	now      time.Time
}

// lockNetwork reads a network by name and locks its row: container creates
// in one network are serialized here, which makes allocation race-free. It
// also resolves host, in the same round trip.
func lockNetwork(tx *Tx, name, host string) (netRow, error) {
	n := netRow{name: name}
	var cidr, gw string
	var hostAddr *string
	err := tx.QueryRow(tx.ctx, `SELECT id::text, cidr::text, host(gateway), ipam_cursor,
		(SELECT id::text FROM hosts WHERE name = $2), (SELECT host(address) FROM hosts WHERE name = $2), now()
		FROM networks WHERE name = $1 FOR UPDATE`, name, host).
		Scan(&n.id, &cidr, &gw, &n.cursor, &n.hostID, &hostAddr, &n.now)
	if err == pgx.ErrNoRows {
		return n, problem.Unresolvable("network", "network %q does not exist", name)
	}
	if err != nil {
		return n, err
	}
	if n.hostID == nil || hostAddr == nil {
		return n, problem.Unresolvable("host", "host %q does not exist", host)
	}
	n.hostAddr = *hostAddr
	n.cidr = netip.MustParsePrefix(cidr)
	n.gw = netip.MustParseAddr(gw)
	return n, nil
}

// allocate picks the address offset for a new container on n's host, and
// the block of the host it is in ("" when borrowed; see ipamblocks.go).
// Without a requested address: the first free one in the host's blocks
// (next-fit from the network's cursor), else in a block the host claims,
// else any free one, borrowed (next fit). Each is read from the network's
// free list (see ipam.go), so a create costs the same however full or
// fragmented the network is. A requested address must be free; its block
// is the host's (claimed when nobody's) or borrowed from another host. The
// MAC follows from the address (macFor): nothing to search.
func allocate(tx *Tx, n netRow, want string) (int64, string, error) {
	last := size(n.cidr) - 2 // the broadcast address is last+1
	gwOff := addrOffset(n.cidr, n.gw)
	if want != "" {
		a := netip.MustParseAddr(want)
		off := addrOffset(n.cidr, a)
		if !n.cidr.Contains(a) || off == 0 || off > last {
			return 0, "", problem.Invalid("ip", "%s is not a usable address of %s", a, n.cidr)
		}
		if off == gwOff {
			return 0, "", problem.Conflict("ip", "%s is the network's gateway", a)
		}
		if taken, err := exists(tx.ctx, tx, `SELECT 1 FROM containers WHERE network_id = $1 AND ip_offset = $2`, n.id, off); err != nil {
			return 0, "", err
		} else if taken {
			return 0, "", problem.Conflict("ip", "%s is already in use", a)
		}
		block, err := claimBlock(tx, n.name, a.String(), *n.hostID)
		return off, block, err
	}
	// The pool holds no network, gateway or broadcast offset.
	off, block, ok, err := allocBlock(tx, n)
	if err != nil || ok {
		return off, block, err
	}
	return 0, "", problem.Exhausted("network", "network %s is full: all %d addresses of %s are in use", n.name, size(n.cidr)-3, n.cidr)
}

// CreateContainer validates and stores a container, allocating its address
// and MAC in the same transaction.
func (s *Store) CreateContainer(ctx context.Context, actor string, c openapi.Container) (openapi.Container, error) {
	if err := validateContainer(&c); err != nil {
		return c, err
	}
	var out openapi.Container
	rev, err := s.Write(ctx, actor, func(tx *Tx) error {
		n, err := lockNetwork(tx, c.Network, c.Host)
		if err != nil {
			return err
		}
		if err := checkContainerPorts(tx, &c, *n.hostID, n.hostAddr, ""); err != nil {
			return err
		}
		off, block, err := allocate(tx, n, c.IP)
		if err != nil {
			return err
		}
		ip := offsetAddr(n.cidr, off)
		out = openapi.Container{Meta: openapi.Meta{ID: uuid.NewString(), CreatedAt: n.now, UpdatedAt: n.now},
			Name: c.Name, Network: c.Network, Host: c.Host, Labels: c.Labels, IP: ip.String(), MAC: macFor(ip),
			IPBlock: block, Netns: c.Netns, Status: openapi.ContainerPending,
			DNS: &openapi.ContainerDNS{Nameservers: []string{n.gw.String()}}, Publish: c.Publish}
		s.withDNS(&out)
		// Everything from here goes in the commit batch: one round trip.
		tx.Queue(`INSERT INTO containers (id, name, network_id, host_id, labels, ip, ip_offset, mac, netns, revision, created_at, updated_at,
				publish, ip_block)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, `+currentRev+`, $10, $10, $11, NULLIF($12::text, '')::cidr)`,
			out.ID, c.Name, n.id, *n.hostID, c.Labels, out.IP, off, out.MAC, c.Netns, n.now, jsonOrNull(c.Publish), block)
		tx.Queue(`UPDATE networks SET ipam_cursor = $2 WHERE id = $1`, n.id, off+1)
		return tx.Record("container", openapi.EventCreated, out.ID, out.Name, out.Network, out)
	})
	out.Revision = rev
	return out, err
}

// UpdateContainer replaces a container's labels, host, netns and published
// ports. Name, network, ip and mac cannot change. A new host is a move.
func (s *Store) UpdateContainer(ctx context.Context, actor, ref, network string, ifMatch int64, c openapi.Container) (openapi.Container, error) {
	var out openapi.Container
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := containers.getForWrite(ctx, tx, ref, network, ifMatch)
		if err != nil {
			return err
		}
		if err := immutable("name", cur.Name, c.Name, "network", cur.Network, c.Network, "ip", cur.IP, c.IP, "mac", cur.MAC, c.MAC); err != nil {
			return err
		}
		c.Name, c.Network, c.IP = cur.Name, cur.Network, cur.IP
		if c.Host == "" {
			c.Host = cur.Host
		}
		if err := validateContainer(&c); err != nil {
			return err
		}
		out, err = s.setContainer(tx, cur, c)
		return err
	})
	return out, err
}

// MoveContainer places a container on another host; its address, MAC and
// published ports stay (see setContainer).
func (s *Store) MoveContainer(ctx context.Context, actor, ref, network, host string) (openapi.Container, error) {
	var out openapi.Container
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		cur, err := containers.get(ctx, tx, ref, network, true)
		if err != nil {
			return err
		}
		if host == "" {
			return problem.Invalid("host", "host is required")
		}
		c := cur
		c.Host = host
		out, err = s.setContainer(tx, cur, c)
		return err
	})
	return out, err
}

// setContainer writes the mutable fields of c over cur. On a move, the
// published ports follow the container: a hostIP naming the old host's
// address names the new one's, and the ports must be free on the new host
// (409, nothing written); its address block is the new host's when that
// host owns the address's block or claims it (nobody's), else borrowed.
func (s *Store) setContainer(tx *Tx, cur, c openapi.Container) (openapi.Container, error) {
	hid, addr, oldAddr, err := hostAddrs(tx, c.Host, cur.Host)
	if err != nil {
		return c, err
	}
	followMove(&c, oldAddr, addr)
	if err := checkContainerPorts(tx, &c, hid, addr, cur.ID); err != nil {
		return c, err
	}
	status, detail := cur.Status, cur.StatusDetail
	if c.Host != cur.Host || c.Netns != cur.Netns {
		status, detail = openapi.ContainerPending, ""
	}
	block := cur.IPBlock
	if c.Host != cur.Host {
		if block, err = claimBlock(tx, cur.Network, cur.IP, hid); err != nil {
			return c, err
		}
	}
	rev, err := tx.Rev()
	if err != nil {
		return c, err
	}
	if _, err := tx.Exec(tx.ctx, `UPDATE containers SET host_id = $2, labels = $3, netns = $4, status = $5, status_detail = $6,
		revision = $7, updated_at = now(), publish = $8, ip_block = NULLIF($9::text, '')::cidr WHERE id = $1`,
		cur.ID, hid, c.Labels, c.Netns, status, detail, rev, jsonOrNull(c.Publish), block); err != nil {
		return c, err
	}
	out, err := containers.get(tx.ctx, tx, cur.ID, "", false)
	s.withDNS(&out)
	if err != nil {
		return out, err
	}
	return out, tx.Record("container", openapi.EventUpdated, out.ID, out.Name, out.Network, out)
}

// DeleteContainer removes a container and releases its address.
func (s *Store) DeleteContainer(ctx context.Context, actor, ref, network string, ifMatch int64) (int64, error) {
	return deleteScoped(ctx, s, actor, containers, "containers", ref, network, ifMatch)
}

// hostAddrs resolves host name to its id and address, and returns the
// address of host old too ("" when gone).
func hostAddrs(tx *Tx, name, old string) (id, addr, oldAddr string, err error) {
	var o *string
	err = tx.QueryRow(tx.ctx, `SELECT id::text, host(address), (SELECT host(address) FROM hosts WHERE name = $2)
		FROM hosts WHERE name = $1`, name, old).Scan(&id, &addr, &o)
	if err == pgx.ErrNoRows {
		return "", "", "", problem.Unresolvable("host", "host %q does not exist", name)
	}
	if o != nil {
		oldAddr = *o
	}
	return id, addr, oldAddr, err
}
