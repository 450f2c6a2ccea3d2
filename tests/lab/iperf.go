package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// IPerf3Port is the port iperf3 servers listen on.
const IPerf3Port = 5201

// StartIPerf3 starts a one-off iperf3 server (`iperf3 -s -1`, bound to bind
// when it is not empty) in netns as a lab Proc named name, and returns once
// the server listens. It fails t when the server exits first or does not
// listen within 10 s. Readiness is read from the server's own view of
// /proc/net/tcp{,6}, not by connecting: a probe connection would use up the
// one test a one-off server runs.
func (l *Lab) StartIPerf3(t T, name, netns, bind string) *Proc {
	t.Helper()
	args := []string{"-s", "-1"}
	if bind != "" {
		args = append(args, "-B", bind)
	}
	p := l.Start(t, ProcSpec{Name: name, Netns: netns, Path: "iperf3", Args: args})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitListening(ctx, p, IPerf3Port); err != nil {
		t.Fatalf("lab %s: %v\n%s", l.ID, err, p.Log())
	}
	return p
}

// WaitListening waits until process p has a TCP socket listening on port in
// its network namespace, or p exits, or ctx ends.
func WaitListening(ctx context.Context, p *Proc, port int) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited before listening on port %d", p.Name(), port)
		}
		ok, err := listening(p.Pid(), port)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on port %d: %w (last read: %v)", p.Name(), port, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// listening reports whether the network namespace of pid has a TCP socket
// in state LISTEN on port (IPv4 or IPv6, any address).
func listening(pid, port int) (bool, error) {
	var errs []error
	for _, f := range []string{"tcp", "tcp6"} {
		ok, err := listensIn(fmt.Sprintf("/proc/%d/net/%s", pid, f), port)
		if ok {
			return true, nil
		}
		errs = append(errs, err)
	}
	return false, errors.Join(errs...)
}

// tcpListen is the state code of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

func listensIn(path string, port int) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		// "  0: 0100000A:1451 00000000:0000 0A ..." local, remote, state
		fs := strings.Fields(s.Text())
		if len(fs) < 4 || fs[3] != tcpListen {
			continue
		}
		i := strings.LastIndexByte(fs[1], ':')
		if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(p) == port {
			return true, nil
		}
	}
	return false, s.Err()
}

// IPerf3Result is the part of an iperf3 client's JSON report tests use.
type IPerf3Result struct {
	// Error is iperf3's own error message ("unable to connect to server:
	// ..."); iperf3 may report one with exit status 0.
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	// Output is the client's whole output.
	Output string `json:"-"`
}

// Bytes is what the server received.
func (r IPerf3Result) Bytes() int64 { return r.End.SumReceived.Bytes }

// Mbps is the receiver's throughput in Mbit/s.
func (r IPerf3Result) Mbps() float64 { return r.End.SumReceived.BitsPerSecond / 1e6 }

// IPerf3 runs an iperf3 client (`iperf3 -c server -t seconds -J`, plus
// args) in netns against a server that already listens (StartIPerf3). The
// error is set when the client fails, its JSON says "error", or nothing
// arrived; the result carries the output in every case.
func IPerf3(ctx context.Context, netns, server string, seconds int, args ...string) (IPerf3Result, error) {
	out, err := RunIn(ctx, netns, "iperf3", append([]string{"-c", server, "-t", strconv.Itoa(seconds), "-J"}, args...)...)
	return parseIPerf3(server, out, err)
}

// parseIPerf3 reads a client's JSON report; runErr is the client's exit.
func parseIPerf3(server, out string, runErr error) (IPerf3Result, error) {
	var r IPerf3Result
	jerr := json.Unmarshal([]byte(out), &r)
	r.Output = out
	switch {
	case r.Error != "":
		return r, fmt.Errorf("iperf3 -c %s: %s", server, r.Error)
	case runErr != nil:
		return r, runErr
	case jerr != nil:
		return r, fmt.Errorf("iperf3 -c %s: output is not JSON: %w", server, jerr)
	case r.Bytes() <= 0:
		return r, fmt.Errorf("iperf3 -c %s moved no data", server)
	}
	return r, nil
}
