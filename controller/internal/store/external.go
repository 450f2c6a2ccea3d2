package store

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// External access (docs/external-api.md): containers' published ports,
// services' node ports and networks' egress IPs. What one object says alone
// is validated before its write; conflicts with other objects are checked
// inside the write that claims the port or address. Every write group holds
// the revision row lock from its start to its commit (runGroup), on every
// replica, so no other write commits between the check and this write's
// commit: two claims of one port cannot both land.

// reservedUse names what the agent uses each of openapi.ReservedPorts for.
var reservedUse = map[int]string{4789: "VXLAN tunnels", 6081: "Geneve tunnels", 9464: "the agent's metrics"}

// checkExternalPort validates a port published on hosts' addresses (a
// container's hostPort, a service's nodePort).
func checkExternalPort(field string, p int) error {
	if err := checkPort(field, p); err != nil {
		return err
	}
	if p < openapi.MinExternalPort {
		return problem.Invalid(field, "port %d: ports below %d are privileged and not published", p, openapi.MinExternalPort)
	}
	if slices.Contains(openapi.ReservedPorts, p) {
		use := reservedUse[p]
		if use == "" {
			use = "its own use"
		}
		return problem.Invalid(field, "port %d is reserved: the agent uses it for %s", p, use)
	}
	return nil
}

// validatePublish checks and normalizes a container's published ports
// (protocol upper case, TCP by default; none is nil). That a hostIP is the
// host's address is checked in the write (checkHostIPs).
func validatePublish(c *openapi.Container) error {
	if len(c.Publish) == 0 {
		c.Publish = nil
		return nil
	}
	if len(c.Publish) > openapi.MaxPublishedPorts {
		return problem.Invalid("publish", "a container publishes at most %d ports, not %d", openapi.MaxPublishedPorts, len(c.Publish))
	}
	seen := map[string]bool{}
	for i := range c.Publish {
		p := &c.Publish[i]
		field := fmt.Sprintf("publish[%d]", i)
		if err := checkExternalPort(field+".hostPort", p.HostPort); err != nil {
			return err
		}
		if err := checkPort(field+".port", p.Port); err != nil {
			return err
		}
		proto, err := normProtocol(field+".protocol", p.Protocol, "TCP", "UDP")
		if err != nil {
			return err
		}
		p.Protocol = proto
		if p.HostIP != "" {
			if _, err := parseIPv4(field+".hostIP", p.HostIP); err != nil {
				return err
			}
		}
		key := fmt.Sprint(p.HostPort, "/", p.Protocol)
		if seen[key] {
			return problem.Invalid(field+".hostPort", "hostPort %s is published twice", key)
		}
		seen[key] = true
	}
	return nil
}

// checkHostIPs refuses a published port whose hostIP is not the address
// of the container's host.
func checkHostIPs(c *openapi.Container, hostAddr string) error {
	for i, p := range c.Publish {
		if p.HostIP != "" && p.HostIP != hostAddr {
			return problem.Invalid(fmt.Sprintf("publish[%d].hostIP", i),
				"hostIP %s is not the address of host %s (%s): leave it out to publish on any of the host's addresses", p.HostIP, c.Host, hostAddr)
		}
	}
	return nil
}

// followMove rewrites the hostIPs of c's published ports that name the
// address of the host it leaves (from) to the one it goes to (to): the
// publication follows the container.
func followMove(c *openapi.Container, from, to string) {
	if from == to || from == "" {
		return
	}
	c.Publish = slices.Clone(c.Publish)
	for i := range c.Publish {
		if c.Publish[i].HostIP == from {
			c.Publish[i].HostIP = to
		}
	}
}

// validateNodePorts checks a service's node ports (ports were normalized
// by validatePorts) and its external traffic policy.
func validateNodePorts(v *openapi.Service) error {
	seen := map[string]bool{}
	for i, p := range v.Ports {
		if p.NodePort == 0 {
			continue
		}
		field := fmt.Sprintf("ports[%d].nodePort", i)
		if err := checkExternalPort(field, p.NodePort); err != nil {
			return err
		}
		if p.Protocol != "TCP" && p.Protocol != "UDP" {
			return problem.Invalid(field, "node ports are TCP or UDP, not %s", p.Protocol)
		}
		key := fmt.Sprint(p.NodePort, "/", p.Protocol)
		if seen[key] {
			return problem.Invalid(field, "nodePort %s is used twice", key)
		}
		seen[key] = true
	}
	switch v.ExternalTrafficPolicy {
	case "":
		v.ExternalTrafficPolicy = openapi.TrafficCluster
	case openapi.TrafficCluster, openapi.TrafficLocal:
	default:
		return problem.Invalid("externalTrafficPolicy", "unknown external traffic policy %q: use %s or %s",
			v.ExternalTrafficPolicy, openapi.TrafficCluster, openapi.TrafficLocal)
	}
	return nil
}

// portClaim is one (port, protocol) an object claims on hosts' addresses,
// with the field that asks for it.
type portClaim struct {
	port  int
	proto string
	field string
}

// portHolderSQL finds, for each claim ($1 ports, $2 protocols), the first
// object already holding it: a container publishing it (on host $3, or on
// any host when $3 is NULL; never container $4) or a service with it as a
// node port (never service $5). Both lookups are containment queries on
// the jsonb GIN indexes of migration 00007.
const portHolderSQL = `SELECT q.i, x.container, x.holder, x.host
	FROM unnest($1::int[], $2::text[]) WITH ORDINALITY AS q(port, proto, i)
	CROSS JOIN LATERAL (
		SELECT true AS container, n.name || '/' || c.name AS holder, h.name AS host
		FROM containers c JOIN networks n ON n.id = c.network_id JOIN hosts h ON h.id = c.host_id
		WHERE c.publish @> jsonb_build_array(jsonb_build_object('hostPort', q.port, 'protocol', q.proto))
		  AND ($3::uuid IS NULL OR c.host_id = $3::uuid) AND c.id IS DISTINCT FROM $4::uuid
		UNION ALL
		SELECT false, n.name || '/' || s.name, ''
		FROM services s JOIN networks n ON n.id = s.network_id
		WHERE s.ports @> jsonb_build_array(jsonb_build_object('nodePort', q.port, 'protocol', q.proto))
		  AND s.id IS DISTINCT FROM $5::uuid
	) x
	ORDER BY q.i, x.container DESC, x.holder LIMIT 1`

// checkPortClaims refuses (409, naming the claim's field and the holder)
// the first claim another object holds. A container's claims (hostID set,
// the container's own id in self) clash with containers on that host and
// with every service's node ports; a service's claims (hostID nil, its id
// in selfService) clash with every host's published ports and the other
// services' node ports.
func checkPortClaims(tx *Tx, claims []portClaim, hostID, hostName, self, selfService *string) error {
	if len(claims) == 0 {
		return nil
	}
	ports, protos := make([]int32, len(claims)), make([]string, len(claims))
	for i, c := range claims {
		ports[i], protos[i] = int32(c.port), c.proto
	}
	var i int
	var isContainer bool
	var holder, holderHost string
	err := tx.QueryRow(tx.ctx, portHolderSQL, ports, protos, hostID, self, selfService).Scan(&i, &isContainer, &holder, &holderHost)
	if err == pgx.ErrNoRows {
		return nil
	}
	if err != nil {
		return err
	}
	c := claims[i-1]
	what := "node port of service " + holder
	if isContainer {
		what = "published by container " + holder
	}
	if hostName != nil {
		return problem.Conflict(c.field, "hostPort %d/%s on host %s is %s", c.port, c.proto, *hostName, what)
	}
	if isContainer {
		what += " on host " + holderHost
	}
	return problem.Conflict(c.field, "nodePort %d/%s is %s", c.port, c.proto, what)
}

// publishClaims are the claims of a container's published ports.
func publishClaims(c *openapi.Container) []portClaim {
	out := make([]portClaim, len(c.Publish))
	for i, p := range c.Publish {
		out[i] = portClaim{port: p.HostPort, proto: p.Protocol, field: fmt.Sprintf("publish[%d].hostPort", i)}
	}
	return out
}

// nodePortClaims are the claims of a service's node ports.
func nodePortClaims(v *openapi.Service) []portClaim {
	var out []portClaim
	for i, p := range v.Ports {
		if p.NodePort != 0 {
			out = append(out, portClaim{port: p.NodePort, proto: p.Protocol, field: fmt.Sprintf("ports[%d].nodePort", i)})
		}
	}
	return out
}

// checkContainerPorts checks c's published ports on its host (id hostID,
// address hostAddr): each hostIP is the host's address, and no other
// object holds one of them. self is c's id ("" on create).
func checkContainerPorts(tx *Tx, c *openapi.Container, hostID, hostAddr, self string) error {
	if err := checkHostIPs(c, hostAddr); err != nil {
		return err
	}
	return checkPortClaims(tx, publishClaims(c), &hostID, &c.Host, nullable(self), nil)
}

// nullable is s, or nil (SQL NULL) when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// validateEgressIP checks what a network's egress IP can be alone: an
// IPv4 unicast address outside the service range.
func (s *Store) validateEgressIP(n *openapi.Network) error {
	if n.EgressIP == "" {
		return nil
	}
	a, err := parseIPv4("egressIP", n.EgressIP)
	if err != nil {
		return err
	}
	if !a.IsGlobalUnicast() {
		return problem.Invalid("egressIP", "%s is not a unicast address a host can hold", a)
	}
	n.EgressIP = a.String()
	if s.opts.ServiceCIDR.Contains(a) {
		return problem.Conflict("egressIP", "egressIP %s is inside the service range %s", a, s.opts.ServiceCIDR)
	}
	return nil
}

// egressHolderSQL finds what an egress IP ($1) would clash with, other
// than network $2: the network whose CIDR holds it (kind 'cidr'), the
// network with that egress IP ('egress'), the host with that address
// ('host').
const egressHolderSQL = `SELECT kind, name, addr FROM (
		SELECT 'cidr' AS kind, name, cidr::text AS addr FROM networks WHERE cidr >>= $1::inet AND id IS DISTINCT FROM $2::uuid

		UNION ALL
		SELECT 'egress', name, host(egress_ip) FROM networks WHERE egress_ip = $1::inet AND id IS DISTINCT FROM $2::uuid
		UNION ALL
		SELECT 'host', name, host(address) FROM hosts WHERE address = $1::inet
	) x ORDER BY kind, name LIMIT 1`

// checkEgress refuses (409 naming the holder) a network's egress IP that
// another network's CIDR holds, another network or a host has, or that its
// own CIDR holds; and a CIDR that holds another network's egress IP. self
// is the network's id ("" on create).
func checkEgress(tx *Tx, n *openapi.Network, cidr netip.Prefix, self string) error {
	if n.EgressIP != "" {
		a := netip.MustParseAddr(n.EgressIP)
		if cidr.Contains(a) {
			return problem.Conflict("egressIP", "egressIP %s is inside the network's own CIDR %s", a, cidr)
		}
		var kind, name, addr string
		err := tx.QueryRow(tx.ctx, egressHolderSQL, n.EgressIP, nullable(self)).Scan(&kind, &name, &addr)
		switch {
		case err == pgx.ErrNoRows:
		case err != nil:
			return err
		case kind == "cidr":
			return problem.Conflict("egressIP", "egressIP %s is inside the CIDR %s of network %s", a, addr, name)
		case kind == "egress":
			return problem.Conflict("egressIP", "egressIP %s is the egress IP of network %s", a, name)
		default:
			return problem.Conflict("egressIP", "egressIP %s is the address of host %s", a, name)
		}
	}
	if self != "" {
		return nil // the CIDR cannot change
	}
	var name, addr string
	err := tx.QueryRow(tx.ctx, `SELECT name, host(egress_ip) FROM networks WHERE egress_ip <<= $1::inet ORDER BY name LIMIT 1`,
		cidr.String()).Scan(&name, &addr)
	switch {
	case err == pgx.ErrNoRows:
		return nil
	case err != nil:
		return err
	}
	return problem.Conflict("cidr", "%s holds %s, the egress IP of network %s", cidr, addr, name)
}

// checkHostAddress refuses a host address that is a network's egress IP.
func checkHostAddress(tx *Tx, addr string) error {
	var name string
	err := tx.QueryRow(tx.ctx, `SELECT name FROM networks WHERE egress_ip = $1::inet`, addr).Scan(&name)
	switch {
	case err == pgx.ErrNoRows:
		return nil
	case err != nil:
		return err
	}
	return problem.Conflict("address", "address %s is the egress IP of network %s", addr, name)
}

// followHostAddress rewrites the hostIP of the ports published on host
// (id) from its old address to its new one, with an updated event for
// each container it changes: the publications stay the host's.
func (s *Store) followHostAddress(tx *Tx, hostID, from, to string) error {
	rev, err := tx.Rev()
	if err != nil {
		return err
	}
	rows, err := tx.Query(tx.ctx, `UPDATE containers c SET revision = $4, updated_at = now(), publish = (
			SELECT jsonb_agg(CASE WHEN p->>'hostIP' = $2 THEN jsonb_set(p, '{hostIP}', to_jsonb($3::text)) ELSE p END ORDER BY i)
			FROM jsonb_array_elements(c.publish) WITH ORDINALITY AS e(p, i))
		WHERE c.host_id = $1::uuid AND c.publish @> jsonb_build_array(jsonb_build_object('hostIP', $2::text))
		RETURNING c.id::text`, hostID, from, to, rev)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		c, err := containers.get(tx.ctx, tx, id, "", false)
		if err != nil {
			return err
		}
		s.withDNS(&c)
		if err := tx.Record("container", openapi.EventUpdated, c.ID, c.Name, c.Network, c); err != nil {
			return err
		}
	}
	return nil
}
