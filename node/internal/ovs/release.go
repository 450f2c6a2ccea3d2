package ovs

import (
	"context"
	"fmt"
	"time"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// ReleasePort runs (as link.Options.BeforeCreate, wired by package
// converge) before the veth of a
// container port is deleted or created. When OVS has a port of ours open
// under that name (the veth was deleted behind the agent's back, or is
// about to be replaced), it removes the port from OVSDB and waits until
// ovs-vswitchd has applied that, i.e. closed its device, before the new
// veth exists.
//
// Why: the userspace datapath keeps a port open on a device that vanished.
// When it finally closes it, it restores the device's flags as it cached
// them (promiscuous mode off, and with it the admin state the old device
// had when it went away: down) with an ioctl by NAME, which lands on a new
// device of the same name and puts it down; the container is cut off until
// the next resync. Closing the old port first makes that restore hit no
// device (or the old one, about to be deleted). The port comes back in the
// apply's OVSDB transaction, opening the new device.
//
// A port OVS does not know (the normal create path) costs one cache read
// and no wait.
func (a *Switch) ReleasePort(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.PortTimeout)
	defer cancel()
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return err
	}
	p := s.portByName(name)
	if p == nil || !owned(p.ExternalIDs) || !s.isOpen(p) {
		return nil
	}
	b := s.bridges[s.portBridge[p.UUID]]
	if b == nil {
		return nil
	}
	br := &bridgeRow{UUID: b.UUID}
	ops, err := a.db.c.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID}})
	if err != nil {
		return err
	}
	cfg, err := a.db.bumpCfg(ctx, s.root.UUID, ops)
	if err != nil {
		return fmt.Errorf("release OVS port: %w", err)
	}
	if err := a.db.waitCfg(ctx, cfg); err != nil {
		return fmt.Errorf("release OVS port: ovs-vswitchd did not apply its removal: %w", err)
	}
	return nil
}

// isOpen reports whether ovs-vswitchd has an interface of port p open
// (given it an ofport).
func (s *snapshot) isOpen(p *portRow) bool {
	for _, u := range p.Interfaces {
		if i := s.ifaces[u]; i != nil && i.OFPort != nil && *i.OFPort > 0 {
			return true
		}
	}
	return false
}

// bumpCfg runs ops in one transaction with an increment of next_cfg (as
// ovs-vsctl --wait=vswitchd does) and returns the new next_cfg.
func (d *db) bumpCfg(ctx context.Context, rootUUID string, ops []ovsdb.Operation) (int, error) {
	root := &rootRow{UUID: rootUUID}
	inc, err := d.c.Where(root).Mutate(root, model.Mutation{Field: &root.NextCfg, Mutator: ovsdb.MutateOperationAdd, Value: 1})
	if err != nil {
		return 0, err
	}
	ops = append(ops, inc...)
	ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationSelect, Table: "Open_vSwitch",
		Where:   []ovsdb.Condition{ovsdb.NewCondition("_uuid", ovsdb.ConditionEqual, ovsdb.UUID{GoUUID: rootUUID})},
		Columns: []string{"next_cfg"}})
	res, err := d.transactResults(ctx, ops)
	if err != nil {
		return 0, err
	}
	last := res[len(ops)-1]
	if len(last.Rows) != 1 {
		return 0, fmt.Errorf("select next_cfg: %d rows", len(last.Rows))
	}
	n, ok := last.Rows[0]["next_cfg"].(float64)
	if !ok {
		return 0, fmt.Errorf("select next_cfg: got %T", last.Rows[0]["next_cfg"])
	}
	return int(n), nil
}

// waitCfg waits until ovs-vswitchd has applied configuration cfg
// (cur_cfg >= cfg in the cache), at most until ctx ends.
func (d *db) waitCfg(ctx context.Context, cfg int) error {
	for {
		var roots []rootRow
		if err := d.c.List(ctx, &roots); err != nil {
			return err
		}
		if len(roots) == 1 && roots[0].CurCfg >= cfg {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}
