package cniserver

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/switchyard/switchyard/node/internal/cniproto"
	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// Labels the server puts on the containers it creates: the runtime's
// container ID and the CNI network config's name (label values: at most
// 63 characters, see labelValue).
const (
	LabelID     = "cni.switchyard.io/id"
	LabelConfig = "cni.switchyard.io/config"
)

// ContainerName is the name a runtime's container gets at the controller:
// the pod name (K8S_POD_NAME in CNI_ARGS) when the runtime passes one, else
// the runtime's container ID; lower-cased, any character other than a-z,
// 0-9 and '-' turned into '-', at most 63 characters.
func ContainerName(req cniproto.Request) (string, error) {
	src := req.Args["K8S_POD_NAME"]
	if src == "" {
		src = req.ContainerID
	}
	n := strings.Trim(clean(strings.ToLower(src), func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
	}), "-")
	if n == "" {
		return "", cniErr(types.ErrInvalidEnvironmentVariables, "no container name",
			fmt.Sprintf("CNI_CONTAINERID %q (or K8S_POD_NAME) gives no valid name", src))
	}
	return n, nil
}

// labelValue makes s a valid label value (the runtime's ID, a config's
// name): other characters than [A-Za-z0-9-_.] become '-', at most 63.
func labelValue(s string) string {
	return strings.Trim(clean(s, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
	}), "-_.")
}

func clean(s string, ok func(rune) bool) string {
	b := []rune(s)
	for i, r := range b {
		if !ok(r) {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

// attachArgs checks what ADD, CHECK and DEL need.
func attachArgs(req cniproto.Request, needNetns bool) (string, error) {
	switch {
	case req.Network == "":
		return "", cniErr(types.ErrInvalidNetworkConfig, "the network config has no \"network\"", "")
	case req.ContainerID == "":
		return "", cniErr(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID is empty", "")
	case needNetns && req.Netns == "":
		return "", cniErr(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is empty", "")
	case req.IfName != "" && req.IfName != link.ContainerIface:
		return "", cniErr(types.ErrInvalidEnvironmentVariables, "unsupported interface name",
			fmt.Sprintf("CNI_IFNAME %q: Switchyard names the container's interface %s", req.IfName, link.ContainerIface))
	}
	return ContainerName(req)
}

func containerPath(name, network string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("network", network)
	return "/api/v1/containers/" + url.PathEscape(name) + "?" + q.Encode()
}

func (s *Server) get(ctx context.Context, name, network string) (openapi.Container, error) {
	var c openapi.Container
	_, err := s.cfg.API.Do(ctx, "GET", containerPath(name, network, nil), nil, &c)
	return c, err
}

// ours reports whether c is the container this server made for the
// runtime's container ID on this host.
func (s *Server) ours(c openapi.Container, runtimeID string) bool {
	return c.Host == s.cfg.Host && c.Labels[LabelID] == labelValue(runtimeID)
}

func (s *Server) create(ctx context.Context, c openapi.Container) (openapi.Container, error) {
	q := url.Values{"wait": {"realized"}, "timeout": {s.cfg.WaitTimeout.String()}}
	// Only the fields a create takes (the Meta's zero values are not).
	body := map[string]any{"name": c.Name, "network": c.Network, "host": c.Host, "netns": c.Netns, "labels": c.Labels}
	if c.IP != "" {
		body["ip"] = c.IP
	}
	if len(c.Publish) > 0 {
		body["publish"] = c.Publish
	}
	var out openapi.Container
	_, err := s.cfg.API.Do(ctx, "POST", "/api/v1/containers?"+q.Encode(), body, &out)
	return out, err
}

// remove deletes the container at the controller; wait: until realized
// (a timeout still counts: the delete is recorded).
func (s *Server) remove(ctx context.Context, name, network string, wait bool) error {
	q := url.Values{}
	if wait {
		q = url.Values{"wait": {"realized"}, "timeout": {"10s"}}
	}
	_, err := s.cfg.API.Do(ctx, "DELETE", containerPath(name, network, q), nil, nil)
	switch client.StatusOf(err) {
	case http.StatusNotFound, http.StatusGatewayTimeout:
		return nil
	}
	return err
}

func (s *Server) add(ctx context.Context, req cniproto.Request) (*cniproto.Result, error) {
	name, err := attachArgs(req, true)
	if err != nil {
		return nil, err
	}
	defer s.lock(key(req.Network, name))()
	if err := s.state.dropPending(req.Network, name); err != nil {
		return nil, err
	}
	want := openapi.Container{Name: name, Network: req.Network, Host: s.cfg.Host, Netns: req.Netns,
		Labels: map[string]string{}}
	for k, v := range req.Labels {
		want.Labels[k] = v
	}
	want.Labels[LabelID] = labelValue(req.ContainerID)
	if req.Config != "" {
		want.Labels[LabelConfig] = labelValue(req.Config)
	}
	for _, pm := range req.PortMappings {
		want.Publish = append(want.Publish, openapi.PublishedPort{HostPort: pm.HostPort, Port: pm.ContainerPort,
			Protocol: strings.ToUpper(pm.Protocol), HostIP: pm.HostIP})
	}
	asked := false
	for _, ip := range req.IPs {
		if a, err := netip.ParsePrefix(ip); err == nil && a.Addr().Is4() {
			want.IP, asked = a.Addr().String(), true
			break
		} else if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
			want.IP, asked = a.String(), true
			break
		}
	}
	if len(req.IPs) > 0 && !asked {
		return nil, cniErr(types.ErrInvalidNetworkConfig, "no IPv4 address in \"ips\"", fmt.Sprint(req.IPs))
	}
	if prev, ok := s.state.address(req.Network, req.ContainerID); ok && !asked {
		want.IP = prev.IP // a restarted container gets its address back
	}
	c, err := s.create(ctx, want)
	if client.StatusOf(err) == http.StatusConflict {
		c, err = s.resolveConflict(ctx, req, want, asked, err)
	}
	notRunning := err == nil && c.Status != openapi.ContainerRunning
	if notRunning {
		err = cniErr(cniproto.ErrAttachFailed, "the host failed to attach the container",
			fmt.Sprintf("container %s is %s: %s", name, c.Status, c.StatusDetail))
	}
	if err != nil {
		if st := client.StatusOf(err); st == http.StatusBadGateway || st == http.StatusGatewayTimeout || notRunning {
			// Created but not attached: leave nothing behind for the retry.
			if derr := s.remove(context.WithoutCancel(ctx), name, req.Network, false); derr != nil {
				s.log.Warn("cni: cannot delete the container of a failed ADD", "container", name, "err", derr)
			}
		}
		if _, ok := err.(*cniproto.Error); ok {
			return nil, err
		}
		return nil, s.apiErr("create container "+name+" on network "+req.Network, err)
	}
	if err := s.state.remember(req.Network, req.ContainerID, name, attachment{IP: c.IP, ID: c.ID}); err != nil {
		s.log.Warn("cni: cannot save state", "err", err)
	}
	return s.result(c, req.Netns)
}

// resolveConflict handles a 409 to a create: the same container added
// again (an error when it is attached in that namespace already; else,
// after a missed DEL, re-created in its new namespace with its address),
// or a remembered address now taken (a new one).
func (s *Server) resolveConflict(ctx context.Context, req cniproto.Request, want openapi.Container, asked bool, conflict error) (openapi.Container, error) {
	cur, err := s.get(ctx, want.Name, want.Network)
	switch {
	case err == nil && s.ours(cur, req.ContainerID):
		if cur.Netns == want.Netns && cur.Status == openapi.ContainerRunning {
			// The spec: ADD of an attachment that exists must fail.
			return cur, cniErr(cniproto.ErrConflict, "the container is already attached",
				fmt.Sprintf("container %s has %s in %s with address %s: DEL it before adding it again",
					cur.Name, link.ContainerIface, cur.Netns, cur.IP))
		}
		if err := s.remove(ctx, want.Name, want.Network, true); err != nil {
			return cur, err
		}
		if !asked {
			want.IP = cur.IP
		}
		return s.create(ctx, want)
	case err == nil:
		return cur, cniErr(cniproto.ErrConflict, "the container name is taken",
			fmt.Sprintf("network %s already has a container %s on host %s (not this runtime's container %s)", want.Network, want.Name, cur.Host, req.ContainerID))
	case client.StatusOf(err) == http.StatusNotFound || client.StatusOf(err) == http.StatusForbidden:
		if want.IP != "" && !asked {
			want.IP = "" // the remembered address went to another container
			return s.create(ctx, want)
		}
		return cur, conflict
	}
	return cur, err
}

// result is the CNI result of a realized container, from the program the
// agent applied.
func (s *Server) result(c openapi.Container, netnsPath string) (*cniproto.Result, error) {
	p, ok := s.cfg.Local.Port(c.ID)
	if !ok {
		return nil, cniErr(cniproto.ErrAttachFailed, "the container is realized but not in this agent's program",
			fmt.Sprintf("container %s (%s)", c.Name, c.ID))
	}
	r := &cniproto.Result{Container: c.Name, Interface: link.ContainerIface, MAC: p.MAC, MTU: p.MTU, Sandbox: netnsPath,
		Address: fmt.Sprintf("%s/%d", p.IP, p.PrefixLen), Gateway: p.Gateway}
	if c.DNS != nil {
		r.Nameservers, r.Search = c.DNS.Nameservers, c.DNS.Search
	}
	return r, nil
}

func (s *Server) del(ctx context.Context, req cniproto.Request) error {
	name, err := attachArgs(req, false)
	if err != nil {
		return err
	}
	defer s.lock(key(req.Network, name))()
	cur, err := s.get(ctx, name, req.Network)
	if err == nil && s.ours(cur, req.ContainerID) {
		err = s.remove(ctx, name, req.Network, true)
	} else if err == nil || client.StatusOf(err) == http.StatusNotFound || client.StatusOf(err) == http.StatusForbidden {
		return nil // gone, or not ours (another runtime's, or moved away)
	}
	if err == nil {
		return nil
	}
	if !down(err) {
		return s.apiErr("delete container "+name, err)
	}
	// The controller is unreachable: clean what is local, tell it later.
	if a, ok := s.state.address(req.Network, req.ContainerID); ok && req.Netns != "" {
		if removed, err := removeOwn(req.Netns, link.ContainerIface, a.ID); err != nil {
			s.log.Warn("cni: cannot remove the container's interface", "netns", req.Netns, "err", err)
		} else if removed {
			s.log.Info("cni: removed the container's interface; the controller will hear of the delete later", "container", name)
		}
	}
	if err := s.state.addPending(pendingDelete{Name: name, Network: req.Network, RuntimeID: req.ContainerID}); err != nil {
		return cniErr(types.ErrIOFailure, "cannot record the delete for the controller", err.Error())
	}
	s.log.Warn("cni: controller unreachable; delete queued", "container", name, "err", err)
	return nil
}

// retryLoop tells the controller of the deletes it missed.
func (s *Server) retryLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range s.state.pending() {
			if err := s.retryDelete(ctx, p); err != nil {
				s.log.Debug("cni: queued delete not done yet", "container", p.Name, "err", err)
				break
			}
		}
	}
}

func (s *Server) retryDelete(ctx context.Context, p pendingDelete) error {
	defer s.lock(key(p.Network, p.Name))()
	if !s.isPending(p) {
		return nil // an ADD took the name meanwhile
	}
	cur, err := s.get(ctx, p.Name, p.Network)
	if err == nil && s.ours(cur, p.RuntimeID) {
		err = s.remove(ctx, p.Name, p.Network, false)
	} else if client.StatusOf(err) == http.StatusNotFound || client.StatusOf(err) == http.StatusForbidden {
		err = nil
	}
	if err != nil {
		return err
	}
	s.log.Info("cni: queued delete done", "container", p.Name, "queued", time.Since(p.Since).Round(time.Second))
	return s.state.dropPending(p.Network, p.Name)
}

func (s *Server) isPending(p pendingDelete) bool {
	for _, q := range s.state.pending() {
		if q.Network == p.Network && q.Name == p.Name {
			return true
		}
	}
	return false
}

func (s *Server) check(ctx context.Context, req cniproto.Request) (*cniproto.Result, error) {
	name, err := attachArgs(req, true)
	if err != nil {
		return nil, err
	}
	c, err := s.get(ctx, name, req.Network)
	if client.StatusOf(err) == http.StatusNotFound || err == nil && !s.ours(c, req.ContainerID) {
		return nil, cniErr(types.ErrUnknownContainer, "unknown container",
			fmt.Sprintf("no container %s of runtime container %s on network %s on host %s", name, req.ContainerID, req.Network, s.cfg.Host))
	}
	if err != nil {
		return nil, s.apiErr("get container "+name, err)
	}
	bad := func(format string, args ...any) (*cniproto.Result, error) {
		return nil, cniErr(cniproto.ErrAttachFailed, "check failed", fmt.Sprintf("container %s: ", name)+fmt.Sprintf(format, args...))
	}
	if c.Netns != req.Netns {
		return bad("attached to netns %s, not %s", c.Netns, req.Netns)
	}
	if c.Status != openapi.ContainerRunning {
		return bad("status %s: %s", c.Status, c.StatusDetail)
	}
	r, err := s.result(c, req.Netns)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(req.Netns); err != nil {
		return bad("%v: %s", errNoNetns, req.Netns)
	}
	p, ok := s.cfg.Local.Port(c.ID)
	if !ok {
		return bad("not in the program this agent applied")
	}
	// The agent's own check of the port: its link in the namespace (MAC,
	// address, up, route) and its OVS interface.
	diffs, err := s.cfg.Local.CheckPort(ctx, p)
	if err != nil {
		return bad("%v", err)
	}
	if len(diffs) > 0 {
		return bad("%s", strings.Join(diffs, "; "))
	}
	return r, nil
}

func (s *Server) status(ctx context.Context) error {
	if err := s.cfg.Local.Ready(); err != nil {
		return cniErr(types.ErrPluginNotAvailable, "the Switchyard agent is not ready", err.Error())
	}
	q := url.Values{"host": {s.cfg.Host}, "limit": {"1"}}
	if _, err := s.cfg.API.Do(ctx, "GET", "/api/v1/containers?"+q.Encode(), nil, nil); err != nil {
		return cniErr(types.ErrPluginNotAvailable, "the Switchyard agent cannot reach the controller", s.apiErr("list containers", err).Error())
	}
	return nil
}

// gc deletes the containers this server made for the network config that
// the runtime no longer lists as valid attachments.
func (s *Server) gc(ctx context.Context, req cniproto.Request) error {
	if req.Network == "" {
		return cniErr(types.ErrInvalidNetworkConfig, "the network config has no \"network\"", "")
	}
	valid := map[string]bool{}
	for _, a := range req.ValidAttachments {
		valid[labelValue(a.ContainerID)] = true
	}
	q := url.Values{"host": {s.cfg.Host}, "network": {req.Network},
		"selector": {LabelConfig + "=" + labelValue(req.Config)}}
	var stale []openapi.Container
	for {
		var page openapi.List[openapi.Container]
		if _, err := s.cfg.API.Do(ctx, "GET", "/api/v1/containers?"+q.Encode(), nil, &page); err != nil {
			return s.apiErr("list containers", err)
		}
		for _, c := range page.Items {
			if id := c.Labels[LabelID]; id != "" && !valid[id] {
				stale = append(stale, c)
			}
		}
		if page.Continue == "" {
			break
		}
		q.Set("continue", page.Continue)
	}
	// Keep going on errors, and report them (the spec).
	var failed []string
	var last error
	for _, c := range stale {
		unlock := s.lock(key(c.Network, c.Name))
		err := s.remove(ctx, c.Name, c.Network, false)
		unlock()
		if err != nil {
			failed, last = append(failed, c.Name), err
			continue
		}
		s.log.Info("cni gc: deleted a container the runtime no longer lists", "container", c.Name, "runtime id", c.Labels[LabelID])
	}
	if last != nil {
		return s.apiErr(fmt.Sprintf("delete %d stale containers (%s)", len(failed), strings.Join(failed, ", ")), last)
	}
	return nil
}
