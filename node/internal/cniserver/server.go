// Package cniserver is the node agent's side of the CNI plugin: a unix
// socket (root-only) answering the plugin's requests (package cniproto),
// one per connection. ADD creates the container at the controller with the
// runtime's netns on this host and ?wait=realized, then answers the address
// the host applied; DEL deletes it (idempotent, and when the controller is
// gone it cleans the container's interface and tells the controller later);
// CHECK verifies the interface, address and OVS port; STATUS says whether
// the agent is ready and the controller reachable; GC deletes the
// containers the plugin made that the runtime no longer lists.
//
// It talks to the controller with the agent's node token (which may touch
// only this host's containers) and reads what the agent applied through
// Programs. It must not touch OVS nor create links: the agent's loop
// attaches the container once the controller's program says so; the only
// link it deletes is a container's eth0 it can prove the agent made, in a
// DEL while the controller is unreachable.
package cniserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/switchyard/switchyard/node/internal/cniproto"
	"github.com/switchyard/switchyard/openapi/client"
)

// Config configures a Server.
type Config struct {
	// Socket is the path to listen on (its directory is created 0700).
	Socket string
	// StateDir keeps the addresses of past containers and the deletes the
	// controller has not heard of yet (state.json).
	StateDir string
	// Host is this host's name; API talks to the controller with its node
	// token.
	Host string
	API  *client.Client
	// Local is what the agent applied (Programs in the agent).
	Local Local
	// WaitTimeout bounds ?wait=realized of one ADD (default 60s).
	WaitTimeout time.Duration
	// RetryEvery is how often deletes the controller missed are retried
	// (default 2s).
	RetryEvery time.Duration
	Log        *slog.Logger
}

// Server answers the plugin.
type Server struct {
	cfg   Config
	log   *slog.Logger
	state *state
	ln    net.Listener
	// mu serializes the verbs of one container name, so that a DEL and an
	// ADD of a restarted container do not interleave.
	mu    sync.Mutex
	names map[string]*sync.Mutex
	kick  chan struct{}
}

// New opens the state and listens on the socket (root-only permissions).
func New(cfg Config) (*Server, error) {
	if cfg.WaitTimeout == 0 {
		cfg.WaitTimeout = 60 * time.Second
	}
	if cfg.RetryEvery == 0 {
		cfg.RetryEvery = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	st, err := openState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o700); err != nil {
		return nil, fmt.Errorf("cni socket directory: %w", err)
	}
	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove the old cni socket: %w", err)
	}
	ln, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("cni socket: %w", err)
	}
	if err := os.Chmod(cfg.Socket, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cni socket permissions: %w", err)
	}
	return &Server{cfg: cfg, log: cfg.Log.With("part", "cni"), state: st, ln: ln,
		names: map[string]*sync.Mutex{}, kick: make(chan struct{}, 1)}, nil
}

// Serve answers requests until ctx ends, and retries the deletes the
// controller missed meanwhile. It removes the socket when it returns.
func (s *Server) Serve(ctx context.Context) error {
	defer os.Remove(s.cfg.Socket)
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	go s.retryLoop(ctx)
	s.log.Info("cni server listening", "socket", s.cfg.Socket)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cni socket: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, conn)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	req, err := cniproto.ReadRequest(conn)
	var res cniproto.Response
	if err != nil {
		res.Error = &cniproto.Error{Code: types.ErrDecodingFailure, Msg: "cannot decode the request", Details: err.Error()}
	} else {
		start := time.Now()
		res = s.Handle(ctx, req)
		lv, msg := slog.LevelInfo, "ok"
		if res.Error != nil {
			lv, msg = slog.LevelWarn, res.Error.Error()
		}
		s.log.Log(ctx, lv, "cni "+req.Command, "container", req.ContainerID, "network", req.Network,
			"took", time.Since(start).Round(time.Microsecond), "result", msg)
	}
	if err := cniproto.WriteResponse(conn, res); err != nil {
		s.log.Warn("cni answer lost", "err", err)
	}
}

// Handle answers one request.
func (s *Server) Handle(ctx context.Context, req cniproto.Request) cniproto.Response {
	var r *cniproto.Result
	var err error
	switch req.Command {
	case cniproto.Add:
		r, err = s.add(ctx, req)
	case cniproto.Del:
		err = s.del(ctx, req)
	case cniproto.Check:
		r, err = s.check(ctx, req)
	case cniproto.Status:
		err = s.status(ctx)
	case cniproto.GC:
		err = s.gc(ctx, req)
	default:
		err = cniErr(types.ErrInvalidEnvironmentVariables, "unknown CNI command", req.Command)
	}
	if err != nil {
		var ce *cniproto.Error
		if !errors.As(err, &ce) {
			ce = &cniproto.Error{Code: types.ErrInternal, Msg: "internal error", Details: err.Error()}
		}
		return cniproto.Response{Error: ce}
	}
	return cniproto.Response{Result: r}
}

// lock serializes the verbs of one container name.
func (s *Server) lock(key string) func() {
	s.mu.Lock()
	m := s.names[key]
	if m == nil {
		m = &sync.Mutex{}
		s.names[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func cniErr(code uint, msg, details string) *cniproto.Error {
	return &cniproto.Error{Code: code, Msg: msg, Details: details}
}

// down reports whether err means the controller cannot be reached (no
// answer, or a gateway or availability error).
func down(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	var ce *client.Error
	switch client.StatusOf(err) {
	case http.StatusServiceUnavailable:
		return true
	case http.StatusBadGateway:
		// The controller's own 502 (problem+json, "degraded") is the
		// realization of a write that failed on a host: an answer, not an
		// outage. A proxy's 502 is an outage.
		return !errors.As(err, &ce) || ce.Problem.Status == 0
	}
	return false
}

// apiErr turns a controller error into a CNI error.
func (s *Server) apiErr(what string, err error) error {
	detail := err.Error()
	var ce *client.Error
	if errors.As(err, &ce) && ce.Problem.Detail != "" {
		detail = ce.Problem.Detail
	}
	switch st := client.StatusOf(err); {
	case down(err):
		return cniErr(types.ErrTryAgainLater, "the Switchyard controller is unreachable: try again later",
			fmt.Sprintf("%s: controller at %s: %s", what, s.cfg.API.Base, detail))
	case st == http.StatusGatewayTimeout:
		return cniErr(types.ErrTryAgainLater, "the container was not realized in time: try again later", what+": "+detail)
	case st == http.StatusBadGateway:
		return cniErr(cniproto.ErrAttachFailed, "the host failed to attach the container", what+": "+detail)
	case st == http.StatusConflict:
		return cniErr(cniproto.ErrConflict, "conflict at the controller", what+": "+detail)
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		return cniErr(cniproto.ErrForbidden, "the agent's node token may not do this", what+": "+detail)
	case st == http.StatusBadRequest || st == http.StatusNotFound || st == http.StatusUnprocessableEntity:
		return cniErr(types.ErrInvalidNetworkConfig, "the controller refused the container", what+": "+detail)
	}
	return cniErr(types.ErrInternal, "the controller failed", what+": "+detail)
}
