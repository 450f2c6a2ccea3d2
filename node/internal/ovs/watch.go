package ovs

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// Restart detection. ovs-vswitchd keeps flows in memory only: when it
// restarts, br-int comes back with an empty flow table (and, on the
// userspace datapath, an empty datapath). The adapter holds one idle
// OpenFlow connection to br-int's management socket; when it breaks,
// vswitchd is gone, and the adapter
//
//  1. sets other_config:flow-restore-wait=true in OVSDB (marked as its own
//     in external_ids), so that the vswitchd that starts next does not
//     forward with an empty table (as ovs-ctl's restart does); only when it
//     has a program to restore,
//  2. forgets what it installed, so the next Apply is a full one, and
//  3. once it can connect again, tells the agent (Restarts), which applies
//     at once. The Apply after a restart clears flow-restore-wait once the
//     flows are in, or once it failed against the running switch (a
//     partial table beats a switch that never forwards).
//
// An OVSDB reconnect (ovsdb-server restarted) is reported on Restarts too:
// the database may have lost or changed rows.

// Restarts delivers a reason each time ovs-vswitchd came back after a
// restart, or the OVSDB connection was re-established. Events that arrive
// while one is pending are merged.
func (a *Switch) Restarts() <-chan string { return a.restarts }

// notify posts a restart event without blocking.
func (a *Switch) notify(why string) {
	select {
	case a.restarts <- why:
	default:
	}
}

// watchSwitch holds an OpenFlow connection to br-int until ctx ends,
// reconnecting with backoff when it breaks (see above).
func (a *Switch) watchSwitch(ctx context.Context) {
	socket := a.of.socket(a.opts.Bridge)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 10*time.Millisecond, time.Second, 0
	b.Reset()
	lost := false
	for ctx.Err() == nil {
		c, err := dialOF(ctx, socket)
		if err != nil {
			// Until br-int exists, or while vswitchd is away; an Apply
			// that made the bridge kicks this wait short.
			t := time.NewTimer(b.NextBackOff())
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-a.kick:
				b.Reset()
			case <-t.C:
			}
			t.Stop()
			continue
		}
		b.Reset()
		a.ofUp.Store(true)
		if lost {
			lost = false
			a.notify("ovs-vswitchd restarted (its OpenFlow connection came back)")
		}
		hold(ctx, c)
		c.Close()
		a.ofUp.Store(false)
		if ctx.Err() != nil {
			return
		}
		lost = true
		a.switchLost(ctx)
	}
}

// kickWatch makes a waiting watcher try to connect now.
func (a *Switch) kickWatch() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// watching reports whether the watcher is connected to br-int.
func (a *Switch) watching() bool { return a.ofUp.Load() }

// hold reads from c (recv answers echo requests) until the connection
// breaks or ctx ends.
func hold(ctx context.Context, c *ofConn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.c.SetDeadline(time.Time{})
	for {
		if _, _, _, err := c.recv(); err != nil {
			return
		}
	}
}

// switchLost runs when the OpenFlow connection to br-int broke: the flows
// are gone with vswitchd, so nothing installed is known any more, and the
// next vswitchd is asked to wait for the flows before forwarding.
func (a *Switch) switchLost(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.installed.valid = false
	a.fullDue.Store(true)
	a.query.close()
	if a.applied == nil {
		return // nothing to restore: the switch must not wait for it
	}
	if err := a.setFlowRestoreWait(ctx); err != nil {
		a.warn("cannot set flow-restore-wait", "err", err)
	}
}

// dbReconnected runs (on libovsdb's goroutine) when the OVSDB connection
// came back: the next Apply checks everything.
func (a *Switch) dbReconnected() {
	a.fullDue.Store(true)
	a.notify("the OVSDB connection was re-established")
}

func (a *Switch) warn(msg string, args ...any) {
	if a.opts.Logger != nil {
		a.opts.Logger.Warn(msg, args...)
	}
}

// mutation inserts (or deletes) the pairs of m into (from) the map column
// field.
func mutation(field *map[string]string, m map[string]string, insert bool) model.Mutation {
	op := ovsdb.MutateOperationDelete
	if insert {
		op = ovsdb.MutateOperationInsert
	}
	return model.Mutation{Field: field, Mutator: op, Value: m}
}

// setFlowRestoreWait sets other_config:flow-restore-wait=true unless the
// operator (or ovs-ctl) already set it, marking it as the adapter's own.
func (a *Switch) setFlowRestoreWait(ctx context.Context) error {
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return err
	}
	if _, set := s.root.OtherConfig[flowRestoreWait]; set {
		a.frw = s.root.ExternalIDs[KeyFlowRestoreWait] != ""
		return nil // set already (by ovs-ctl, or by this adapter)
	}
	ops, err := a.db.c.Where(s.root).Mutate(s.root,
		mutation(&s.root.OtherConfig, map[string]string{flowRestoreWait: "true"}, true),
		mutation(&s.root.ExternalIDs, map[string]string{KeyFlowRestoreWait: "true"}, true))
	if err != nil {
		return err
	}
	if err := a.db.transact(ctx, ops); err != nil {
		return err
	}
	a.frw = true
	return nil
}

// clearFlowRestoreWait removes flow-restore-wait if the adapter set it.
func (a *Switch) clearFlowRestoreWait(ctx context.Context) error {
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return err
	}
	if s.root.ExternalIDs[KeyFlowRestoreWait] == "" {
		a.frw = false
		return nil
	}
	ops, err := a.db.c.Where(s.root).Mutate(s.root,
		mutation(&s.root.OtherConfig, map[string]string{flowRestoreWait: s.root.OtherConfig[flowRestoreWait]}, false),
		mutation(&s.root.ExternalIDs, map[string]string{KeyFlowRestoreWait: s.root.ExternalIDs[KeyFlowRestoreWait]}, false))
	if err != nil {
		return err
	}
	if err := a.db.transact(ctx, ops); err != nil {
		return err
	}
	a.frw = false
	return nil
}

const (
	flowRestoreWait = "flow-restore-wait"
	// KeyFlowRestoreWait marks flow-restore-wait as set by the adapter.
	KeyFlowRestoreWait = "switchyard-flow-restore-wait"
)
