package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// ProbeRequest asks a probe server to reach Addr ("ip:port", or "ip" for
// icmp) with Proto ("tcp", "udp" or "icmp") within TimeoutMs. A tcp probe
// connects and exchanges one line, a udp probe one datagram, an icmp probe
// one echo request; each succeeds only when the answer comes back. Src,
// when set, is the local address the probe binds to (one of its
// namespace's: the lab's outside has two).
type ProbeRequest struct {
	Proto     string `json:"proto"`
	Addr      string `json:"addr"`
	TimeoutMs int    `json:"timeoutMs"`
	Src       string `json:"src,omitempty"`
	// ResendMs, for a udp probe, sends the datagram again (same socket,
	// so the same flow) when no answer came within that many
	// milliseconds, as a real UDP client does; 0 sends it once (a test
	// that counts packets).
	ResendMs int `json:"resendMs,omitempty"`
}

// ProbeResult is what one probe saw: OK with the peer's Reply (the name
// its probe server was started with; empty for icmp), or the Error; Us is
// how long it took (to the answer or the error), in microseconds.
type ProbeResult struct {
	OK    bool   `json:"ok"`
	Reply string `json:"reply,omitempty"`
	Error string `json:"error,omitempty"`
	Us    int64  `json:"us,omitempty"`
}

// ProbePorts are what every probe server serves: TCP 80, TCP 81, UDP 80.
var ProbePorts = []struct {
	Proto string
	Port  int
}{{"tcp", 80}, {"tcp", 81}, {"udp", 80}}

// Probe is a running probe server (cmd/syprobe) inside a namespace. It
// answers on ProbePorts with its name and probes other addresses from
// inside its namespace on request, through a unix control socket in the
// lab's run dir.
type Probe struct {
	Name string
	Proc *Proc
	sock string
	http *http.Client
}

// StartProbe starts the probe server bin (built from tests/lab/cmd/syprobe)
// in netns, answering with name, and returns once it serves every port.
// It is stopped with t (and the lab).
func (l *Lab) StartProbe(t T, bin, name, netns string) *Probe {
	t.Helper()
	file := "probe-" + strings.NewReplacer("/", "-", " ", "-").Replace(name)
	sock := filepath.Join(l.Dir, file+".sock")
	p := &Probe{Name: name, sock: sock, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
	p.Proc = l.Start(t, ProcSpec{Name: file, Netns: netns, Path: bin, Args: []string{"-name", name, "-control", sock}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.call(ctx, "GET", "/ready", nil, nil)
		cancel()
		if err == nil {
			return p
		}
		if p.Proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("lab %s: probe %s not ready: %v\n%s", l.ID, name, err, p.Proc.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call does one control request; out, when not nil, receives the answer.
func (p *Probe) call(ctx context.Context, method, path string, in, out any) error {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://probe"+path, &body)
	if err != nil {
		return err
	}
	res, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %s %s: %w", p.Name, method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		var r ProbeResult
		_ = json.NewDecoder(res.Body).Decode(&r)
		return fmt.Errorf("probe %s: %s %s: %s %s", p.Name, method, path, res.Status, r.Error)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// Run runs the probes concurrently from p's namespace and returns their
// results in order. The error is about the control socket, not the probes.
func (p *Probe) Run(ctx context.Context, reqs []ProbeRequest) ([]ProbeResult, error) {
	var out []ProbeResult
	if err := p.call(ctx, "POST", "/probe", reqs, &out); err != nil {
		return nil, err
	}
	if len(out) != len(reqs) {
		return nil, fmt.Errorf("probe %s: %d results for %d probes", p.Name, len(out), len(reqs))
	}
	return out, nil
}

// ProbeConn is a TCP connection a probe server keeps open, to test what
// happens to an established connection across a change.
type ProbeConn struct {
	p  *Probe
	id string
}

// Open makes p connect to addr ("ip:port") and keep the connection.
func (p *Probe) Open(ctx context.Context, addr string, timeout time.Duration) (*ProbeConn, error) {
	return p.OpenFrom(ctx, "", addr, timeout)
}

// OpenFrom is Open from the local address src ("": the kernel picks).
func (p *Probe) OpenFrom(ctx context.Context, src, addr string, timeout time.Duration) (*ProbeConn, error) {
	var out struct {
		ID string `json:"id"`
	}
	req := map[string]any{"addr": addr, "src": src, "timeoutMs": timeout.Milliseconds()}
	if err := p.call(ctx, "POST", "/conns", req, &out); err != nil {
		return nil, err
	}
	return &ProbeConn{p: p, id: out.ID}, nil
}

// Send sends one line on the connection and waits up to timeout for the
// peer's answer.
func (c *ProbeConn) Send(ctx context.Context, timeout time.Duration) (ProbeResult, error) {
	var out ProbeResult
	err := c.p.call(ctx, "POST", "/conns/"+c.id+"/send", map[string]any{"timeoutMs": timeout.Milliseconds()}, &out)
	return out, err
}

// Close closes the connection.
func (c *ProbeConn) Close(ctx context.Context) error {
	return c.p.call(ctx, "DELETE", "/conns/"+c.id, nil, nil)
}
