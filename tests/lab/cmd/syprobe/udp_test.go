package main

import (
	"net"
	"testing"
	"time"
)

// A udp probe with resend survives a lost datagram (a server that ignores
// the first one it gets); without, the same probe times out.
func TestProbeUDPResend(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 64)
		for seen := 0; ; seen++ {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if seen%2 == 1 { // every other datagram is "lost"
				pc.WriteTo([]byte("srv:"+string(buf[:n])), from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	got, err := probeUDP(addr, nil, time.Now().Add(2*time.Second), 100*time.Millisecond)
	if err != nil || got != "srv:probe" {
		t.Fatalf("with resend: %q, %v", got, err)
	}
	start := time.Now()
	if got, err := probeUDP(addr, nil, time.Now().Add(300*time.Millisecond), 0); err == nil {
		t.Fatalf("without resend, the lost datagram was answered: %q", got)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("without resend the probe gave up after %v, before its deadline", d)
	}
}
