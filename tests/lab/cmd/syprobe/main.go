// Command syprobe is the lab's probe server: started inside a container's
// network namespace, it answers on TCP 80, TCP 81 and UDP 80 with its name
// (and HTTP on 8080, lab.ProbeHTTPPort), and it probes other addresses and
// DNS servers on request from the test, over a unix
// control socket (unix sockets do not care about network namespaces, so the
// test binary in the root namespace drives probes that leave from inside
// the container). The client is package lab (StartProbe, Probe).
//
//	syprobe -name x/a -control /tmp/sylab-<id>/probe-x-a.sock
//
// Served ports: every line received on a TCP connection gets "<name>\n"
// back (a connection stays open for as many lines as the peer sends);
// every UDP datagram gets "<name>" back; every HTTP request on 8080 gets
// 200 "<name>\n" (what a health check probes). TCP and UDP on
// lab.SeenByPort (90) answer "<name> <peer ip:port>" instead: the address
// the server saw the client connect from (lab.ParseSeen), to tell NAT
// apart from a kept client address. A UDP answer leaves from the address
// the datagram was sent to (IP_PKTINFO), so a namespace with several
// addresses (the lab's outside) answers from the right one.
//
// A probe (and a kept connection) may name its source address (src): the
// client then binds to it.
//
// Control API (HTTP on the unix socket, JSON bodies):
//
//	GET  /ready                  200 once every served port listens
//	POST /probe   [Probe...]     runs the probes concurrently -> [Result...]
//	POST /conns   {addr,src?}    opens a TCP connection -> {id} (or 502)
//	POST /conns/{id}/send {timeoutMs} sends a line on it -> Result
//	DELETE /conns/{id}           closes it
//	POST /serve   {proto,port,up} stops (closing its connections) or
//	                             starts again one served port ("tcp", "udp", "http")
//	POST /dns     [DNSQuery...]  DNS queries, concurrently -> [DNSAnswer...]
//	POST /dnsbench {DNSBench}    one query repeated -> DNSBenchResult
//	POST /streams {probe,intervalMs} starts a probe every interval -> {id}
//	GET /streams/{id}            the attempts finished so far -> [StreamRecord...]
//	DELETE /streams/{id}         stops it -> [StreamRecord...]
//	POST /load {probe,count,concurrency} a probe repeated -> LoadResult
//
// It must not do anything but listen, answer and probe: it runs as root in
// the lab and touches no interface, route or file besides its socket.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// Probe and Result are the control API's request and answer, shared with
// the client.
type (
	Probe  = lab.ProbeRequest
	Result = lab.ProbeResult
)

func main() {
	name := flag.String("name", "", "the name this server answers with")
	control := flag.String("control", "", "path of the unix control socket")
	flag.Parse()
	if *name == "" || *control == "" {
		log.Fatal("syprobe: -name and -control are required")
	}
	srv := &servers{name: *name, open: map[string]func(){}}
	for _, pp := range append(lab.ProbePorts[:len(lab.ProbePorts):len(lab.ProbePorts)], lab.SeenByPorts...) {
		if err := srv.up(pp.Proto, pp.Port); err != nil {
			log.Fatalf("syprobe: %v", err)
		}
	}
	if err := srv.up("http", lab.ProbeHTTPPort); err != nil {
		log.Fatalf("syprobe: %v", err)
	}

	_ = os.Remove(*control)
	cl, err := net.Listen("unix", *control)
	if err != nil {
		log.Fatalf("syprobe: %v", err)
	}
	log.Printf("syprobe %s: serving tcp 80, tcp 81, udp 80, http %d, seen-by tcp/udp %d; control %s", *name, lab.ProbeHTTPPort, lab.SeenByPort, *control)
	log.Fatal(http.Serve(cl, newControl(srv)))
}

// control is the HTTP handler of the control socket.
type control struct {
	mu    sync.Mutex
	conns map[string]*conn
	next  atomic.Int64
}

// conn is a TCP connection kept open across requests.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

func newControl(srv *servers) http.Handler {
	ctl := &control{conns: map[string]*conn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /probe", ctl.probe)
	mux.HandleFunc("POST /conns", ctl.open)
	mux.HandleFunc("POST /conns/{id}/send", ctl.send)
	mux.HandleFunc("DELETE /conns/{id}", ctl.close)
	mux.HandleFunc("POST /serve", srv.serve)
	mux.HandleFunc("POST /dns", dnsQueries)
	mux.HandleFunc("POST /dnsbench", dnsBench)
	st := &streams{runs: map[string]*stream{}}
	mux.HandleFunc("POST /streams", st.start)
	mux.HandleFunc("GET /streams/{id}", st.records)
	mux.HandleFunc("DELETE /streams/{id}", st.end)
	mux.HandleFunc("POST /load", load)
	return mux
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (ctl *control) probe(w http.ResponseWriter, r *http.Request) {
	var ps []Probe
	if err := json.NewDecoder(r.Body).Decode(&ps); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	out := make([]Result, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = run(p)
		}()
	}
	wg.Wait()
	reply(w, http.StatusOK, out)
}

// run performs one probe.
func run(p Probe) Result {
	timeout := time.Duration(p.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Second
	}
	deadline := time.Now().Add(timeout)
	var got string
	var err error
	src, err := srcIP(p.Src)
	switch {
	case err != nil:
	case p.Proto == "tcp":
		got, err = probeTCP(p.Addr, src, deadline)
	case p.Proto == "udp":
		got, err = probeUDP(p.Addr, src, deadline, time.Duration(p.ResendMs)*time.Millisecond)
	case p.Proto == "icmp":
		err = probeICMP(p.Addr, src, deadline)
	default:
		err = fmt.Errorf("unknown proto %q", p.Proto)
	}
	us := time.Since(deadline.Add(-timeout)).Microseconds()
	if err != nil {
		return Result{Error: err.Error(), Us: us}
	}
	return Result{OK: true, Reply: got, Us: us}
}

// srcIP parses a probe's source address ("" is none: the kernel picks).
func srcIP(s string) (net.IP, error) {
	if s == "" {
		return nil, nil
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return nil, fmt.Errorf("src %q is not an IPv4 address", s)
	}
	return ip, nil
}

// dialTCP connects to addr, from src when set.
func dialTCP(addr string, src net.IP, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	return d.Dial("tcp4", addr)
}

func probeTCP(addr string, src net.IP, deadline time.Time) (string, error) {
	c, err := dialTCP(addr, src, time.Until(deadline))
	if err != nil {
		return "", err
	}
	defer c.Close()
	return exchange(c, bufio.NewReader(c), deadline)
}

// exchange sends one line and reads the answer line.
func exchange(c net.Conn, r *bufio.Reader, deadline time.Time) (string, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte("probe\n")); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return strings.TrimSpace(line), err
}

// probeUDP sends one datagram to addr and reads the answer; with resend,
// it sends again each time no answer came within resend, as a real UDP
// client (a resolver) does: one lost datagram is then not a failed probe.
func probeUDP(addr string, src net.IP, deadline time.Time, resend time.Duration) (string, error) {
	d := net.Dialer{}
	if src != nil {
		d.LocalAddr = &net.UDPAddr{IP: src}
	}
	c, err := d.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetWriteDeadline(deadline); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	for {
		if _, err := c.Write([]byte("probe")); err != nil {
			return "", err
		}
		wait := deadline
		if resend > 0 && time.Now().Add(resend).Before(deadline) {
			wait = time.Now().Add(resend)
		}
		if err := c.SetReadDeadline(wait); err != nil {
			return "", err
		}
		n, err := c.Read(buf)
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() && time.Until(deadline) > 0 {
			continue
		}
		return string(buf[:n]), err
	}
}

var icmpID atomic.Uint32

// probeICMP sends one echo request on a raw socket connected to addr (so
// it only sees addr's packets) and waits for the matching echo reply.
func probeICMP(addr string, src net.IP, deadline time.Time) error {
	d := net.Dialer{}
	if src != nil {
		d.LocalAddr = &net.IPAddr{IP: src}
	}
	c, err := d.Dial("ip4:icmp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	id := uint16(os.Getpid()) ^ uint16(icmpID.Add(1))
	req := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 's', 'y'}
	binary.BigEndian.PutUint16(req[2:], checksum(req))
	if _, err := c.Write(req); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		m := buf[:n]
		// A raw IPv4 socket returns the IP header too.
		if n > 0 && m[0]>>4 == 4 {
			if hl := int(m[0]&0x0f) * 4; hl <= n {
				m = m[hl:]
			}
		}
		if len(m) >= 8 && m[0] == 0 && binary.BigEndian.Uint16(m[4:]) == id {
			return nil
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func (ctl *control) open(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Addr      string `json:"addr"`
		Src       string `json:"src"`
		TimeoutMs int    `json:"timeoutMs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	src, err := srcIP(req.Src)
	if err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	c, err := dialTCP(req.Addr, src, timeout)
	if err != nil {
		reply(w, http.StatusBadGateway, Result{Error: err.Error()})
		return
	}
	id := fmt.Sprint(ctl.next.Add(1))
	ctl.mu.Lock()
	ctl.conns[id] = &conn{c: c, r: bufio.NewReader(c)}
	ctl.mu.Unlock()
	reply(w, http.StatusOK, map[string]string{"id": id})
}

func (ctl *control) get(id string) (*conn, error) {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if c := ctl.conns[id]; c != nil {
		return c, nil
	}
	return nil, errors.New("no connection " + id)
}

func (ctl *control) send(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TimeoutMs int `json:"timeoutMs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	c, err := ctl.get(r.PathValue("id"))
	if err != nil {
		reply(w, http.StatusNotFound, Result{Error: err.Error()})
		return
	}
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Second
	}
	got, err := exchange(c.c, c.r, time.Now().Add(timeout))
	if err != nil {
		reply(w, http.StatusOK, Result{Error: err.Error()})
		return
	}
	reply(w, http.StatusOK, Result{OK: true, Reply: got})
}

func (ctl *control) close(w http.ResponseWriter, r *http.Request) {
	ctl.mu.Lock()
	c := ctl.conns[r.PathValue("id")]
	delete(ctl.conns, r.PathValue("id"))
	ctl.mu.Unlock()
	if c != nil {
		c.c.Close()
	}
	w.WriteHeader(http.StatusNoContent)
}
