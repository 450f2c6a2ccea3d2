package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/openapi"
)

// StatusChannel is the PostgreSQL channel a node report notifies with
// "<host> <applied revision>", so every replica learns of every ack.
const StatusChannel = "switchyard_status"

// Intent is every object at one revision: what the compiler starts from.
type Intent struct {
	Revision   int64
	Hosts      []openapi.Host
	Networks   []openapi.Network
	Containers []openapi.Container
	Services   []openapi.Service
	Policies   []openapi.Policy
	// EndpointHealth are the stored health verdicts (a backend without
	// one is healthy).
	EndpointHealth []openapi.EndpointHealth
}

// LoadIntent reads every object in one consistent snapshot.
func (s *Store) LoadIntent(ctx context.Context) (*Intent, error) {
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	in := &Intent{}
	if err := tx.QueryRow(ctx, `SELECT revision FROM sy_revision`).Scan(&in.Revision); err != nil {
		return nil, err
	}
	if in.Hosts, err = s.hosts.all(ctx, tx, ListOptions{}); err != nil {
		return nil, err
	}
	if in.Networks, err = networks.all(ctx, tx, ListOptions{}); err != nil {
		return nil, err
	}
	if in.Containers, err = containers.all(ctx, tx, ListOptions{}); err != nil {
		return nil, err
	}
	if in.Services, err = services.all(ctx, tx, ListOptions{}); err != nil {
		return nil, err
	}
	if in.Policies, err = policies.all(ctx, tx, ListOptions{}); err != nil {
		return nil, err
	}
	rows, err := loadHealth(ctx, tx, "")
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		in.EndpointHealth = append(in.EndpointHealth, r.EndpointHealth)
	}
	return in, nil
}

// HostAck is what the store knows of a host's last report.
type HostAck struct {
	Applied  int64
	LastSeen time.Time
}

// HostAcks returns every host's applied revision and last report time.
func (s *Store) HostAcks(ctx context.Context) (map[string]HostAck, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, applied_revision, COALESCE(last_seen, 'epoch') FROM hosts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]HostAck{}
	for rows.Next() {
		var name string
		var a HostAck
		if err := rows.Scan(&name, &a.Applied, &a.LastSeen); err != nil {
			return nil, err
		}
		out[name] = a
	}
	return out, rows.Err()
}

// maxFailedInNotice bounds the failed containers a notice lists (a
// notification payload holds less than 8000 bytes); beyond it, a notice
// says "all".
const maxFailedInNotice = 150

// StatusNotice is what a StatusChannel payload says of one report:
// "<host> <applied revision> <digest|-> <apply failed 0|1> <failed
// container IDs, comma-separated|-|*>". The digest and the failures are
// known only from notices, not from the hosts table.
type StatusNotice struct {
	Host    string
	Applied int64
	Digest  string
	// ApplyFailed: the agent could not apply the program of Digest.
	ApplyFailed bool
	// FailedContainers are the containers whose port failed; FailedAll
	// says there were too many to list.
	FailedContainers []string
	FailedAll        bool
}

// NoticeOf sums up a report of host.
func NoticeOf(host string, st openapi.NodeStatus) StatusNotice {
	n := StatusNotice{Host: host, Applied: st.AppliedRevision, Digest: st.Digest, ApplyFailed: st.Error != ""}
	for _, p := range st.Ports {
		if p.Error == "" {
			continue
		}
		if len(n.FailedContainers) == maxFailedInNotice || p.ContainerID == "" {
			n.FailedContainers, n.FailedAll = nil, true
			break
		}
		n.FailedContainers = append(n.FailedContainers, p.ContainerID)
	}
	return n
}

func (n StatusNotice) String() string {
	failed := "-"
	switch {
	case n.FailedAll:
		failed = "*"
	case len(n.FailedContainers) > 0:
		failed = strings.Join(n.FailedContainers, ",")
	}
	return strings.Join([]string{n.Host, strconv.FormatInt(n.Applied, 10), orDash(n.Digest), map[bool]string{false: "0", true: "1"}[n.ApplyFailed], failed}, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ParseStatusNotice reads a StatusChannel payload (also the older
// "<host> <applied revision>").
func ParseStatusNotice(payload string) (StatusNotice, bool) {
	f := strings.Fields(payload)
	if len(f) != 2 && len(f) != 5 {
		return StatusNotice{}, false
	}
	v, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return StatusNotice{}, false
	}
	n := StatusNotice{Host: f[0], Applied: v}
	if len(f) == 5 {
		if f[2] != "-" {
			n.Digest = f[2]
		}
		n.ApplyFailed = f[3] == "1"
		switch f[4] {
		case "-":
		case "*":
			n.FailedAll = true
		default:
			n.FailedContainers = strings.Split(f[4], ",")
		}
	}
	return n, true
}

func errUnknownHost(host string) error {
	return fmt.Errorf("%w: host %q is not registered", ErrUnknownHost, host)
}

// ErrUnknownHost is returned for reports from hosts the store does not know.
var ErrUnknownHost = fmt.Errorf("unknown host")
