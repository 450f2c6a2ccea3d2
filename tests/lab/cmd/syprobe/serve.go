package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"

	"github.com/switchyard/switchyard/tests/lab"
)

// servers are the ports syprobe serves, each of which the test may stop
// and start again (POST /serve): a backend whose server is down, for a
// health check.
type servers struct {
	name string
	mu   sync.Mutex
	// open maps "proto/port" to the function that stops it: closes its
	// listener and every connection it accepted.
	open map[string]func()
}

func key(proto string, port int) string { return fmt.Sprintf("%s/%d", proto, port) }

// up starts serving proto ("tcp", "udp" or "http") on port; serving
// already is fine.
func (s *servers) up(proto string, port int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key(proto, port)] != nil {
		return nil
	}
	addr := fmt.Sprintf(":%d", port)
	var stop func()
	switch proto {
	case "tcp":
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return err
		}
		t := &tcpServer{ln: ln, name: s.name, seen: port == lab.SeenByPort, conns: map[net.Conn]bool{}}
		go t.serve()
		stop = t.stop
	case "udp":
		pc, err := listenUDP(addr)
		if err != nil {
			return err
		}
		go serveUDP(pc, s.name, port == lab.SeenByPort)
		stop = func() { pc.Close() }
	case "http":
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, s.name)
		})}
		go func() {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Fatalf("syprobe: http: %v", err)
			}
		}()
		stop = func() { hs.Close() } // listener and every connection, kept-alive ones too
	default:
		return fmt.Errorf("unknown proto %q (tcp, udp, http)", proto)
	}
	s.open[key(proto, port)] = stop
	return nil
}

// down stops serving proto on port; not serving is fine.
func (s *servers) down(proto string, port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop := s.open[key(proto, port)]; stop != nil {
		stop()
		delete(s.open, key(proto, port))
	}
}

// serve is POST /serve {proto, port, up}.
func (s *servers) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Proto string `json:"proto"`
		Port  int    `json:"port"`
		Up    bool   `json:"up"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	if !req.Up {
		s.down(req.Proto, req.Port)
	} else if err := s.up(req.Proto, req.Port); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	reply(w, http.StatusOK, Result{OK: true})
}

// tcpServer answers every line with the name (and, seen, the peer's
// address: lab.SeenByPort), on as many connections as come, until stopped.
type tcpServer struct {
	ln    net.Listener
	name  string
	seen  bool
	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
}

func (t *tcpServer) serve() {
	for {
		c, err := t.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Fatalf("syprobe: accept: %v", err)
		}
		t.mu.Lock()
		if t.done {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = true
		t.mu.Unlock()
		go t.handle(c)
	}
}

func (t *tcpServer) handle(c net.Conn) {
	defer func() {
		c.Close()
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	answer := []byte(t.name + "\n")
	if t.seen {
		answer = []byte(lab.SeenReply(t.name, c.RemoteAddr().String()) + "\n")
	}
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		if _, err := c.Write(answer); err != nil {
			return
		}
	}
}

func (t *tcpServer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	t.ln.Close()
	for c := range t.conns {
		c.Close()
	}
}
