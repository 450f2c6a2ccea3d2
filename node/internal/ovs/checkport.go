package ovs

import (
	"context"
	"fmt"
)

// CheckPort says how the OVS interface of container port name differs from
// what an apply realizes for it (an ofport, link up), read from the OVSDB
// cache the switch keeps (no request to ovsdb-server), changing nothing.
// Nothing returned: in order. It waits for a running apply to finish.
func (a *Switch) CheckPort(ctx context.Context, name string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	states := map[string]portState{}
	a.db.readPorts(ctx, []string{name}, nil, states)
	switch st := states[name]; {
	case st.Error != "":
		return []string{fmt.Sprintf("OVS port %s: %s", name, st.Error)}
	case st.OFPort <= 0:
		return []string{fmt.Sprintf("OVS port %s is missing", name)}
	case !st.Up:
		return []string{fmt.Sprintf("OVS port %s is down", name)}
	}
	return nil
}
