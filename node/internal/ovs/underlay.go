package ovs

import (
	"context"
	"fmt"
	"strconv"
)

// underlayCookie marks the one flow of the underlay bridge.
const underlayCookie = 0x5359 // "SY"

// The underlay interface's ARP settings (sysctls
// net.ipv4.conf.<iface>.arp_ignore and .arp_announce) as found before the
// agent first silenced it (package link), recorded once in its Port's
// external_ids for whoever gives the interface back.
const (
	KeyARPIgnore   = "switchyard-orig-arp-ignore"
	KeyARPAnnounce = "switchyard-orig-arp-announce"
)

// EnsureUnderlayBridge makes the OVS side of the host's tunnel endpoint
// on the userspace datapath: a netdev bridge (Options.UnderlayBridge,
// "br-phy") holding the underlay interface iface, and waits until OVS has
// attached both. The interface's ARP settings before the agent first
// silenced it (orig, read by the caller) are recorded in its Port's
// external_ids the first time, never overwritten. It returns the bridge's
// name: the caller then moves the underlay address to its internal port
// (package link) and calls EnsureUnderlayFlow. Idempotent.
func (a *Switch) EnsureUnderlayBridge(ctx context.Context, iface string, orig ARPSettings) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	br := a.opts.UnderlayBridge
	s, err := a.db.snapshot(ctx)
	if err != nil {
		return "", err
	}
	pl := newPlanner(a.db, s)
	spec := bridgeSpec{
		Name: br, DatapathType: a.opts.Datapath,
		IDs:   map[string]string{KeyOwner: OwnerValue},
		Ports: []portSpec{{Name: iface, IDs: map[string]string{KeyOwner: OwnerValue}}},
	}
	if !arpRecorded(s, iface) {
		spec.Ports[0].IDs[KeyARPIgnore] = strconv.Itoa(orig.Ignore)
		spec.Ports[0].IDs[KeyARPAnnounce] = strconv.Itoa(orig.Announce)
	}
	if err := pl.planBridge(spec); err != nil {
		return "", err
	}
	if err, bad := pl.fails[iface]; bad {
		return "", err
	}
	if err := a.db.transact(ctx, pl.ops); err != nil {
		return "", err
	}
	wctx, cancel := context.WithTimeout(ctx, a.opts.PortTimeout)
	defer cancel()
	states := a.db.waitPorts(wctx, []string{br, iface}, nil)
	for _, n := range []string{br, iface} {
		if st := states[n]; st.OFPort <= 0 {
			return "", fmt.Errorf("underlay port %s: %s", n, st.Error)
		}
	}
	return br, nil
}

// ARPSettings are an interface's arp_ignore and arp_announce sysctls.
type ARPSettings struct{ Ignore, Announce int }

// EnsureUnderlayFlow leaves exactly one flow, actions=NORMAL (a plain
// learning switch), on the underlay bridge.
func (a *Switch) EnsureUnderlayFlow(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ensureNormalFlow(ctx, a.opts.UnderlayBridge)
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
func (a *Switch) ensureNormalFlow(ctx context.Context, bridge string) error {
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
