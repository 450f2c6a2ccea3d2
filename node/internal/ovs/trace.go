package ovs

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// Trace runs `ovs-appctl ofproto/trace BRIDGE FLOW [--ct-next FLAGS]...` on
// ovs-vswitchd's unixctl socket and returns its text. ofproto/trace only
// translates the flow (no packet is given or generated), so it changes
// nothing in the datapath.
func (a *Switch) Trace(ctx context.Context, bridge, flow string, ctNext []string) (string, error) {
	sock, err := a.vswitchdCtl()
	if err != nil {
		return "", err
	}
	params := []string{bridge, flow}
	for _, s := range ctNext {
		params = append(params, "--ct-next", s)
	}
	return unixctlCall(ctx, sock, "ofproto/trace", params...)
}

// unixctlCall calls method with params on the unixctl socket sock and
// returns its textual result.
func unixctlCall(ctx context.Context, sock, method string, params ...string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > 10*time.Second {
		deadline = time.Now().Add(10 * time.Second)
	}
	c.SetDeadline(deadline)
	if params == nil {
		params = []string{}
	}
	req := map[string]any{"method": method, "params": params, "id": 0}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return "", err
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return "", fmt.Errorf("%s: %w", method, err)
	}
	if len(resp.Error) > 0 && string(resp.Error) != "null" {
		return "", fmt.Errorf("%s: %s", method, resp.Error)
	}
	var out string
	if len(resp.Result) > 0 && string(resp.Result) != "null" {
		if err := json.Unmarshal(resp.Result, &out); err != nil {
			return "", fmt.Errorf("%s: result: %w", method, err)
		}
	}
	return out, nil
}
