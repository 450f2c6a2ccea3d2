package compile

import (
	"cmp"
	"slices"

	"github.com/switchyard/switchyard/openapi"
)

// Snapshot is the intent the compiler reads: every object at one revision.
// Containers name their host and network by name.
type Snapshot struct {
	Revision   int64
	Hosts      []openapi.Host
	Networks   []openapi.Network
	Containers []openapi.Container
	Services   []openapi.Service
	Policies   []openapi.Policy
	// EndpointHealth are the health verdicts the store keeps (a backend
	// without one is healthy).
	EndpointHealth []openapi.EndpointHealth
	// DNSDomain is the domain of container and service names
	// ("<name>.<network>.<domain>"; empty: DefaultDNSDomain); Full takes
	// it, Apply keeps it.
	DNSDomain string
}

// Change is one object change for Compiler.Apply: build it with PutHost,
// DeleteHost, PutNetwork, ... A Put adds the object or replaces the one with
// the same key (hosts and networks are keyed by name; containers, services
// and policies by ID); a Delete of an unknown key does nothing.
type Change struct {
	kind      string
	key       string
	delete    bool
	host      *openapi.Host
	network   *openapi.Network
	container *openapi.Container
	service   *openapi.Service
	policy    *openapi.Policy
	endpoint  *openapi.EndpointHealth
}

const (
	kindService = KindService
	kindPolicy  = "policy"
	kindHealth  = "endpoint"
)

// PutHost adds or updates a host (keyed by name).
func PutHost(h openapi.Host) Change { return Change{kind: KindHost, key: h.Name, host: &h} }

// DeleteHost removes the host with that name.
func DeleteHost(name string) Change { return Change{kind: KindHost, key: name, delete: true} }

// PutNetwork adds or updates a network (keyed by name).
func PutNetwork(n openapi.Network) Change {
	return Change{kind: KindNetwork, key: n.Name, network: &n}
}

// DeleteNetwork removes the network with that name.
func DeleteNetwork(name string) Change { return Change{kind: KindNetwork, key: name, delete: true} }

// PutContainer adds, updates or moves a container (keyed by ID).
func PutContainer(c openapi.Container) Change {
	return Change{kind: KindContainer, key: c.ID, container: &c}
}

// DeleteContainer removes the container with that ID.
func DeleteContainer(id string) Change { return Change{kind: KindContainer, key: id, delete: true} }

// PutService adds or updates a service (keyed by ID).
func PutService(s openapi.Service) Change { return Change{kind: kindService, key: s.ID, service: &s} }

// DeleteService removes the service with that ID.
func DeleteService(id string) Change { return Change{kind: kindService, key: id, delete: true} }

// PutEndpointHealth records a health verdict (keyed by service and
// container ID).
func PutEndpointHealth(e openapi.EndpointHealth) Change {
	return Change{kind: kindHealth, key: e.Service + "/" + e.Container, endpoint: &e}
}

// DeleteEndpointHealth forgets the verdict on container for service (it is
// healthy again).
func DeleteEndpointHealth(service, container string) Change {
	return Change{kind: kindHealth, key: service + "/" + container, delete: true}
}

// PutPolicy adds or updates a policy (keyed by ID).
func PutPolicy(p openapi.Policy) Change { return Change{kind: kindPolicy, key: p.ID, policy: &p} }

// DeletePolicy removes the policy with that ID.
func DeletePolicy(id string) Change { return Change{kind: kindPolicy, key: id, delete: true} }

// Snapshot returns the compiler's current intent, each list sorted by key, at
// the revision of the last Full or Apply.
func (c *Compiler) Snapshot() *Snapshot {
	s := &Snapshot{Revision: c.rev, DNSDomain: c.domain}
	for _, h := range c.hosts {
		s.Hosts = append(s.Hosts, h.obj)
	}
	for _, n := range c.nets {
		s.Networks = append(s.Networks, n.obj)
	}
	for _, ct := range c.ctrs {
		s.Containers = append(s.Containers, ct.obj)
	}
	for _, sv := range c.services {
		s.Services = append(s.Services, sv.obj)
	}
	for _, e := range c.health {
		s.EndpointHealth = append(s.EndpointHealth, e)
	}
	slices.SortFunc(s.EndpointHealth, func(a, b openapi.EndpointHealth) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Container, b.Container))
	})
	for _, p := range c.policies {
		s.Policies = append(s.Policies, p.obj)
	}
	slices.SortFunc(s.Hosts, func(a, b openapi.Host) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Networks, func(a, b openapi.Network) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Containers, func(a, b openapi.Container) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Services, func(a, b openapi.Service) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Policies, func(a, b openapi.Policy) int { return cmp.Compare(a.ID, b.ID) })
	return s
}
