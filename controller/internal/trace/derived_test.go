package trace

import (
	"net/netip"
	"testing"
)

// TestDerivedMACActions: the simulator follows the compiler's network-wide
// route (the MAC derived from the destination address) and matches an IPAM
// block's masked dl_dst.
func TestDerivedMACActions(t *testing.T) {
	st := &runState{pkt: Packet{EthDst: "0a:58:0a:01:00:01", Dst: netip.MustParseAddr("10.1.0.77")}}
	st.actions([]string{"move:NXM_OF_IP_DST[]->NXM_OF_ETH_DST[0..31]", "set_field:0a:58:00:00:00:00/ff:ff:00:00:00:00->eth_dst"})
	if st.pkt.EthDst != "0a:58:0a:01:00:4d" || len(st.res.Notes) != 0 {
		t.Fatalf("eth_dst %s, notes %v", st.pkt.EthDst, st.res.Notes)
	}
	c, err := macCond("0a:58:0a:01:00:40/ff:ff:ff:ff:ff:c0", func(p *Packet) string { return p.EthDst })
	if err != nil {
		t.Fatal(err)
	}
	for mac, want := range map[string]bool{"0a:58:0a:01:00:4d": true, "0a:58:0a:01:00:7f": true, "0a:58:0a:01:00:80": false, "0a:58:0a:01:00:3f": false, "junk": false} {
		if got := c(&Packet{EthDst: mac}, portMap{}); got != want {
			t.Errorf("%s in the block: %v, want %v", mac, got, want)
		}
	}
	if _, err := macCond("0a:58:0a:01:00:40/zz", nil); err == nil {
		t.Error("a bad mask parsed")
	}
}
