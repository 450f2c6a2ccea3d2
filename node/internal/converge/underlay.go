package converge

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/switchyard/switchyard/node/internal/ovs"
)

// EnsureUnderlay makes the host's tunnel endpoint on the userspace
// datapath: a netdev bridge (Options.UnderlayBridge, "br-phy") holding the
// underlay interface iface (ovs.Switch.EnsureUnderlayBridge, which records
// iface's ARP settings before the agent first silenced it), the underlay
// address addr moved from iface to the bridge's internal port, that port
// up, iface silent for ARP on addresses it does not carry (link.QuietARP),
// and a single NORMAL flow (a plain learning switch). Idempotent: when
// everything is in place it changes nothing. On the "system" datapath it
// does nothing.
func (h *Host) EnsureUnderlay(ctx context.Context, iface string, addr netip.Prefix) error {
	o := h.sw.Options()
	if o.Datapath == "system" {
		return nil
	}
	if !addr.IsValid() {
		return fmt.Errorf("underlay address %v is not valid", addr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	orig, err := h.links.ARPOf(iface)
	if err != nil {
		return err
	}
	br, err := h.sw.EnsureUnderlayBridge(ctx, iface, ovs.ARPSettings{Ignore: orig.Ignore, Announce: orig.Announce})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, o.PortTimeout)
	defer cancel()
	if err := h.links.WaitLink(wctx, br); err != nil {
		return err
	}
	if _, err := h.links.TxOffloadOff(iface); err != nil {
		return err
	}
	// Silent before the address moves: from then on the kernel would
	// answer ARP for it on iface too, with iface's MAC.
	if _, _, err := h.links.QuietARP(iface); err != nil {
		return err
	}
	if _, err := h.links.MoveAddress(iface, br, addr); err != nil {
		return err
	}
	return h.sw.EnsureUnderlayFlow(ctx)
}
