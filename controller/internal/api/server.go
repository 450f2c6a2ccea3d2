// Package api serves Switchyard's REST API under /api/v1 (described by
// openapi/openapi.yaml): intent CRUD, tokens, audit, the event stream, the
// node protocol, traces (traces.go: the layers from package trace, the
// agents' answers through the node layer's jobs), and /healthz, /readyz,
// /metrics. It authenticates and authorizes every request (limiting failed
// authentications per client address, ratelimit.go), checks it against the
// contract (contract.go: parameters, content type, body schema, no NUL or
// invalid UTF-8, read-only fields on update) before any handler or SQL
// runs, turns every client error into RFC 9457 problem+json (5xx without
// internals, which go to the log), and delegates all state to the store. It
// must not hold intent of its own nor talk SQL.
package api

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Realizer waits until the hosts that a revision touches have applied it.
// The node layer implements it; without one, writes never wait.
type Realizer interface {
	// WaitRealized returns nil once every host that needs revision rev has
	// applied it, or a *problem.Error (504 with the hosts still behind).
	WaitRealized(ctx context.Context, rev int64, timeout time.Duration) error
	// HostProgram returns the revision at which host's program last
	// changed, if the controller has one for it.
	HostProgram(host string) (int64, bool)
}

// NodeHandler serves the node protocol routes, mounted under
// /api/v1/nodes/:host by Server. The node layer implements it.
type NodeHandler interface {
	Register(c *gin.Context)
	Program(c *gin.Context)
	Status(c *gin.Context)
}

// Server holds what the handlers need.
type Server struct {
	Store    *store.Store
	Realizer Realizer
	Nodes    NodeHandler
	Log      *slog.Logger
	// ReadyChecks are conditions /readyz checks besides the store's.
	ReadyChecks []ReadyCheck
	// Console, when set, is the web console's files (webui.Files), served
	// at / (see console.go).
	Console fs.FS
	// MaxReachability caps the containers of a reachability matrix; 0
	// means DefaultMaxReachability.
	MaxReachability int
	// AuthFailures failed authentications from one address within
	// AuthFailureWindow block it (ratelimit.go); 0 means the defaults.
	AuthFailures      int
	AuthFailureWindow time.Duration
	// MaxInflightWrites and AdmissionWait shape admission control
	// (admission.go); 0 means DefaultMaxInflightWrites and
	// DefaultAdmissionWait.
	MaxInflightWrites int
	AdmissionWait     time.Duration
	// RequestTimeout bounds a request's work (deadline.go); 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration

	hub       *hub
	logHub    *hub       // policy log entries committed
	statusHub *statusHub // the hosts' report notices (host-status events)
	metrics   *metrics
	tokens    *tokenCache
	authFails *authLimiter
	contract  *contract
	admission *admission
	probes    probeLimiter // live trace probes, per token (traces.go)
}

// Handler builds the HTTP handler. ctx bounds the background work it starts
// (the change listener behind the event stream).
func (s *Server) Handler(ctx context.Context) http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	s.hub = newHub()
	go s.Store.Listen(ctx, store.NotifyChannel, s.hub.publish)
	s.logHub = newHub()
	go s.Store.Listen(ctx, store.PolicyLogChannel, s.logHub.publish)
	s.statusHub = newStatusHub()
	go s.Store.Listen(ctx, store.StatusChannel, s.statusHub.publish)
	s.tokens = newTokenCache(10 * time.Second)
	s.authFails = newAuthLimiter(s.AuthFailures, s.AuthFailureWindow)
	go s.Store.Listen(ctx, store.TokenChannel, func(string) { s.tokens.clear() })
	s.metrics = newMetrics(s.Store)
	s.admission = newAdmission(s.MaxInflightWrites, s.AdmissionWait)
	s.metrics.reg.MustRegister(s.admission.rejected, s.admission.inflight)
	if c, ok := s.Realizer.(prometheus.Collector); ok {
		s.metrics.reg.MustRegister(c)
	}
	var err error
	if s.contract, err = newContract(); err != nil {
		panic(err) // the embedded spec is checked by openapi's tests
	}

	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(s.recover(), s.observe(), unboundedWrites(), s.boundRequests(), s.admit())
	r.NoRoute(s.console(), func(c *gin.Context) { fail(c, notFoundRoute(c)) })
	r.NoMethod(func(c *gin.Context) { fail(c, methodNotAllowed(c)) })

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(s.metrics.handler()))
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapi.SpecYAML) })

	v1 := r.Group("/api/v1", s.authenticate())
	// Every /api/v1 route passes allow or nodeScope, which check the
	// request against the contract once its sender may make it.
	viewer, operator, admin := s.allow(roleViewer), s.allow(roleOperator), s.allow(roleAdmin)

	hosts := unscoped("hosts", s.Store.ListHosts, s.Store.GetHost, s.Store.CreateHost, s.Store.UpdateHost, s.Store.DeleteHost,
		func(v *openapi.Host) *openapi.Meta { return &v.Meta })
	hosts.decorate = s.realization
	networks := unscoped("networks", s.Store.ListNetworks, s.Store.GetNetwork, s.Store.CreateNetwork, s.Store.UpdateNetwork,
		s.Store.DeleteNetwork, func(v *openapi.Network) *openapi.Meta { return &v.Meta })
	containers := resource[openapi.Container]{
		kind: "containers", scoped: true, hosted: true,
		list: s.Store.ListContainers, get: s.Store.GetContainer, create: s.Store.CreateContainer,
		update: s.Store.UpdateContainer, del: s.Store.DeleteContainer,
		meta: func(v *openapi.Container) *openapi.Meta { return &v.Meta },
	}
	services := resource[openapi.Service]{
		kind: "services", scoped: true,
		list: s.Store.ListServices, get: s.Store.GetService, create: s.Store.CreateService,
		update: s.Store.UpdateService, del: s.Store.DeleteService,
		meta: func(v *openapi.Service) *openapi.Meta { return &v.Meta },
	}
	policies := resource[openapi.Policy]{
		kind: "policies", scoped: true,
		list: s.Store.ListPolicies, get: s.Store.GetPolicy, create: s.Store.CreatePolicy,
		update: s.Store.UpdatePolicy, del: s.Store.DeletePolicy,
		meta: func(v *openapi.Policy) *openapi.Meta { return &v.Meta },
	}
	mount(s, v1, hosts, viewer, operator)
	mount(s, v1, networks, viewer, operator)
	mount(s, v1, containers, viewer, operator)
	mount(s, v1, services, viewer, operator)
	mount(s, v1, policies, viewer, operator)
	v1.POST("/containers/:ref/move", operator, s.moveContainer)
	v1.GET("/networks/:ref/reachability", viewer, s.reachability)
	v1.GET("/services/:ref/endpoints", viewer, s.serviceEndpoints)
	v1.GET("/policies/:ref/stats", viewer, s.policyStats)
	v1.GET("/policies/:ref/log", viewer, s.policyLog)
	v1.POST("/traces", operator, s.traceRequest)

	v1.GET("/tokens", admin, s.listTokens)
	v1.POST("/tokens", admin, s.createToken)
	v1.GET("/tokens/:ref", admin, s.getToken)
	v1.DELETE("/tokens/:ref", admin, s.revokeToken)
	v1.GET("/audit", admin, s.listAudit)
	v1.GET("/events", viewer, s.events)
	v1.GET("/revision", viewer, s.revision)
	v1.GET("/whoami", viewer, s.whoami)

	if s.Nodes != nil {
		n := v1.Group("/nodes/:host", s.nodeScope())
		n.POST("/register", s.Nodes.Register)
		n.GET("/program", s.Nodes.Program)
		n.POST("/status", s.Nodes.Status)
		if jh, ok := s.Nodes.(JobHandler); ok {
			n.GET("/jobs", jh.Jobs)
			n.POST("/jobs/:id/result", jh.JobResult)
		}
	}
	return r
}

// Timeouts bound one connection of the HTTP server: how long a client may
// take to send a request's headers and whole request, how long an answer
// may take to write, and how long a kept-alive connection may idle. The
// event stream, the node long-poll and writes with ?wait= lift the write
// deadline (unboundedWrites); they end on their own terms.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are the controller's.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 2 * time.Minute}

// NewHTTPServer returns an HTTP server for h on addr with the timeouts t.
func NewHTTPServer(addr string, h http.Handler, t Timeouts) *http.Server {
	return &http.Server{Addr: addr, Handler: h,
		ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle}
}

// longRoutes answer for as long as they have something to say.
var longRoutes = map[string]bool{"/api/v1/events": true, "/api/v1/nodes/:host/program": true}

// unboundedWrites lifts the server's write deadline for the event stream,
// the node long-poll and writes waiting until realized: each bounds itself
// (client disconnect, ?timeout=).
func unboundedWrites() gin.HandlerFunc {
	return func(c *gin.Context) {
		if selfBounded(c) {
			// Fails only for writers without deadlines (tests' recorders).
			_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
		}
		c.Next()
	}
}

// realization shows whether a host has applied its current program.
func (s *Server) realization(h *openapi.Host) {
	if s.Realizer == nil {
		return
	}
	if rev, ok := s.Realizer.HostProgram(h.Name); ok {
		h.ProgramRevision = rev
		h.Realized = h.AppliedRevision >= rev
	}
}

// ReadyCheck is one condition of /readyz: nil when met, else why not. A
// *problem.Error is answered as it is (its Cause only logged); any other
// error is logged and answered as a bare 503.
type ReadyCheck func(ctx context.Context) error

// readyz answers 200 once the store and every check in ReadyChecks are
// ready. It is unauthenticated: it says what is wrong, never internals.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	for _, check := range append([]ReadyCheck{s.Store.Ready}, s.ReadyChecks...) {
		if err := check(ctx); err != nil {
			fail(c, unavailableProblem(err))
			return
		}
	}
	c.String(http.StatusOK, "ready")
}

func (s *Server) revision(c *gin.Context) {
	rev, err := s.Store.Revision(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"revision": rev})
}
