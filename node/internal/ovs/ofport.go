package ovs

import (
	"context"
	"fmt"
	"time"
)

// ofportAlloc picks the ofport_request of new container ports, so that
// their flows can be installed without waiting for ovs-vswitchd to assign
// an ofport. It hands out numbers round-robin, as OVS does, skipping every
// number an interface of the switch holds or has requested, so that a
// number is not reused right after its port went away.
type ofportAlloc struct {
	prev int // the number handed out last
}

// maxOFPort is the largest ofport OVS assigns (OFPP_MAX in OpenFlow 1.0).
const maxOFPort = 0xfeff

func (a *ofportAlloc) next(s *snapshot) int {
	used := map[int]bool{}
	for _, i := range s.ifaces {
		if i.OFPort != nil && *i.OFPort > 0 {
			used[*i.OFPort] = true
		}
		if i.OFPortRequest != nil {
			used[*i.OFPortRequest] = true
		}
	}
	if a.prev == 0 {
		for u := range used {
			a.prev = max(a.prev, u)
		}
	}
	n := a.prev
	for range maxOFPort {
		n++
		if n > maxOFPort {
			n = 1
		}
		if !used[n] {
			a.prev = n
			return n
		}
	}
	return 0
}

// confirmRequested waits until OVS has attached the ports whose flows went
// in with a requested ofport, and checks it gave them that ofport; if not,
// the flows are wrong, and the installed tables are forgotten so that the
// next apply (the agent's resync at the latest) does a full sync.
func (a *Switch) confirmRequested(ctx context.Context, res *Report, fresh map[string]bool, states map[string]portState, failed map[string]string) {
	t := time.Now()
	var names []string
	for n := range a.requested {
		names = append(names, n)
	}
	wctx, cancel := context.WithTimeout(ctx, a.opts.PortTimeout)
	got := a.db.waitPorts(wctx, names, fresh)
	cancel()
	for n, want := range a.requested {
		st := got[n]
		states[n] = st
		if st.Error != "" || st.OFPort != want {
			if _, bad := failed[n]; !bad { // a link that failed says why
				failed[n] = fmt.Sprintf("OVS: ofport %d, requested %d: %s", st.OFPort, want, st.Error)
			}
			a.installed.valid = false
		}
	}
	a.requested = nil
	res.Time.OFPorts += time.Since(t)
}
