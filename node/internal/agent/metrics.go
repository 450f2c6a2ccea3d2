package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/openapi"
)

// metrics are the agent's Prometheus metrics, in a registry of their own
// (several agents can live in one test process).
type metrics struct {
	reg       *prometheus.Registry
	applyTime prometheus.Histogram
	applyErrs prometheus.Counter
	flows     prometheus.Gauge
	ports     *prometheus.GaugeVec
	repairs   prometheus.Counter
	// resyncsDeferred counts resyncs that gave way to a new program.
	resyncsDeferred prometheus.Counter
	// resyncsWaited counts due resyncs put off for a lull in the programs.
	resyncsWaited prometheus.Counter
	restarts      prometheus.Counter
	controller    prometheus.Gauge
	reports       *prometheus.CounterVec
	logDropped    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_agent_apply_duration_seconds", Help: "Time an apply of the host's program took (failed ones too).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		applyErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_apply_errors_total", Help: "Applies that failed as a whole (they are retried with backoff).",
		}),
		flows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_agent_flows", Help: "OpenFlow flows installed by the last successful apply.",
		}),
		ports: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_agent_ports", Help: "Ports of the host's program by state (up, down, error), as last applied or observed.",
		}, []string{"state"}),
		resyncsDeferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_resyncs_deferred_total", Help: "Resyncs whose check of the host was cut short by a new program (applied first; the check runs again soon)."}),
		resyncsWaited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_resyncs_waited_total", Help: "Times a due resync waited for a lull in the programs arriving (one arriving would cut its check short)."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_resync_repairs_total", Help: "Resyncs that found the host drifted from its program and re-applied it.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_ovs_restarts_total", Help: "Restarts of ovs-vswitchd or reconnects to OVSDB the agent reacted to.",
		}),
		controller: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_agent_controller_connected", Help: "1 when the last call to the controller succeeded, else 0.",
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_reports_total", Help: "Status reports posted to the controller, by outcome (ok, error).",
		}, []string{"outcome"}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_policy_log_dropped_total",
			Help: "Logged connections dropped because the queue of those not yet reported was full.",
		}),
	}
	m.reg.MustRegister(m.applyTime, m.applyErrs, m.flows, m.ports, m.repairs, m.resyncsDeferred, m.resyncsWaited, m.restarts, m.controller, m.reports, m.logDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, s := range []string{"up", "down", "error"} {
		m.ports.WithLabelValues(s)
	}
	return m
}

// setPorts counts ports by state.
func (m *metrics) setPorts(ports []openapi.PortStatus) {
	n := map[string]float64{"up": 0, "down": 0, "error": 0}
	for _, p := range ports {
		switch {
		case p.Error != "":
			n["error"]++
		case p.Up:
			n["up"]++
		default:
			n["down"]++
		}
	}
	for s, v := range n {
		m.ports.WithLabelValues(s).Set(v)
	}
}

func (m *metrics) connected(ok bool) {
	if ok {
		m.controller.Set(1)
	} else {
		m.controller.Set(0)
	}
}

// serveMetrics listens on addr and serves /metrics and /debug/pprof/ until
// ctx ends. It
// returns the address it listens on.
func (a *Agent) serveMetrics(ctx context.Context, addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener (SWITCHYARD_AGENT_METRICS=%s): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	// Go's profiler, for "where does the agent's CPU go" (go tool pprof
	// http://ADDR/debug/pprof/profile?seconds=30). Same listener, so the
	// same exposure as the metrics: keep it on loopback or a management net.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server stopped", "err", err)
		}
	}()
	return l.Addr(), nil
}
