package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/switchyard/switchyard/openapi"
)

// Policy observability on br-int (POLICY-CONTRACT.md, phase 2): the
// counters of the counted policy flows (cookie bit 47), the log meter, and
// the packet-ins of logged connections. Each uses an OpenFlow connection
// of its own, never the adapter's: reading counters or receiving logs does
// not wait for an apply, nor an apply for them.
//
// Meter LogMeterID on br-int is the agent's: br-int is the agent's bridge
// (external_ids switchyard-owner), and the compiled log flows send their
// packet-ins through that meter, so a flood of new connections costs the
// agent at most the meter's rate. The adapter puts the meter in before
// every full flow sync (the first apply, and the one after OVS restarted:
// OVS forgets meters with its flows) so that flows naming it never go in
// without it. It touches no other meter and no meter of another bridge.

// Cookie bits of counted policy flows.
const (
	// CookieCounted marks a flow whose counters the agent reports.
	CookieCounted uint64 = 1 << 47
	// CookieConn marks, on a counted flow, the flow hit once per new
	// connection.
	CookieConn uint64 = 1 << 46
)

// LogMeterID is the meter the log flows' controller actions go through.
const LogMeterID = 1

// DefaultPolicyLogRate is the log meter's rate, in packets per second.
const DefaultPolicyLogRate = 100

const (
	ofExperimenter  = 4
	ofSetAsync      = 28
	ofMeterMod      = 29
	ofmpFlow        = 1
	ofmpMeterConfig = 10
	ofMeterAll      = 0xffffffff
	ofpmcAdd        = 0
	ofpmcModify     = 1
	ofpmfPktps      = 1 << 1
	ofpmbtDrop      = 1
	ofprAction      = 1
	nxtSetPinFormat = 16
	nxtPacketIn2    = 30
	nxpifPacketIn2  = 2
	nxpintPacket    = 0
	nxpintUserdata  = 7
)

// ruleStats reads the counters of every counted flow in one flow-stats
// request (all tables, cookie bit 47 set) and sums them per cookie.
func (o *ofConn) ruleStats() ([]openapi.RuleStat, error) {
	parts, err := o.multipart(ofmpFlow, aggregateReq(CookieCounted, CookieCounted))
	if err != nil {
		return nil, err
	}
	return sumFlowStats(parts)
}

// sumFlowStats sums the packet and byte counts of ofp_flow_stats entries
// per compiled cookie (the generation bits cleared: the controller knows
// compiled cookies only), sorted by cookie.
func sumFlowStats(parts [][]byte) ([]openapi.RuleStat, error) {
	type pb struct{ p, b uint64 }
	sums := map[uint64]pb{}
	for _, p := range parts {
		for len(p) > 0 {
			if len(p) < 48 {
				return nil, errors.New("bad flow stats reply")
			}
			n := int(binary.BigEndian.Uint16(p[0:]))
			if n < 48 || n > len(p) {
				return nil, errors.New("bad flow stats entry length")
			}
			c := binary.BigEndian.Uint64(p[24:]) & CookieOwnerMask
			s := sums[c]
			s.p += binary.BigEndian.Uint64(p[32:])
			s.b += binary.BigEndian.Uint64(p[40:])
			sums[c] = s
			p = p[n:]
		}
	}
	cookies := make([]uint64, 0, len(sums))
	for c := range sums {
		cookies = append(cookies, c)
	}
	sort.Slice(cookies, func(i, j int) bool { return cookies[i] < cookies[j] })
	out := make([]openapi.RuleStat, 0, len(cookies))
	for _, c := range cookies {
		s := sums[c]
		out = append(out, openapi.RuleStat{Cookie: fmt.Sprintf("%#x", c), Packets: clamp63(s.p), Bytes: clamp63(s.b)})
	}
	return out, nil
}

func clamp63(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// ensureMeter makes meter id on the switch drop above rate packets per
// second, adding or modifying it only when it differs. It reports whether
// it changed anything.
func (o *ofConn) ensureMeter(id, rate uint32) (bool, error) {
	req := make([]byte, 8)
	binary.BigEndian.PutUint32(req, ofMeterAll)
	parts, err := o.multipart(ofmpMeterConfig, req)
	if err != nil {
		return false, fmt.Errorf("meter config: %w", err)
	}
	cmd := uint16(ofpmcAdd)
	for _, p := range parts {
		for len(p) >= 8 {
			n := int(binary.BigEndian.Uint16(p[0:]))
			if n < 8 || n > len(p) {
				return false, errors.New("bad meter config reply")
			}
			if binary.BigEndian.Uint32(p[4:]) == id {
				flags := binary.BigEndian.Uint16(p[2:])
				bands := p[8:n]
				if flags&ofpmfPktps != 0 && len(bands) == 16 && binary.BigEndian.Uint16(bands[0:]) == ofpmbtDrop &&
					binary.BigEndian.Uint32(bands[4:]) == rate {
					return false, nil
				}
				cmd = ofpmcModify
			}
			p = p[n:]
		}
	}
	mod := make([]byte, 8+16)
	binary.BigEndian.PutUint16(mod[0:], cmd)
	binary.BigEndian.PutUint16(mod[2:], ofpmfPktps)
	binary.BigEndian.PutUint32(mod[4:], id)
	binary.BigEndian.PutUint16(mod[8:], ofpmbtDrop)
	binary.BigEndian.PutUint16(mod[10:], 16)
	binary.BigEndian.PutUint32(mod[12:], rate)
	if err := o.send(ofMeterMod, mod); err != nil {
		return false, err
	}
	return true, o.barrier()
}

// barrier waits for the switch to have processed everything sent before,
// and returns the error reply any of it got.
func (o *ofConn) barrier() error {
	first := o.xid
	if err := o.send(ofBarrierRequest, nil); err != nil {
		return err
	}
	want := o.xid
	for {
		typ, xid, b, err := o.recv()
		switch {
		case err != nil:
			return err
		case typ == ofError && xid >= first && xid <= want:
			return fmt.Errorf("openflow error reply %x", b)
		case typ == ofBarrierReply && xid == want:
			return nil
		}
	}
}

// ensureLogMeter puts the log meter and the reject meter (reject.go) on
// br-int over the adapter's query connection (the adapter's lock is held).
func (a *Switch) ensureLogMeter(ctx context.Context) error {
	return a.query.do(ctx, func(o *ofConn) error {
		for _, m := range []struct {
			id   uint32
			rate int
			what string
		}{{LogMeterID, a.opts.PolicyLogRate, "policy log"}, {openapi.RejectMeter, a.opts.RejectRate, "reject"}} {
			changed, err := o.ensureMeter(m.id, uint32(m.rate))
			if err != nil {
				return err
			}
			if changed {
				a.warn("put the "+m.what+" meter on the bridge", "meter", m.id, "pktps", m.rate)
			}
		}
		return nil
	})
}

// PolicyObserver reads policy counters and receives logged connections on
// br-int, over connections of its own.
type PolicyObserver struct {
	socket string
	mu     sync.Mutex
	stats  queryConn
	// rejected counts the rejects answered (reject.go).
	rejected atomic.Int64
}

// Rejected is how many rejected connections the listener answered.
func (p *PolicyObserver) Rejected() int64 { return p.rejected.Load() }

// PolicyObserver returns the observer of the adapter's bridge.
func (a *Switch) PolicyObserver() *PolicyObserver {
	s := a.of.socket(a.opts.Bridge)
	return &PolicyObserver{socket: s, stats: queryConn{socket: s}}
}

// RuleStats returns the counters of the counted policy flows, summed per
// cookie (see ruleStats).
func (p *PolicyObserver) RuleStats(ctx context.Context) ([]openapi.RuleStat, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []openapi.RuleStat
	err := p.stats.do(ctx, func(o *ofConn) error {
		var err error
		out, err = o.ruleStats()
		return err
	})
	return out, err
}

// Close closes the counters' connection.
func (p *PolicyObserver) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.close()
}

// ListenLog receives the packet-ins of logged connections until ctx ends,
// and calls fn with each one decoded. It asks for NXT_PACKET_IN2 (the only
// format carrying the controller action's userdata) and for packet-ins of
// controller actions only; a broken connection (OVS restarted) is dialed
// again with backoff. Packet-ins that are not log records are skipped.
// ready, when not nil, is called each time a connection is subscribed.
func (p *PolicyObserver) ListenLog(ctx context.Context, fn func(openapi.PolicyLogRecord), ready func()) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	_ = backoff.Retry(func() error {
		err := p.listenOnce(ctx, fn, func() {
			b.Reset()
			if ready != nil {
				ready()
			}
		})
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		return err
	}, backoff.WithContext(b, ctx))
}

// listenOnce receives on one connection until it breaks; ready is called
// once the switch will send packet-ins to it.
func (p *PolicyObserver) listenOnce(ctx context.Context, fn func(openapi.PolicyLogRecord), ready func()) error {
	o, err := dialOF(ctx, p.socket)
	if err != nil {
		return err
	}
	defer o.Close()
	stop := context.AfterFunc(ctx, func() { o.Close() })
	defer stop()
	if err := o.subscribeLog(); err != nil {
		return err
	}
	o.c.SetDeadline(time.Time{})
	ready()
	for {
		typ, _, body, err := o.recv()
		if err != nil {
			return err
		}
		if typ != ofExperimenter {
			continue
		}
		if pkt, ud, meta, ok := splitPacketIn2(body); ok && p.reject(o, pkt, ud, meta) {
			continue // reject.go
		}
		if rec, ok := decodePacketIn2(body, time.Now()); ok {
			fn(rec)
		}
	}
}

// subscribeLog sets the connection's packet-in format to NXT_PACKET_IN2
// and its asynchronous messages to packet-ins of controller actions.
func (o *ofConn) subscribeLog() error {
	f := make([]byte, 12)
	binary.BigEndian.PutUint32(f[0:], nxVendor)
	binary.BigEndian.PutUint32(f[4:], nxtSetPinFormat)
	binary.BigEndian.PutUint32(f[8:], nxpifPacketIn2)
	if err := o.send(ofExperimenter, f); err != nil {
		return err
	}
	// ofp_async_config: packet-in, port-status, flow-removed masks, each
	// for the master/equal and the slave role.
	async := make([]byte, 24)
	binary.BigEndian.PutUint32(async[0:], 1<<ofprAction)
	binary.BigEndian.PutUint32(async[4:], 1<<ofprAction)
	if err := o.send(ofSetAsync, async); err != nil {
		return err
	}
	return o.barrier()
}

// do runs fn on the connection, dialing it when needed; a connection that
// broke while idle (ovs-vswitchd restarted, or dropped it) is dialed again
// once.
func (q *queryConn) do(ctx context.Context, fn func(*ofConn) error) error {
	var err error
	for try := 0; try < 2; try++ {
		if q.c == nil {
			if q.c, err = dialOF(ctx, q.socket); err != nil {
				return err
			}
		}
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) > 5*time.Second {
			deadline = time.Now().Add(5 * time.Second)
		}
		q.c.c.SetDeadline(deadline)
		if err = fn(q.c); err == nil {
			return nil
		}
		q.close()
	}
	return err
}
