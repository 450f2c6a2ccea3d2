package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/controller/internal/store"
)

// metrics are the controller's Prometheus metrics, in a registry of their
// own so that several servers can live in one test process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(st *store.Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_http_request_duration_seconds", Help: "HTTP request durations by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	pool := st.Pool
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("switchyard_db_pool_total_conns", "Open database connections.", func() float64 { return float64(pool.Stat().TotalConns()) }),
		gauge("switchyard_db_pool_idle_conns", "Idle database connections.", func() float64 { return float64(pool.Stat().IdleConns()) }),
		gauge("switchyard_db_pool_acquired_conns", "Database connections in use.", func() float64 { return float64(pool.Stat().AcquiredConns()) }),
		gauge("switchyard_db_pool_max_conns", "Largest database pool size.", func() float64 { return float64(pool.Stat().MaxConns()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_db_pool_acquire_wait_seconds_total", Help: "Time spent waiting for a database connection."},
			func() float64 { return pool.Stat().AcquireDuration().Seconds() }),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe counts and times every request, and logs it.
func (s *Server) observe() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		code := c.Writer.Status()
		s.metrics.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(code)).Inc()
		s.metrics.duration.WithLabelValues(route, c.Request.Method).Observe(d.Seconds())
		attrs := []any{"method", c.Request.Method, "path", c.Request.URL.Path, "status", code, "duration", d}
		if t := token(c); t.Name != "" {
			attrs = append(attrs, "actor", t.Name)
		}
		if e, ok := c.Get("error"); ok {
			attrs = append(attrs, "error", e)
			s.Log.Error("request", attrs...)
			return
		}
		s.Log.Debug("request", attrs...)
	}
}
