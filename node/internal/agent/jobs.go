package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// SwitchTracer traces a flow through the host's switch without changing
// anything (ovs.Switch.Trace: ofproto/trace).
type SwitchTracer interface {
	Trace(ctx context.Context, bridge, flow string, ctNext []string) (string, error)
}

// jobPoll is how long one jobs long-poll is held open.
const jobPoll = 20 * time.Second

// maxJobTime bounds one job whatever the controller asks.
const maxJobTime = 10 * time.Second

// probeTimeout bounds a probe's wait for an answer: well within the
// controller's wait for the job, so that "no answer" comes back as the
// probe's timeout rather than the job's.
const probeTimeout = 2 * time.Second

// jobLoop long-polls the controller for read-only jobs (switch traces,
// probes) and answers each; it runs until ctx ends. A controller without
// the jobs route (404) is asked again only every minute.
func (a *Agent) jobLoop(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		jobs, err := a.api.jobs(ctx, jobPoll)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Debug("jobs poll", "err", err)
			if client.StatusOf(err) == http.StatusNotFound {
				wait = time.Minute
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		wait = time.Second
		for _, j := range jobs {
			go a.runJob(ctx, j)
		}
	}
}

// runJob runs one job and posts its result.
func (a *Agent) runJob(ctx context.Context, j openapi.NodeJob) {
	d := min(time.Duration(j.TimeoutMillis)*time.Millisecond, maxJobTime)
	if d <= 0 {
		d = maxJobTime
	}
	jctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	res := openapi.NodeJobResult{Status: "ok"}
	switch {
	case j.Kind == openapi.NodeJobTrace && j.Trace != nil:
		if a.cfg.Tracer == nil {
			res = jobError(errors.New("this agent cannot trace its switch"))
			break
		}
		out, err := a.cfg.Tracer.Trace(jctx, j.Trace.Bridge, j.Trace.Flow, j.Trace.CtNext)
		if err != nil {
			res = jobError(err)
			break
		}
		res.Trace = &openapi.NodeTraceResult{Output: out}
	case j.Kind == openapi.NodeJobProbe && j.Probe != nil:
		p, err := a.probe(jctx, *j.Probe)
		if err != nil {
			res = jobError(err)
			break
		}
		res.Probe = &p
	default:
		res = jobError(fmt.Errorf("unknown job kind %q", j.Kind))
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if err := a.api.jobResult(rctx, j.ID, res); err != nil {
		a.log.Debug("job result", "job", j.ID, "err", err)
	}
}

func jobError(err error) openapi.NodeJobResult {
	msg := err.Error()
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	return openapi.NodeJobResult{Status: "error", Error: msg}
}

// probe opens a connection from the namespace of a local container: a TCP
// connect, a UDP datagram that waits for any answer, or an ICMP echo.
// Refused: a TCP reset or an ICMP unreachable came back.
func (a *Agent) probe(ctx context.Context, p openapi.NodeProbeJob) (openapi.NodeProbeResult, error) {
	ns := ""
	for _, c := range a.ports() {
		if c.ID == p.Container {
			ns = c.Netns
			if a.cfg.NetnsPath != nil {
				ns = a.cfg.NetnsPath(c)
			}
		}
	}
	if ns == "" {
		return openapi.NodeProbeResult{}, fmt.Errorf("container %s has no namespace on this host", p.Container)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	start := time.Now()
	var err error
	switch p.Protocol {
	case "TCP":
		err = probeTCP(ctx, ns, p)
	case "UDP":
		err = probeUDP(ctx, ns, p)
	case "ICMP":
		err = probeICMP(ctx, ns, p)
	default:
		return openapi.NodeProbeResult{}, fmt.Errorf("cannot probe %s", p.Protocol)
	}
	r := openapi.NodeProbeResult{Outcome: "answered", Micros: time.Since(start).Microseconds()}
	var ne net.Error
	switch {
	case err == nil:
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		r.Outcome, r.Detail = "refused", err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		r.Outcome, r.Detail = "timeout", "no answer"
	default:
		return r, err
	}
	return r, nil
}

// dialIn connects to p's address and port over network with a socket
// made in the namespace ns.
func dialIn(ctx context.Context, ns, network string, p openapi.NodeProbeJob) (net.Conn, error) {
	var c net.Conn
	err := link.InNetnsPath(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, net.JoinHostPort(p.Address, strconv.Itoa(p.Port)))
		return err
	})
	return c, err
}

func probeTCP(ctx context.Context, ns string, p openapi.NodeProbeJob) error {
	c, err := dialIn(ctx, ns, "tcp", p)
	if c != nil {
		c.Close()
	}
	return err
}

func probeUDP(ctx context.Context, ns string, p openapi.NodeProbeJob) error {
	c, err := dialIn(ctx, ns, "udp", p)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("switchyard-trace\n")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1500))
	return err
}

func probeICMP(ctx context.Context, ns string, p openapi.NodeProbeJob) error {
	var c *icmp.PacketConn
	err := link.InNetnsPath(ns, func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	dst := &net.IPAddr{IP: net.ParseIP(p.Address)}
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("switchyard-trace")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(b, dst); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil {
			continue
		}
		switch body := m.Body.(type) {
		case *icmp.Echo:
			if m.Type == ipv4.ICMPTypeEchoReply && body.ID == id && from.String() == dst.String() {
				return nil
			}
		case *icmp.DstUnreach:
			return syscall.EHOSTUNREACH
		}
	}
}

// ports are the container ports of the program last applied.
func (a *Agent) ports() []openapi.ContainerPort {
	if p := a.appliedPorts.Load(); p != nil {
		return *p
	}
	return nil
}

// jobs long-polls the host's jobs; none with no error means none came.
func (c *nodeClient) jobs(ctx context.Context, wait time.Duration) ([]openapi.NodeJob, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	var js openapi.NodeJobs
	code, err := c.api.Do(ctx, "GET", c.path("jobs")+"?"+url.Values{"timeout": {wait.String()}}.Encode(), nil, &js)
	if err != nil || code == http.StatusNoContent {
		return nil, c.explain(err)
	}
	return js.Jobs, nil
}

func (c *nodeClient) jobResult(ctx context.Context, id string, r openapi.NodeJobResult) error {
	_, err := c.api.Do(ctx, "POST", c.path("jobs/"+url.PathEscape(id)+"/result"), r, nil)
	return c.explain(err)
}
