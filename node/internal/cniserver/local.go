package cniserver

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	// CheckPort says how a container port differs from what the agent
	// realizes for it (its link, its OVS port); nothing: in order.
	CheckPort(ctx context.Context, p openapi.ContainerPort) ([]string, error)
}

// Programs records what the agent applied: the agent's datapath calls
// Applied after every successful apply. It is the server's Local.
type Programs struct {
	// Check is the agent's check of one container port (converge.Host's
	// CheckPort).
	Check func(ctx context.Context, p openapi.ContainerPort) ([]string, error)

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

// CheckPort implements Local.
func (p *Programs) CheckPort(ctx context.Context, port openapi.ContainerPort) ([]string, error) {
	return p.Check(ctx, port)
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
