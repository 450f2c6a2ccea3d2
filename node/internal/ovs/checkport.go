package ovs

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/openapi"
)

// CheckPort says how container port p differs from what the applier
// realizes for it, changing nothing: its link, as the resync's link check
// sees it, and its OVS interface (an ofport, link up), read from the
// OVSDB cache the applier keeps (no request to ovsdb-server). Nothing
// returned: in order. It waits for a running apply to finish.
func (a *Applier) CheckPort(ctx context.Context, p openapi.ContainerPort) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	diffs, err := a.links.Check(p)
	if err != nil {
		return diffs, err
	}
	states := map[string]portState{}
	a.db.readPorts(ctx, []string{p.Name}, nil, states)
	switch st := states[p.Name]; {
	case st.Error != "":
		diffs = append(diffs, fmt.Sprintf("OVS port %s: %s", p.Name, st.Error))
	case st.OFPort <= 0:
		diffs = append(diffs, fmt.Sprintf("OVS port %s is missing", p.Name))
	case !st.Up:
		diffs = append(diffs, fmt.Sprintf("OVS port %s is down", p.Name))
	}
	return diffs, nil
}
