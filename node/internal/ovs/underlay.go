package ovs

import (
	"context"
	"fmt"
	"net/netip"
)

// underlayCookie marks the one flow of the underlay bridge.
const underlayCookie = 0x5359 // "SY"

// EnsureUnderlay makes the host's tunnel endpoint on the userspace
// datapath: a netdev bridge (Options.UnderlayBridge, "br-phy") holding the
// underlay interface iface, the underlay address addr moved from iface to
// the bridge's internal port, that port up, and a single NORMAL flow (a
// plain learning switch). Idempotent: when everything is in place it
// changes nothing. On the "system" datapath it does nothing.
func (a *Applier) EnsureUnderlay(ctx context.Context, iface string, addr netip.Prefix) error {
	if a.opts.Datapath == "system" {
		return nil
	}
	if !addr.IsValid() {
		return fmt.Errorf("underlay address %v is not valid", addr)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	br := a.opts.UnderlayBridge
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return err
	}
	pl := newPlanner(a.db, s)
	spec := bridgeSpec{
		Name: br, DatapathType: a.opts.Datapath,
		IDs:   map[string]string{KeyOwner: OwnerValue},
		Ports: []portSpec{{Name: iface, IDs: map[string]string{KeyOwner: OwnerValue}}},
	}
	if err := pl.planBridge(spec); err != nil {
		return err
	}
	if err, bad := pl.fails[iface]; bad {
		return err
	}
	if err := a.db.transact(ctx, pl.ops); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, a.opts.PortTimeout)
	defer cancel()
	states := a.db.waitPorts(wctx, []string{br, iface}, nil)
	for _, n := range []string{br, iface} {
		if st := states[n]; st.OFPort <= 0 {
			return fmt.Errorf("underlay port %s: %s", n, st.Error)
		}
	}
	if err := a.links.WaitLink(wctx, br); err != nil {
		return err
	}
	if _, err := a.links.TxOffloadOff(iface); err != nil {
		return err
	}
	if _, err := a.links.MoveAddress(iface, br, addr); err != nil {
		return err
	}
	return a.ensureNormalFlow(ctx, br)
}

// ensureNormalFlow leaves exactly one flow, actions=NORMAL, on bridge.
func (a *Applier) ensureNormalFlow(ctx context.Context, bridge string) error {
	o, err := dialOF(ctx, a.of.socket(bridge))
	if err != nil {
		return fmt.Errorf("openflow connection to %s: %w", bridge, err)
	}
	all, err := o.flowCount(0, 0)
	ours := 0
	if err == nil {
		ours, err = o.flowCount(underlayCookie, ^uint64(0))
	}
	o.Close()
	if err == nil && all == 1 && ours == 1 {
		return nil
	}
	flow := fmt.Sprintf("table=0, priority=0, cookie=%#x actions=NORMAL\n", underlayCookie)
	_, err = a.of.run(ctx, bridge, []byte(flow), "--bundle", "replace-flows")
	return err
}
