package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/service"
	"github.com/switchyard/switchyard/openapi"
)

// Endpoint health: the verdicts of the agents' health checks on services'
// backends (table endpoint_health, migration 00006). A backend without a row
// is healthy. Every change of a row is a write with an "endpoint" event
// (ID "<service id>/<container id>", the container's name, the service's
// network, an openapi.EndpointHealth), so the compiler follows them like
// any other change. Reports are heartbeats: a report equal to the host's
// last one costs nothing (healthCache), and one that differs in nothing
// stored costs one read.

// EndpointKind is the event kind of endpoint health changes.
const EndpointKind = "endpoint"

// healthRecheck bounds how long a host's last report is trusted to match
// the store (a health check changed through another replica drops rows
// this one does not hear of).
const healthRecheck = 10 * time.Second

// healthColumn names the endpoint_health column that refers to the
// objects of a table whose deletes drop the verdicts on them.
var healthColumn = map[string]string{"services": "service_id", "containers": "container_id"}

// healthCache remembers each host's last report that matched the store.
type healthCache struct {
	mu   sync.Mutex
	last map[string]healthSum
}

type healthSum struct {
	sum [sha256.Size]byte
	at  time.Time
}

func (c *healthCache) same(host string, sum [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.last[host]
	return ok && l.sum == sum && time.Since(l.at) < healthRecheck
}

func (c *healthCache) set(host string, sum [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]healthSum{}
	}
	c.last[host] = healthSum{sum: sum, at: time.Now()}
}

func (c *healthCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.last)
}

// checkEndpoints validates the endpoints of a report.
func checkEndpoints(eps []openapi.EndpointHealth) error {
	if len(eps) > openapi.MaxEndpoints {
		return problem.Invalid("endpoints", "endpoints has %d entries, at most %d are taken", len(eps), openapi.MaxEndpoints)
	}
	for i, e := range eps {
		f := fmt.Sprintf("endpoints[%d]", i)
		if !isUUID(e.Service) {
			return problem.Invalid(f+".service", "service must be a service id")
		}
		if !isUUID(e.Container) {
			return problem.Invalid(f+".container", "container must be a container id")
		}
	}
	return nil
}

// healthChange is one row a report changes, with what its event names.
type healthChange struct {
	openapi.EndpointHealth
	containerName, network string
	existed                bool
}

// healthDiffSQL returns the entries of a report ($2..$5 as arrays) that
// differ from the stored verdicts: of containers on host $1, of services
// with a health check in the container's network. Only the verdict counts:
// the reason is kept as of the last change of verdict.
const healthDiffSQL = `SELECT r.svc::text, r.ctr::text, r.healthy, r.reason, c.name, n.name, e.healthy IS NOT NULL
	FROM unnest($2::uuid[], $3::uuid[], $4::bool[], $5::text[]) AS r(svc, ctr, healthy, reason)
	JOIN containers c ON c.id = r.ctr
	JOIN hosts h ON h.id = c.host_id AND h.name = $1
	JOIN services s ON s.id = r.svc AND s.network_id = c.network_id AND s.health_check IS NOT NULL
	JOIN networks n ON n.id = s.network_id
	LEFT JOIN endpoint_health e ON e.service_id = r.svc AND e.container_id = r.ctr
	WHERE e.healthy IS DISTINCT FROM r.healthy`

func healthDiff(ctx context.Context, q Querier, host string, eps []openapi.EndpointHealth) ([]healthChange, error) {
	svcs, ctrs := make([]string, len(eps)), make([]string, len(eps))
	healthy, reasons := make([]bool, len(eps)), make([]string, len(eps))
	for i, e := range eps {
		svcs[i], ctrs[i], healthy[i], reasons[i] = e.Service, e.Container, e.Healthy, e.Reason
	}
	rows, err := q.Query(ctx, healthDiffSQL, host, svcs, ctrs, healthy, reasons)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (healthChange, error) {
		var c healthChange
		err := r.Scan(&c.Service, &c.Container, &c.Healthy, &c.Reason, &c.containerName, &c.network, &c.existed)
		c.Host = host
		return c, err
	})
}

// ReportEndpointHealth records the verdicts a host's agent reports: only
// those of containers on that host, of services that have a health check,
// and only those that differ from the stored ones, in one write with an
// event per changed row. A report like the host's last costs nothing.
func (s *Store) ReportEndpointHealth(ctx context.Context, host string, eps []openapi.EndpointHealth) error {
	if len(eps) == 0 {
		return nil
	}
	if err := checkEndpoints(eps); err != nil {
		return err
	}
	// The last entry of a key wins.
	byKey := make(map[[2]string]int, len(eps))
	uniq := make([]openapi.EndpointHealth, 0, len(eps))
	for _, e := range eps {
		k := [2]string{e.Service, e.Container}
		if i, ok := byKey[k]; ok {
			uniq[i] = e
			continue
		}
		byKey[k] = len(uniq)
		uniq = append(uniq, e)
	}
	slices.SortFunc(uniq, func(a, b openapi.EndpointHealth) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Container, b.Container))
	})
	h := sha256.New()
	for _, e := range uniq {
		fmt.Fprintf(h, "%s/%s/%t\n", e.Service, e.Container, e.Healthy)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if s.health.same(host, sum) {
		return nil
	}
	// A read first, outside the writer: most reports change nothing.
	changes, err := healthDiff(ctx, s.Pool, host, uniq)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		_, err = s.Write(ctx, "node:"+host, func(tx *Tx) error {
			// Again under the write's locks: the rows may have moved.
			changes, err := healthDiff(tx.ctx, tx, host, uniq)
			if err != nil || len(changes) == 0 {
				return err
			}
			return writeHealth(tx, changes)
		})
		if err != nil {
			return err
		}
	}
	s.health.set(host, sum)
	return nil
}

// writeHealth stores changed verdicts with their events.
func writeHealth(tx *Tx, changes []healthChange) error {
	svcs, ctrs := make([]string, len(changes)), make([]string, len(changes))
	healthy, reasons := make([]bool, len(changes)), make([]string, len(changes))
	for i, c := range changes {
		svcs[i], ctrs[i], healthy[i], reasons[i] = c.Service, c.Container, c.Healthy, c.Reason
	}
	tx.Queue(`INSERT INTO endpoint_health (service_id, container_id, healthy, reason)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bool[], $4::text[])
		ON CONFLICT (service_id, container_id) DO UPDATE
		SET healthy = excluded.healthy, reason = excluded.reason, updated_at = now()`, svcs, ctrs, healthy, reasons)
	for _, c := range changes {
		action := openapi.EventCreated
		if c.existed {
			action = openapi.EventUpdated
		}
		if err := tx.Event(EndpointKind, action, c.Service+"/"+c.Container, c.containerName, c.network, c.EndpointHealth); err != nil {
			return err
		}
	}
	return nil
}

// clearEndpointHealth deletes the verdicts whose column col (service_id or
// container_id) is id, with a deleted event each.
func clearEndpointHealth(tx *Tx, col, id string) error {
	rows, err := tx.Query(tx.ctx, `DELETE FROM endpoint_health e USING containers c, hosts h, services s, networks n
		WHERE e.`+col+` = $1 AND c.id = e.container_id AND h.id = c.host_id AND s.id = e.service_id AND n.id = s.network_id
		RETURNING e.service_id::text, e.container_id::text, e.healthy, e.reason, h.name, c.name, n.name`, id)
	if err != nil {
		return err
	}
	gone, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (healthChange, error) {
		var c healthChange
		err := r.Scan(&c.Service, &c.Container, &c.Healthy, &c.Reason, &c.Host, &c.containerName, &c.network)
		return c, err
	})
	if err != nil {
		return err
	}
	for _, c := range gone {
		if err := tx.Event(EndpointKind, openapi.EventDeleted, c.Service+"/"+c.Container, c.containerName, c.network, c.EndpointHealth); err != nil {
			return err
		}
	}
	return nil
}

// healthRow is one stored verdict, with when it last changed.
type healthRow struct {
	openapi.EndpointHealth
	since time.Time
}

// loadHealth reads the stored verdicts of one service, or of all ("").
func loadHealth(ctx context.Context, q Querier, serviceID string) ([]healthRow, error) {
	sql := `SELECT e.service_id::text, e.container_id::text, e.healthy, e.reason, h.name, e.updated_at
		FROM endpoint_health e JOIN containers c ON c.id = e.container_id JOIN hosts h ON h.id = c.host_id`
	var args []any
	if serviceID != "" {
		sql += ` WHERE e.service_id = $1::uuid`
		args = append(args, serviceID)
	}
	rows, err := q.Query(ctx, sql+` ORDER BY e.service_id, e.container_id`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (healthRow, error) {
		var h healthRow
		err := r.Scan(&h.Service, &h.Container, &h.Healthy, &h.Reason, &h.Host, &h.since)
		return h, err
	})
}

// ServiceEndpoints lists the backends of a service (by id, or name within
// network), as the compiler picks and weighs them (package service), with
// their health: unchecked without a health check, else the stored verdict
// (healthy without one). An unhealthy backend weighs 0: it gets no new
// connections.
func (s *Store) ServiceEndpoints(ctx context.Context, ref, network string) ([]openapi.Endpoint, error) {
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	svc, err := services.get(ctx, tx, ref, network, false)
	if err != nil {
		return nil, err
	}
	ctrs, err := containers.all(ctx, tx, ListOptions{Network: svc.Network})
	if err != nil {
		return nil, err
	}
	rows, err := loadHealth(ctx, tx, svc.ID)
	if err != nil {
		return nil, err
	}
	verdict := make(map[string]healthRow, len(rows))
	for _, r := range rows {
		verdict[r.Container] = r
	}
	bs, err := service.Backends(&svc, ctrs)
	if err != nil {
		return nil, problem.Invalid("selector", "%v", err)
	}
	ports := make([]openapi.EndpointPort, len(svc.Ports))
	for i, p := range svc.Ports {
		ports[i] = openapi.EndpointPort{Name: p.Name, Port: p.TargetPort, Protocol: p.Protocol}
	}
	out := make([]openapi.Endpoint, 0, len(bs))
	for _, b := range bs {
		c := b.Container
		e := openapi.Endpoint{Container: c.Name, ContainerID: c.ID, Host: c.Host, Address: c.IP, Ports: ports,
			Weight: b.Weight, Health: openapi.HealthUnchecked}
		if svc.HealthCheck != nil {
			e.Health = openapi.HealthHealthy
			if r, ok := verdict[c.ID]; ok {
				since := r.since
				e.Since = &since
				if !r.Healthy {
					e.Health, e.Reason, e.Weight = openapi.HealthUnhealthy, r.Reason, 0
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}
