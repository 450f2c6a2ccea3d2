package lab

import (
	"net"
	"os"
	"strings"
	"testing"
)

// The client's JSON can carry iperf3's own error while the exit status says
// nothing (issue 7 item 12: "unable to connect to server: Connection
// refused" 0.04 s after the server started): the error must win.
func TestParseIPerf3(t *testing.T) {
	refused := `{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`
	ok := `{"start":{},"intervals":[],"end":{"sum_received":{"bytes":1234567,"bits_per_second":9.5e9}}}`
	for _, tc := range []struct {
		name, out string
		want      string // substring of the error, "" for none
	}{
		{"refused, exit 0", refused, "Connection refused"},
		{"transfer", ok, ""},
		{"no data", `{"end":{"sum_received":{"bytes":0}}}`, "no data"},
		{"not json", "iperf3: error - unable to connect", "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseIPerf3("10.0.0.2", tc.out, nil)
			if tc.want == "" {
				if err != nil || r.Bytes() != 1234567 || r.Mbps() != 9500 {
					t.Fatalf("%+v, %v", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// listening sees a socket of this very process listen, and stop.
func TestListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if ok, err := listening(os.Getpid(), port); !ok {
		t.Fatalf("port %d listens, listening says no: %v", port, err)
	}
	ln.Close()
	if ok, _ := listening(os.Getpid(), port); ok {
		t.Fatalf("port %d closed, listening says yes", port)
	}
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln6.Close()
	if ok, err := listening(os.Getpid(), ln6.Addr().(*net.TCPAddr).Port); !ok {
		t.Fatalf("IPv6 listener not seen: %v", err)
	}
}
