package agent

import (
	"net"
	"net/netip"
	"testing"
)

func TestARPRequest(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	f := arpRequest(mac, netip.MustParseAddr("192.168.200.11"), netip.MustParseAddr("192.168.200.12"))
	want := "ffffffffffff020000000001" + "0806" + "0001080006040001" + "020000000001" + "c0a8c80b" + "000000000000" + "c0a8c80c"
	if got := net.HardwareAddr(f).String(); len(f) != 42 || hexOf(f) != want {
		t.Fatalf("frame %s", got)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
