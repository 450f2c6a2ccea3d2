package converge

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/ovs"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/lab"
)

// logAction is the controller action of a log flow (POLICY-CONTRACT.md).
func logAction(cookie uint64, verdict, dir byte) string {
	var ud []string
	for _, b := range append(binary.BigEndian.AppendUint64(nil, cookie), verdict, dir) {
		ud = append(ud, fmt.Sprintf("%02x", b))
	}
	return fmt.Sprintf("controller(userdata=%s,meter_id=%d)", strings.Join(ud, "."), ovs.LogMeterID)
}

// logSink collects log records.
type logSink struct {
	mu   sync.Mutex
	recs []openapi.PolicyLogRecord
}

func (s *logSink) add(r openapi.PolicyLogRecord) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *logSink) all() []openapi.PolicyLogRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]openapi.PolicyLogRecord(nil), s.recs...)
}

// waitUntil polls cond (readiness, not timing: the deadline only stops a
// hang).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

var (
	meterIn      = regexp.MustCompile(`packet_in_count:(\d+)`)
	meterDropped = regexp.MustCompile(`0: packet_count:(\d+)`)
)

// meterStats reads the log meter's packets in and dropped.
func meterStats(t *testing.T, h *lab.Host) (in, dropped int) {
	t.Helper()
	out := h.OFCtl(t, "meter-stats", "br-int", fmt.Sprintf("meter=%d", ovs.LogMeterID))
	mi, md := meterIn.FindStringSubmatch(out), meterDropped.FindStringSubmatch(out)
	if mi == nil || md == nil {
		t.Fatalf("meter stats:\n%s", out)
	}
	in, _ = strconv.Atoi(mi[1])
	dropped, _ = strconv.Atoi(md[1])
	return in, dropped
}

// TestPolicyObservation runs on a real OVS host with hand-written flows:
// the forwarding flows of two containers carry one counted cookie, and
// log flows send UDP to port 9999 and ICMP echo requests of c1 to the
// controller with log userdata through the log meter (rate 10/s). It
// checks that the counters of the cookie are read (summed over its flows),
// that each logged packet arrives decoded, that a ping flood is capped by
// the meter (every packet it passed was logged, the rest dropped), and
// that the meter and the log come back after ovs-vswitchd restarts.
func TestPolicyObservation(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	a := newHost(t, l, h, func(o *Options) { o.PolicyLogRate = 10 })
	// As the agent does: flows then carry the generation in their top
	// bits, which the counters must not (the controller knows compiled
	// cookies only).
	gctx, gcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if gen, err := a.NewGeneration(gctx); err != nil || gen == 0 {
		t.Fatalf("generation %d: %v", gen, err)
	}
	gcancel()
	c1, c2 := ctr{N: 1, Host: h.Name}, ctr{N: 2, Host: h.Name}
	const counted = ovs.CookieCounted | 0x5151
	const logCookie = ovs.CookieCounted | 0x6262
	p := program(h.Name, 1, []ctr{c1, c2}, nil, "geneve")
	for i := range p.Flows {
		if p.Flows[i].Table == 1 {
			p.Flows[i].Cookie = counted
		}
	}
	p.Flows = append(p.Flows,
		openapi.Flow{Table: 0, Priority: 150, Cookie: logCookie, Match: "udp,tp_dst=9999,in_port=${port:vc1}",
			Actions: logAction(logCookie, 1, 2) + ",resubmit(,1)"},
		openapi.Flow{Table: 0, Priority: 150, Cookie: logCookie | ovs.CookieConn, Match: "icmp,icmp_type=8,in_port=${port:vc1}",
			Actions: logAction(logCookie, 2, 1) + ",resubmit(,1)"})
	if r := apply(t, a, p); r.Degraded() {
		t.Fatalf("degraded: %+v", r)
	}
	if out := h.OFCtl(t, "dump-meters", "br-int"); !strings.Contains(out, "meter=1 pktps bands=\ntype=drop rate=10") {
		t.Fatalf("log meter:\n%s", out)
	}

	obs := a.sw.PolicyObserver()
	defer obs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var sink logSink
	subscribed := make(chan struct{}, 10)
	lctx, stopListen := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		obs.ListenLog(lctx, sink.add, func() { subscribed <- struct{}{} })
	}()
	defer func() { stopListen(); <-done }()
	<-subscribed

	// Three UDP packets to port 9999: three records, decoded.
	if _, err := lab.RunIn(ctx, sandbox(l, h, c1), "bash", "-c",
		"for i in 1 2 3; do echo x > /dev/udp/"+c2.IP()+"/9999; done"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "3 UDP log records", func() bool { return len(sink.all()) >= 3 })
	r := sink.all()[0]
	if r.Cookie != fmt.Sprintf("%#x", logCookie) || r.Verdict != "allow" || r.Direction != "egress" || r.Protocol != "UDP" ||
		r.SrcIP != c1.IP() || r.DstIP != c2.IP() || r.DstPort != 9999 || r.SrcPort == 0 || r.Time.IsZero() {
		t.Fatalf("record %+v", r)
	}

	// Counters: pings both ways cross the two counted flows. OVS moves the
	// datapath's counters into the flows' periodically: wait for them.
	ping(t, sandbox(l, h, c1), c2)
	var stats []openapi.RuleStat
	got := map[string]openapi.RuleStat{}
	// 3 UDP, at least 3 requests and 3 replies (the ping) cross the two
	// counted flows; the echo requests also cross the ICMP log flow.
	waitUntil(t, "the counters of the traffic", func() bool {
		var err error
		if stats, err = obs.RuleStats(ctx); err != nil {
			t.Fatal(err)
		}
		clear(got)
		for _, s := range stats {
			got[s.Cookie] = s
		}
		return got[fmt.Sprintf("%#x", counted)].Packets >= 9 && got[fmt.Sprintf("%#x", logCookie|ovs.CookieConn)].Packets >= 3 &&
			got[fmt.Sprintf("%#x", logCookie)].Packets >= 3
	})
	if s := got[fmt.Sprintf("%#x", counted)]; s.Bytes < 9*42 {
		t.Fatalf("counted cookie: %+v in %+v", s, stats)
	}
	if len(stats) != 3 {
		t.Fatalf("stats of uncounted flows read: %+v", stats)
	}

	// A flood: the meter passes about 10 per second, the rest is dropped;
	// every packet it passed arrives as a record.
	if _, err := lab.RunIn(ctx, sandbox(l, h, c1), "ping", "-q", "-f", "-c", "2000", c2.IP()); err != nil {
		t.Fatal(err)
	}
	in, dropped := meterStats(t, h)
	waitUntil(t, fmt.Sprintf("%d records (meter: %d in, %d dropped)", in-dropped, in, dropped),
		func() bool { return len(sink.all()) >= in-dropped })
	icmp := 0
	for _, r := range sink.all() {
		if r.Protocol == "ICMP" {
			icmp++
			if r.Verdict != "deny" || r.Direction != "ingress" || r.DstPort != 0 {
				t.Fatalf("ICMP record %+v", r)
			}
		}
	}
	if len(sink.all()) != in-dropped || dropped == 0 || icmp >= 1000 {
		t.Fatalf("flood of 2000: %d records (%d ICMP), meter %d in, %d dropped", len(sink.all()), icmp, in, dropped)
	}
	t.Logf("flood of 2000 echo requests: %d logged, %d dropped by the meter", icmp, dropped)

	// ovs-vswitchd restarts: the meter is gone with the flows; the next
	// apply puts it back before the flows, and the listener reconnects.
	h.RestartOVS(t)
	select {
	case <-a.sw.Restarts():
	case <-time.After(60 * time.Second):
		t.Fatal("no restart reported within 60 s")
	}
	p.Revision = 2
	if r := apply(t, a, p); r.Degraded() || r.OpenFlow != "full" {
		t.Fatalf("after the restart: %+v", r)
	}
	if out := h.OFCtl(t, "dump-meters", "br-int"); !strings.Contains(out, "meter=1 pktps bands=\ntype=drop rate=10") {
		t.Fatalf("log meter after the restart:\n%s", out)
	}
	<-subscribed
	before := len(sink.all())
	if _, err := lab.RunIn(ctx, sandbox(l, h, c1), "bash", "-c", "echo x > /dev/udp/"+c2.IP()+"/9999"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a record after the restart", func() bool { return len(sink.all()) > before })
	if stats, err := obs.RuleStats(ctx); err != nil || len(stats) == 0 {
		t.Fatalf("stats after the restart: %v %v", stats, err)
	}
}
