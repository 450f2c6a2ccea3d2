package ovs

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
)

// Stale UDP load-balancing state. Conntrack keeps a UDP "connection" for as
// long as packets keep coming (and some time after): a client socket that
// keeps sending to a VIP stays DNATed to the backend it got first, even once
// that backend has left the service's group, and a VIP deleted and reused
// by another service still sends that socket to the old backend. TCP ends on
// its own (the backend is gone, or it keeps serving the connections it has,
// as with kube-proxy); UDP has no end, so, like kube-proxy, the adapter
// flushes it: once a change that removed a group, or buckets from a group,
// is in force, it deletes from the switch's conntrack (ovs-vswitchd's
// dpctl/flush-conntrack with partial tuples, in the service's network zone)
// the UDP entries of the VIP and port whose backend left, and all of them
// when the whole group went. It reads the VIP, port, protocol and network of
// a group from the ServiceLB (or AffinityDispatch) flow that sent to it.

var (
	natTargetRe = regexp.MustCompile(`nat\(dst=([0-9.]+):(\d+)\)`)
	reg0Re      = regexp.MustCompile(`\breg0=(0x[0-9a-f]+|\d+)`)
	nwDstRe     = regexp.MustCompile(`\bnw_dst=([0-9.]+)[,\s]`)
	tpDstRe     = regexp.MustCompile(`\btp_dst=(\d+)[,\s]`)
)

// ctFlush is one dpctl/flush-conntrack: zone, a partial original tuple and
// (for one backend) a partial reply tuple.
type ctFlush struct {
	zone        uint16
	orig, reply string
}

func (f ctFlush) args() []string {
	a := []string{fmt.Sprintf("zone=%d", f.zone), f.orig}
	if f.reply != "" {
		a = append(a, f.reply)
	}
	return a
}

// lbSnapshot is what a change may flush from: the groups, and the UDP
// flows that send to a group, as installed before it.
type lbSnapshot struct {
	groups groupTable
	udp    []string
}

// snapshotLB copies the groups (few) and the UDP group flows (a scan of
// the flow table: only for changes that may touch groups).
func snapshotLB(f flowTable, g groupTable) *lbSnapshot {
	s := &lbSnapshot{groups: maps.Clone(g)}
	for _, line := range f.lines {
		if strings.Contains(line, "group:") && strings.Contains(line, ",udp,") {
			s.udp = append(s.udp, line)
		}
	}
	return s
}

// stale returns the flushes the change to newG calls for: only groups
// whose content changed are looked at.
func (s *lbSnapshot) stale(newG groupTable) []ctFlush {
	lost := map[uint32][][2]string{} // group -> backends (IP, port) gone; nil slice: the whole group
	for id, old := range s.groups {
		cur, ok := newG[id]
		if ok && cur == old {
			continue
		}
		var gone [][2]string
		if ok {
			keep := map[[2]string]bool{}
			for _, m := range natTargetRe.FindAllStringSubmatch(cur, -1) {
				keep[[2]string{m[1], m[2]}] = true
			}
			for _, m := range natTargetRe.FindAllStringSubmatch(old, -1) {
				if t := [2]string{m[1], m[2]}; !keep[t] {
					gone = append(gone, t)
					keep[t] = true // once
				}
			}
			if len(gone) == 0 {
				continue // weights or buckets added only
			}
		}
		lost[id] = gone
	}
	if len(lost) == 0 {
		return nil
	}
	var out []ctFlush
	for _, line := range s.udp {
		for _, m := range groupRef.FindAllStringSubmatch(line, -1) {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			gone, ok := lost[uint32(id)]
			if !ok {
				continue
			}
			vip, port, zone, ok := lbTarget(line)
			if !ok {
				continue
			}
			orig := "ct_nw_dst=" + vip + ",ct_nw_proto=17,ct_tp_dst=" + port
			if gone == nil {
				out = append(out, ctFlush{zone: zone, orig: orig})
				continue
			}
			for _, b := range gone {
				out = append(out, ctFlush{zone: zone, orig: orig, reply: "ct_nw_src=" + b[0] + ",ct_nw_proto=17,ct_tp_src=" + b[1]})
			}
		}
	}
	return out
}

// lbTarget reads the VIP, port and network zone of a flow that sends new
// connections to a service port's group.
func lbTarget(line string) (vip, port string, zone uint16, ok bool) {
	head, _, _ := strings.Cut(line, " actions=")
	head += ","
	r, v, p := reg0Re.FindStringSubmatch(head), nwDstRe.FindStringSubmatch(head), tpDstRe.FindStringSubmatch(head)
	if r == nil || v == nil || p == nil {
		return "", "", 0, false
	}
	vni, err := strconv.ParseUint(r[1], 0, 32)
	if err != nil {
		return "", "", 0, false
	}
	return v[1], p[1], uint16(vni & 0xffff), true
}

// flushConntrack runs the flushes; a failure is a warning (the entries
// expire on their own once their clients stop).
func (a *Switch) flushConntrack(ctx context.Context, fs []ctFlush) error {
	if len(fs) == 0 {
		return nil
	}
	sock, err := a.vswitchdCtl()
	if err != nil {
		return err
	}
	for _, f := range fs {
		if err := unixctlArgs(ctx, sock, "dpctl/flush-conntrack", f.args()...); err != nil && !strings.Contains(err.Error(), "No such file") {
			return err
		}
	}
	return nil
}
