package ovs

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
)

// underlayCookie marks the one flow of the underlay bridge.
const underlayCookie = 0x5359 // "SY"

// The underlay interface's ARP settings (sysctls
// net.ipv4.conf.<iface>.arp_ignore and .arp_announce) as found before the
// agent first silenced it (link.QuietARP), recorded once in its Port's
// external_ids for whoever gives the interface back.
const (
	KeyARPIgnore   = "switchyard-orig-arp-ignore"
	KeyARPAnnounce = "switchyard-orig-arp-announce"
)

// EnsureUnderlay makes the host's tunnel endpoint on the userspace
// datapath: a netdev bridge (Options.UnderlayBridge, "br-phy") holding the
// underlay interface iface, the underlay address addr moved from iface to
// the bridge's internal port, that port up, iface silent for ARP on
// addresses it does not carry (link.QuietARP; its original settings are
// recorded in its Port's external_ids), and a single NORMAL flow (a plain
// learning switch). Idempotent: when everything is in place it
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
	if !arpRecorded(s, iface) {
		orig, err := a.links.ARPOf(iface)
		if err != nil {
			return err
		}
		spec.Ports[0].IDs[KeyARPIgnore] = strconv.Itoa(orig.Ignore)
		spec.Ports[0].IDs[KeyARPAnnounce] = strconv.Itoa(orig.Announce)
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
	// Silent before the address moves: from then on the kernel would
	// answer ARP for it on iface too, with iface's MAC.
	if _, _, err := a.links.QuietARP(iface); err != nil {
		return err
	}
	if _, err := a.links.MoveAddress(iface, br, addr); err != nil {
		return err
	}
	return a.ensureNormalFlow(ctx, br)
}

// arpRecorded reports whether iface's Port already holds its original ARP
// settings (recorded before the first QuietARP; never overwritten).
func arpRecorded(s *snapshot, iface string) bool {
	for _, p := range s.ports {
		if p.Name == iface {
			_, ok := p.ExternalIDs[KeyARPIgnore]
			return ok
		}
	}
	return false
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
