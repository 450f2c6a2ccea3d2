// Package store keeps Switchyard's intent in PostgreSQL: hosts, networks,
// containers, services, policies, tokens, the global revision, the event log
// and the audit log. Every write runs in one transaction that bumps the
// revision, records its events and audit entries and notifies the other
// replicas on commit, so nothing is ever half written. IP, MAC, VNI and VIP
// allocation happen here, race-free, from free lists (ipam.go) whose cost
// does not depend on the values in use. Node reports also bring policy rule
// counters and logged connections (ruleobs.go, policylog.go), observed state
// written in the report batches, and services' health verdicts
// (endpoints.go), written as ordinary writes with events but only when
// they change. Host readiness is stored and flipped by writes with events
// (readiness.go); published ports, node ports and egress IPs are checked
// for conflicts inside the write that claims them (external.go). It must
// not know about HTTP: it returns
// *problem.Error for failures a client caused.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/migrations"
	"github.com/switchyard/switchyard/openapi"
)

// NotifyChannel is the PostgreSQL channel a commit notifies with its revision.
const NotifyChannel = "switchyard_revision"

// Options tune a Store.
type Options struct {
	// ServiceCIDR is the range service VIPs are allocated from.
	ServiceCIDR netip.Prefix
	// HeartbeatTimeout is how long a host stays Ready after its last report.
	HeartbeatTimeout time.Duration
	// ReadinessSweep is how often the store looks for hosts past the
	// heartbeat timeout to flip NotReady (readiness.go).
	ReadinessSweep time.Duration
	// DefaultMTU is a new network's MTU when none is given.
	DefaultMTU int
	// DNSDomain is the domain of container and service names (the search
	// list containers are shown with).
	DNSDomain string
	// AcquireTimeout bounds how long a write waits for a database
	// connection (and its BEGIN) before it answers 503 (unavailable.go).
	AcquireTimeout time.Duration
	// ConnectTimeout bounds one connection attempt to one host of the
	// database URL, unless the URL sets connect_timeout.
	ConnectTimeout time.Duration
}

// DefaultOptions are used for zero fields of Options.
var DefaultOptions = Options{
	ServiceCIDR:      netip.MustParsePrefix("10.96.0.0/16"),
	HeartbeatTimeout: 15 * time.Second,
	ReadinessSweep:   500 * time.Millisecond,
	DefaultMTU:       1400,
	DNSDomain:        "switchyard.local",
	AcquireTimeout:   DefaultAcquireTimeout,
	ConnectTimeout:   DefaultConnectTimeout,
}

// Store is the PostgreSQL intent store. Safe for concurrent use.
type Store struct {
	Pool  *pgxpool.Pool
	opts  Options
	hosts *kind[openapi.Host]

	// writes feeds the group-commit writer (see write.go).
	writes    chan *writeReq
	rep       *reporter // node reports' batching (see reports.go)
	health    healthCache
	stop      chan struct{}
	stopped   chan struct{}
	swept     chan struct{} // closed when sweepLoop ends
	closeOnce sync.Once
}

// Open connects to the database at url. It does not migrate.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if !opts.ServiceCIDR.IsValid() {
		opts.ServiceCIDR = DefaultOptions.ServiceCIDR
	}
	if opts.HeartbeatTimeout == 0 {
		opts.HeartbeatTimeout = DefaultOptions.HeartbeatTimeout
	}
	if opts.ReadinessSweep <= 0 {
		opts.ReadinessSweep = DefaultOptions.ReadinessSweep
	}
	if opts.DNSDomain == "" {
		opts.DNSDomain = DefaultOptions.DNSDomain
	}
	if opts.DefaultMTU == 0 {
		opts.DefaultMTU = DefaultOptions.DefaultMTU
	}
	if opts.AcquireTimeout <= 0 {
		opts.AcquireTimeout = DefaultOptions.AcquireTimeout
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultOptions.ConnectTimeout
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	// A pooled connection idle for a while is pinged before use; a server
	// that stopped answering fails the ping in this time (not the
	// request's), so the pool moves on to a new connection.
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = opts.AcquireTimeout
	}
	if cfg.ConnConfig.Tracer == nil {
		cfg.ConnConfig.Tracer = statementGuard{}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	st := &Store{Pool: pool, opts: opts, hosts: newHostKind(), writes: make(chan *writeReq), stop: make(chan struct{}), stopped: make(chan struct{}), swept: make(chan struct{}), rep: newReporter()}
	go st.writer()
	go st.reportLoop()
	go st.sweepLoop()
	return st, nil
}

// Close releases the pool.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.stopped
		<-s.rep.stopped
		<-s.swept
		s.Pool.Close()
	})
}

// Migrate applies pending migrations under a PostgreSQL advisory lock, so any
// number of replicas may start at once.
func (s *Store) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.Pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range res {
		slog.Info("migration applied", "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Ready reports whether the database answers, takes writes (it is no
// standby and not read-only) and has every migration applied.
func (s *Store) Ready(ctx context.Context) error {
	var readOnly bool
	err := s.Pool.QueryRow(ctx, `SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool`).Scan(&readOnly)
	if err != nil {
		return unavailable(err)
	}
	if readOnly {
		return problem.Unavailable("the database is read-only (a standby, or writes switched off): writes answer 503")
	}
	db := stdlib.OpenDBFromPool(s.Pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return unavailable(err)
	}
	if pending {
		return problem.Unavailable("database migrations are pending")
	}
	return nil
}

// Revision returns the current global revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var r int64
	err := s.Pool.QueryRow(ctx, `SELECT revision FROM sy_revision`).Scan(&r)
	return r, err
}

// Tx is one write transaction. The global revision is bumped once per
// write; its group took the revision row lock before anything else (see
// runGroup) and holds it until commit, which makes commit order revision
// order and every replica take its locks in one order. Statements queued with
// Queue, and the event and audit rows of Record, are sent in one round trip
// at commit, together with the bump when nothing asked for it earlier.
type Tx struct {
	pgx.Tx
	ctx   context.Context
	actor string
	rev   int64
	// bump asks for the revision bump to lead the commit batch.
	bump  bool
	batch pgx.Batch
	// savepoint: the write runs under SAVEPOINT w, released by flush.
	savepoint bool
}

// Rev returns this transaction's revision, bumping the global one now if it
// was not bumped yet.
func (t *Tx) Rev() (int64, error) {
	if t.rev != 0 {
		return t.rev, nil
	}
	if t.batch.Len() > 0 {
		return 0, errors.New("store: Rev after Queue")
	}
	err := t.QueryRow(t.ctx, `UPDATE sy_revision SET revision = revision + 1 RETURNING revision`).Scan(&t.rev)
	return t.rev, err
}

// currentRev is SQL for this transaction's revision, valid in queued
// statements.
const currentRev = `(SELECT revision FROM sy_revision)`

// Queue adds a statement to the commit batch; it may use currentRev. The
// revision is bumped at the head of the batch unless Rev ran before.
func (t *Tx) Queue(sql string, args ...any) {
	if t.rev == 0 {
		t.bump = true
	}
	t.batch.Queue(sql, args...)
}

// Record queues an event (unless obj is nil) and an audit entry for obj at
// this transaction's revision; the revision field of obj's JSON is set to it.
func (t *Tx) Record(kind, action, id, name, network string, obj any) error {
	if obj != nil {
		if err := t.Event(kind, action, id, name, network, obj); err != nil {
			return err
		}
	}
	t.Queue(`INSERT INTO audit (revision, actor, action, kind, object_id, object_name) VALUES (`+currentRev+`, $1, $2, $3, $4, $5)`,
		t.actor, action, kind, id, name)
	return nil
}

// Event queues an event for obj at this transaction's revision, without an
// audit entry (observed state, such as health verdicts, is not an action of
// anyone); the revision field of obj's JSON is set to it.
func (t *Tx) Event(kind, action, id, name, network string, obj any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	t.Queue(`INSERT INTO events (revision, kind, action, object_id, name, network, object)
		VALUES (`+currentRev+`, $1, $2, $3, $4, $5, jsonb_set($6::jsonb, '{revision}', to_jsonb(`+currentRev+`)))`,
		kind, action, id, name, network, body)
	return nil
}

// flush sends the commit batch: the bump (if pending), the queued
// statements, and the notification of the revision.
func (t *Tx) flush() error {
	if t.batch.Len() == 0 && t.rev == 0 {
		if t.savepoint {
			_, err := t.Exec(t.ctx, "RELEASE SAVEPOINT w")
			return err
		}
		return nil
	}
	var b pgx.Batch
	if t.bump && t.rev == 0 {
		b.Queue(`UPDATE sy_revision SET revision = revision + 1 RETURNING revision`).QueryRow(func(r pgx.Row) error {
			return r.Scan(&t.rev)
		})
	}
	b.QueuedQueries = append(b.QueuedQueries, t.batch.QueuedQueries...)
	b.Queue(`SELECT pg_notify($1, `+currentRev+`::text)`, NotifyChannel)
	if t.savepoint {
		b.Queue("RELEASE SAVEPOINT w")
	}
	return t.SendBatch(t.ctx, &b).Close()
}

// constraintFields maps constraint names to the problem each violation is.
var constraintFields = map[string]func() *problem.Error{
	"hosts_name_key":        func() *problem.Error { return problem.Conflict("name", "a host with this name exists") },
	"hosts_address_key":     func() *problem.Error { return problem.Conflict("address", "another host has this address") },
	"networks_name_key":     func() *problem.Error { return problem.Conflict("name", "a network with this name exists") },
	"networks_vni_key":      func() *problem.Error { return problem.Conflict("vni", "another network uses this VNI") },
	"networks_cidr_overlap": func() *problem.Error { return problem.Conflict("cidr", "the CIDR overlaps an existing network") },
	"networks_egress_ip_key": func() *problem.Error {
		return problem.Conflict("egressIP", "another network has this egress IP")
	},
	"containers_name_key": func() *problem.Error {
		return problem.Conflict("name", "a container with this name exists in the network")
	},
	"containers_ip_key":  func() *problem.Error { return problem.Conflict("ip", "the address is in use") },
	"containers_mac_key": func() *problem.Error { return problem.Conflict("mac", "the MAC address is in use") },
	"services_name_key": func() *problem.Error {
		return problem.Conflict("name", "a service with this name exists in the network")
	},
	"services_vip_key": func() *problem.Error { return problem.Conflict("vip", "the VIP is in use") },
	"services_group_id_key": func() *problem.Error {
		return problem.Conflict("groupId", "the group id is in use")
	},
	"policies_name_key": func() *problem.Error {
		return problem.Conflict("name", "a policy with this name exists in the network")
	},
	"tokens_name_key": func() *problem.Error { return problem.Conflict("name", "a token with this name exists") },
}

// mapError turns constraint violations into client problems; anything else
// passes through.
func mapError(err error) error {
	if _, ok := problem.As(err); ok {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if f, ok := constraintFields[pgErr.ConstraintName]; ok {
			return f()
		}
		switch pgErr.Code {
		case "23503":
			return problem.Conflict("", "the object is still referenced: %s", pgErr.Detail)
		case "40P01", "40001":
			// Only after the retries of commitGroup ran out.
			return problem.Unavailable("the database is too busy to commit this write now; nothing was written, retry")
		case "57014":
			return problem.Unavailable("a statement of the write took too long and was cancelled; nothing was written")
		}
	}
	if pe := Unavailable(err); pe != nil {
		return pe
	}
	return err
}

// unavailable is a database that cannot be reached. What failed (address,
// user, database) goes to the log with the cause, never to the client.
func unavailable(err error) *problem.Error {
	return problem.Unavailable("the database cannot be reached").WithCause(err)
}
