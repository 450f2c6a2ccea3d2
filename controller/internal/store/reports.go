package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// Node reports go through one reporter goroutine per store that writes them
// in batches: the reports waiting together share one transaction and one
// statement (hosts, their containers' port status and the notices), instead
// of a transaction each. Every report is still judged on its own: one
// beyond the store's revision gets its 400, one of an unknown host its
// ErrUnknownHost, and the others land. Of several reports of one host in a
// batch the last wins (the earlier ones are answered as landed: a newer
// report of the host replaced them before anyone could read them).
//
// A report of a host stored NotReady is followed by a write that flips it
// Ready (readiness.go), before the report is answered.
//
// Reports are observed state that the agents send again (every heartbeat),
// so their commit does not wait for the WAL flush (synchronous_commit off):
// a crash may lose the last few, never half of one.
//
// Lock order: a batch takes the revision row first, as every write group
// does (runGroup), then hosts rows, then container rows. So a batch never
// waits for a row a write group holds while holding one the group waits
// for (a batch that locked a host row, then waited for a container row a
// group had updated, while the group waited for that host row, was a
// deadlock), and batches of several replicas queue behind each other.

// maxReportBatch bounds how many reports share a transaction; it is also
// how many may wait for the reporter.
const maxReportBatch = 1024

// reportTimeout bounds one batch's transaction.
const reportTimeout = 30 * time.Second

type reportReq struct {
	host string
	st   openapi.NodeStatus
	obs  obsReport
	done chan error
	// notReady is set, before done, when the report landed on a host
	// stored NotReady: ReportStatus flips it Ready.
	notReady bool
}

// reporter is the state of a store's report batching.
type reporter struct {
	queue   chan *reportReq
	stopped chan struct{}
	// batches counts the transactions run (tests read it).
	batches atomic.Int64
	// rules maps policy rule cookies to rules (reportLoop's own).
	rules ruleIndex
}

func newReporter() *reporter {
	return &reporter{queue: make(chan *reportReq, maxReportBatch), stopped: make(chan struct{})}
}

// ReportStatus records a node's report: its heartbeat, the revision it has
// applied, and the state of its containers' ports. It is observed state, not
// intent: it bumps no revision and makes no event (except the write that
// flips a NotReady host Ready), and it writes a container row only when its
// status really changed. The stored applied revision
// follows the report (an agent that had to fall back reports less), but a
// revision beyond the store's own is refused: no controller sent it. Every
// report notifies StatusChannel. Reports arriving together are written in
// one transaction (see above).
func (s *Store) ReportStatus(ctx context.Context, host string, st openapi.NodeStatus) error {
	if st.AppliedRevision < 0 {
		return problem.Invalid("appliedRevision", "appliedRevision must not be negative")
	}
	if st.PortsUnchanged && st.PortsDelta {
		return problem.Invalid("portsDelta", "portsDelta and portsUnchanged exclude each other: a report lists the changed ports or none")
	}
	if st.PortsUnchanged {
		for i, p := range st.Ports {
			if p.Error == "" {
				return problem.Invalid(fmt.Sprintf("ports[%d]", i), "with portsUnchanged, ports lists only failed ports (with an error); %s has none", p.Name)
			}
		}
	}
	obs, err := checkObservations(st)
	if err != nil {
		return err
	}
	req := &reportReq{host: host, st: st, obs: obs, done: make(chan error, 1)}
	select {
	case s.rep.queue <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return errClosed
	}
	// Once queued, the outcome is awaited: the answer must say whether
	// the report landed.
	if err := <-req.done; err != nil {
		return err
	}
	if req.notReady {
		return s.markReady(ctx, host)
	}
	return nil
}

// reportLoop writes queued reports in batches until the store closes; what
// is still queued then fails.
func (s *Store) reportLoop() {
	defer close(s.rep.stopped)
	for {
		var batch []*reportReq
		select {
		case <-s.stop:
			for {
				select {
				case r := <-s.rep.queue:
					r.done <- errClosed
				default:
					return
				}
			}
		case r := <-s.rep.queue:
			batch = append(batch, r)
		}
	drain:
		for len(batch) < maxReportBatch {
			select {
			case r := <-s.rep.queue:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commitReports(batch)
	}
}

// commitReports writes one batch, running it again (bounded, with backoff)
// when PostgreSQL aborted it for a deadlock or serialization failure, and
// answers every report.
func (s *Store) commitReports(batch []*reportReq) {
	var errs []error
	_ = backoff.Retry(func() error {
		var err error
		errs, err = s.runReports(batch)
		if retryable(err) {
			return err
		}
		return nil
	}, retryBackOff())
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// runReports writes a batch in one transaction and returns each report's
// outcome, and the transaction's error when it failed as a whole.
func (s *Store) runReports(batch []*reportReq) ([]error, error) {
	s.rep.batches.Add(1)
	errs := make([]error, len(batch))
	failAll := func(err error) ([]error, error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return failAll(unavailable(err))
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var global int64
	var lb pgx.Batch
	lb.Queue(`SET LOCAL synchronous_commit = off`)
	lb.Queue(`SELECT revision FROM sy_revision FOR NO KEY UPDATE`).QueryRow(func(r pgx.Row) error { return r.Scan(&global) })
	if err := tx.SendBatch(ctx, &lb).Close(); err != nil {
		return failAll(err)
	}
	// Judge each report; the last valid one of each host is written.
	last := map[string]int{}
	for i, r := range batch {
		if r.st.AppliedRevision > global {
			errs[i] = problem.Invalid("appliedRevision", "appliedRevision %d is beyond the current revision %d: no program of that revision was sent", r.st.AppliedRevision, global)
			continue
		}
		last[r.host] = i
	}
	var rows reportRows
	for i, r := range batch {
		if errs[i] == nil && last[r.host] == i {
			rows.add(r.host, r.st)
		}
	}
	landed, ready := map[string]bool{}, map[string]bool{}
	if len(rows.hosts) > 0 {
		res, err := tx.Query(ctx, `WITH r AS (
				SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) AS r(name, applied, notice)),
			h AS (
				UPDATE hosts h SET last_seen = now(), applied_revision = r.applied
				FROM r WHERE h.name = r.name RETURNING h.id, h.name, h.ready),
			p AS (
				SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS p(host, id, status, detail)),
			c AS (
				UPDATE containers c SET status = p.status, status_detail = p.detail
				FROM p JOIN h ON h.name = p.host
				WHERE c.host_id = h.id AND c.id::text = p.id AND (c.status, c.status_detail) IS DISTINCT FROM (p.status, p.detail))
			SELECT h.name, h.ready, pg_notify($8, r.notice) FROM h JOIN r USING (name)`,
			rows.hosts, rows.applied, rows.notices, rows.portHosts, rows.portIDs, rows.statuses, rows.details, StatusChannel)
		if err != nil {
			return failAll(err)
		}
		for res.Next() {
			var name string
			var isReady bool
			if err := res.Scan(&name, &isReady, nil); err != nil {
				res.Close()
				return failAll(err)
			}
			landed[name], ready[name] = true, isReady
		}
		if err := res.Err(); err != nil {
			return failAll(err)
		}
	}
	for i, r := range batch {
		if errs[i] == nil && !landed[r.host] {
			errs[i] = errUnknownHost(r.host)
		}
		r.notReady = errs[i] == nil && !ready[r.host]
	}
	if err := s.writeObservations(ctx, tx, global, batch, errs, last); err != nil {
		return failAll(err)
	}
	if err := tx.Commit(ctx); err != nil {
		if !retryable(err) {
			slog.Warn("store: committing node reports", "reports", len(batch), "err", err)
		}
		return failAll(err)
	}
	return errs, nil
}

// writeObservations writes the rule counters (of each host's last report)
// and the policy log entries (of every report) of the reports that landed.
func (s *Store) writeObservations(ctx context.Context, tx pgx.Tx, global int64, batch []*reportReq, errs []error, last map[string]int) error {
	var logs logRows
	stats := map[string]map[uint64]openapi.RuleStat{}
	for i, r := range batch {
		if errs[i] != nil || (len(r.obs.stats) == 0 && len(r.obs.log) == 0) {
			continue
		}
		if err := s.rep.rules.refresh(ctx, tx, global); err != nil {
			return err
		}
		if last[r.host] == i && len(r.obs.stats) > 0 {
			stats[r.host] = r.obs.stats // cumulative: the last report has them
		}
		logs.add(&s.rep.rules, r.host, r.obs.log)
	}
	if len(stats) > 0 {
		if err := writeCounters(ctx, tx, &s.rep.rules, stats); err != nil {
			return err
		}
	}
	return logs.write(ctx, tx)
}

// reportRows are a batch's reports as the columns of its statement.
type reportRows struct {
	hosts, notices                        []string
	applied                               []int64
	portHosts, portIDs, statuses, details []string
}

// add adds host's report: its row, and a row for each container port it
// reports (its status: running, failed with the error, or pending while
// the link is down).
func (r *reportRows) add(host string, st openapi.NodeStatus) {
	r.hosts, r.applied, r.notices = append(r.hosts, host), append(r.applied, st.AppliedRevision), append(r.notices, NoticeOf(host, st).String())
	for _, p := range st.Ports {
		if p.ContainerID == "" {
			continue
		}
		status, detail := openapi.ContainerRunning, ""
		switch {
		case p.Error != "":
			status, detail = openapi.ContainerFailed, p.Error
		case !p.Up:
			status, detail = openapi.ContainerPending, "link down"
		}
		r.portHosts, r.portIDs = append(r.portHosts, host), append(r.portIDs, p.ContainerID)
		r.statuses, r.details = append(r.statuses, status), append(r.details, detail)
	}
}
