package cniserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/switchyard/switchyard/node/internal/link"
	"github.com/switchyard/switchyard/openapi"
)

// Local is what the server needs of its host's agent.
type Local interface {
	// Port is the container's port (by container ID) in the program the
	// agent last applied.
	Port(containerID string) (openapi.ContainerPort, bool)
	// Ready is nil once the agent has applied a program.
	Ready() error
	// OVSPort reports whether Open vSwitch has the named port, up.
	OVSPort(ctx context.Context, name string) (bool, error)
}

// Programs records what the agent applied: the agent's datapath calls
// Applied after every successful apply. It is the server's Local.
type Programs struct {
	// OVSDB is the switch's database endpoint (unix:/.../db.sock), which
	// OVSPort asks with ovs-vsctl (read-only).
	OVSDB string

	mu       sync.RWMutex
	revision int64
	ports    map[string]openapi.ContainerPort
}

// Applied records p, which the agent has just applied.
func (p *Programs) Applied(prog *openapi.Program) {
	ports := make(map[string]openapi.ContainerPort, len(prog.Containers))
	for _, c := range prog.Containers {
		ports[c.ID] = c
	}
	p.mu.Lock()
	p.revision, p.ports = prog.Revision, ports
	p.mu.Unlock()
}

// Port implements Local.
func (p *Programs) Port(id string) (openapi.ContainerPort, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.ports[id]
	return c, ok
}

// Ready implements Local.
func (p *Programs) Ready() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ports == nil {
		return errors.New("the agent has not applied a program from the controller yet")
	}
	return nil
}

// OVSPort implements Local: the interface must have an OpenFlow port
// number and its link must be up, as ovs-vsctl reads them now.
func (p *Programs) OVSPort(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovs-vsctl", "--db="+p.OVSDB, "--timeout=5",
		"--if-exists", "get", "Interface", name, "ofport", "link_state").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return false, fmt.Errorf("ovs-vsctl: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return false, nil // no such interface
	}
	ofport, _ := strconv.Atoi(f[0])
	return ofport > 0 && f[1] == "up", nil
}

// iface is what a container's interface is, inside its namespace.
type iface struct {
	MAC   string
	Addrs []netip.Prefix
	Alias string
	Up    bool
}

// inspect reads the interface name in the namespace at path.
func inspect(path, name string) (iface, error) {
	var out iface
	err := inNetns(path, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("no interface %s in %s: %w", name, path, err)
		}
		a := l.Attrs()
		out.MAC, out.Alias, out.Up = a.HardwareAddr.String(), a.Alias, a.Flags&(1<<0) != 0
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, ad := range addrs {
			ip, _ := netip.AddrFromSlice(ad.IP.To4())
			ones, _ := ad.Mask.Size()
			out.Addrs = append(out.Addrs, netip.PrefixFrom(ip, ones))
		}
		return nil
	})
	return out, err
}

// removeOwn deletes the interface name in the namespace at path when the
// agent made it for the container id (its alias says so); a missing
// namespace or interface is nothing to do.
func removeOwn(path, name, id string) (bool, error) {
	removed := false
	err := inNetns(path, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil
			}
			return err
		}
		if l.Attrs().Alias != link.AliasPrefix+id {
			return nil
		}
		removed = true
		return h.LinkDel(l)
	})
	if errors.Is(err, errNoNetns) {
		return false, nil
	}
	return removed, err
}

var errNoNetns = errors.New("no such network namespace")

// inNetns runs fn with a netlink handle in the namespace at path, without
// moving any thread into it.
func inNetns(path string, fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errNoNetns, path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}
