package soak

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// The operations: what users do to the intent at a steady rate. Every
// container runs in a managed sandbox; a third carry the label
// role=locked, which the soak's policies select (so probes between the
// others, role=free, are always allowed); some publish a host port (NAT
// state on their host); services select role=free.

// soakNetworks are the networks the soak creates at the start.
var soakNetworks = []struct{ name, cidr string }{{"red", "10.61.0.0/24"}, {"blue", "10.62.0.0/24"}}

// opKinds, in the order the report lists them.
var opKinds = []string{"container.create", "container.delete", "container.move", "policy.create", "policy.update",
	"policy.delete", "service.create", "service.update", "service.delete"}

// opStats count one kind of operation's outcomes.
type opStats struct {
	OK, Rejected, Failed, Retries int
}

// operator does random operations; it remembers what it created by name.
type operator struct {
	api   *api
	hosts []string
	rng   *rand.Rand
	// wait is the query of writes: "wait=realized&timeout=30s" in quiet
	// times, "" while a fault is active (a host that cannot apply would
	// hold the answer to its timeout).
	wait string
	// maxContainers bounds the lab's size.
	maxContainers int

	seq        int
	containers []string
	// pinned containers are not deleted or moved (the runner probes
	// them under a fault).
	pinned                      map[string]bool
	containerHost, containerNet map[string]string
	policies, services          *family
	stats                       map[string]*opStats
	failures                    []string
}

func newOperator(a *api, hosts []string, seed uint64, maxContainers int) *operator {
	o := &operator{api: a, hosts: hosts, rng: rand.New(rand.NewPCG(seed, 1)), maxContainers: maxContainers,
		containerHost: map[string]string{}, containerNet: map[string]string{}, pinned: map[string]bool{},
		stats: map[string]*opStats{}}
	for _, k := range opKinds {
		o.stats[k] = &opStats{}
	}
	o.initFamilies()
	return o
}

// step does one random operation.
func (o *operator) step() {
	var choices []func()
	if len(o.containers) < o.maxContainers {
		choices = append(choices, o.createContainer, o.createContainer)
	}
	movable := o.movable()
	if len(o.containers) > o.maxContainers/2 && len(movable) > 0 {
		choices = append(choices, o.deleteContainer)
	}
	if len(movable) > 0 {
		choices = append(choices, o.moveContainer)
	}
	for _, f := range []*family{o.policies, o.services} {
		if len(f.names) < f.max {
			choices = append(choices, func() { o.create(f) })
		}
		if len(f.names) > 0 {
			choices = append(choices, func() { o.update(f) }, func() { o.remove(f) })
		}
	}
	choices[o.rng.IntN(len(choices))]()
}

// write does one write, retrying while the controller is unreachable or
// answers 5xx (PostgreSQL restarting, a replica killed) for up to 60 s;
// any other answer than want is a rejection (e.g. a 409 for a host port
// taken) or, for 4xx that the soak should never cause, a failure.
func (o *operator) write(kind string, want int, method, path string, body, out any) bool {
	st := o.stats[kind]
	if o.wait != "" {
		if strings.Contains(path, "?") {
			path += "&" + o.wait
		} else {
			path += "?" + o.wait
		}
	}
	code, retries, err := o.api.doRetry(60*time.Second, method, path, body, out)
	st.Retries += retries
	switch {
	case code == want:
		st.OK++
		return true
	case retries > 0 && (code == 404 && method == "DELETE" || code == 409 && method == "POST" && o.exists(path, body)):
		// An earlier try went through before its answer was lost (the
		// replica died, PostgreSQL restarted): the retry finds it done.
		st.OK++
		return true
	case code == 409 || code == 422 || (code == 504 && o.wait != ""):
		// A conflict the random choice made, or a realized wait that
		// timed out (the write is in: counted, not failed).
		st.Rejected++
		return code == 504
	default:
		st.Failed++
		o.failures = append(o.failures, fmt.Sprintf("%s %s: %d %v", method, path, code, err))
		return false
	}
}

// exists tells whether the object a POST to path created is there now
// (the collection's path plus its name and network).
func (o *operator) exists(path string, body any) bool {
	m, ok := body.(map[string]any)
	if !ok {
		return false
	}
	coll, _, _ := strings.Cut(path, "?")
	name, _ := m["name"].(string)
	net, _ := m["network"].(string)
	code, _, _ := o.api.doRetry(60*time.Second, "GET", coll+"/"+name+"?network="+net, nil, nil)
	return code == 200
}

// movable are the containers that may be deleted or moved: not pinned.
func (o *operator) movable() []string {
	return slices.DeleteFunc(slices.Clone(o.containers), func(s string) bool { return o.pinned[s] })
}

func (o *operator) name(prefix string) string {
	o.seq++
	return fmt.Sprintf("%s%d", prefix, o.seq)
}

func (o *operator) pick(s []string) string { return s[o.rng.IntN(len(s))] }

func (o *operator) createContainer() {
	name := o.name("c")
	net := soakNetworks[o.rng.IntN(len(soakNetworks))].name
	host := o.pick(o.hosts)
	role := "free"
	if o.rng.IntN(3) == 0 {
		role = "locked"
	}
	body := map[string]any{"name": name, "network": net, "host": host, "labels": map[string]string{"role": role}}
	if o.rng.IntN(4) == 0 {
		body["publish"] = []map[string]any{{"hostPort": 20000 + o.seq, "port": 80}}
	}
	if o.write("container.create", 201, "POST", "/api/v1/containers", body, nil) {
		o.containers = append(o.containers, name)
		o.containerHost[name], o.containerNet[name] = host, net
	}
}

func (o *operator) deleteContainer() {
	name := o.pick(o.movable())
	if o.write("container.delete", 204, "DELETE", "/api/v1/containers/"+name+"?network="+o.containerNet[name], nil, nil) {
		o.containers = slices.DeleteFunc(o.containers, func(s string) bool { return s == name })
		delete(o.containerHost, name)
		delete(o.containerNet, name)
	}
}

func (o *operator) moveContainer() {
	name := o.pick(o.movable())
	var to []string
	for _, h := range o.hosts {
		if h != o.containerHost[name] {
			to = append(to, h)
		}
	}
	host := o.pick(to)
	if o.write("container.move", 200, "POST", "/api/v1/containers/"+name+"/move?network="+o.containerNet[name], map[string]any{"host": host}, nil) {
		o.containerHost[name] = host
		return
	}
	// Not acknowledged: it may or may not have happened (a try whose
	// answer was lost); what counts is where the container is.
	var c openapi.Container
	if code, _, _ := o.api.doRetry(60*time.Second, "GET", "/api/v1/containers/"+name+"?network="+o.containerNet[name], nil, &c); code == 200 {
		o.containerHost[name] = c.Host
	}
}

// family is the policies or the services: created, updated (replaced
// with PUT after a GET) and deleted by name, each on its network.
type family struct {
	kind, path, prefix string
	max                int // at most this many at once
	names              []string
	net                map[string]string
	body               func(name, net string) map[string]any
}

func (o *operator) initFamilies() {
	free := "role=free"
	// Policies select the network's role=locked containers and let
	// role=free ones in on one TCP port.
	o.policies = &family{kind: "policy", path: "/api/v1/policies", prefix: "p", max: 3, net: map[string]string{},
		body: func(name, net string) map[string]any {
			return map[string]any{"name": name, "network": net, "selector": "role=locked",
				"ingress": []openapi.PolicyRule{{Peers: []openapi.PolicyPeer{{Selector: &free}},
					Ports: []openapi.PolicyPort{{Port: 80 + o.rng.IntN(2), Protocol: "TCP"}}}}}
		}}
	o.services = &family{kind: "service", path: "/api/v1/services", prefix: "s", max: 2, net: map[string]string{},
		body: func(name, net string) map[string]any {
			return map[string]any{"name": name, "network": net, "selector": "role=free",
				"ports": []map[string]any{{"port": 80 + o.rng.IntN(2), "targetPort": 80}}}
		}}
}

func (o *operator) create(f *family) {
	name := o.name(f.prefix)
	net := soakNetworks[o.rng.IntN(len(soakNetworks))].name
	if o.write(f.kind+".create", 201, "POST", f.path, f.body(name, net), nil) {
		f.names = append(f.names, name)
		f.net[name] = net
	}
}

func (o *operator) update(f *family) {
	name := o.pick(f.names)
	var obj struct {
		Network string `json:"network"`
	}
	ref := f.path + "/" + name + "?network=" + f.net[name]
	if code, _, err := o.api.doRetry(60*time.Second, "GET", ref, nil, &obj); err != nil || code != 200 {
		o.stats[f.kind+".update"].Failed++
		o.failures = append(o.failures, fmt.Sprintf("GET %s: %d %v", ref, code, err))
		return
	}
	o.write(f.kind+".update", 200, "PUT", ref, f.body(name, obj.Network), nil)
}

func (o *operator) remove(f *family) {
	name := o.pick(f.names)
	if o.write(f.kind+".delete", 204, "DELETE", f.path+"/"+name+"?network="+f.net[name], nil, nil) {
		f.names = slices.DeleteFunc(f.names, func(s string) bool { return s == name })
		delete(f.net, name)
	}
}
