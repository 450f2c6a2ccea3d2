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

	seq                         int
	containers, policies, svcs  []string
	containerHost, containerNet map[string]string
	policyNet, svcNet           map[string]string
	stats                       map[string]*opStats
	failures                    []string
}

func newOperator(a *api, hosts []string, seed uint64, maxContainers int) *operator {
	o := &operator{api: a, hosts: hosts, rng: rand.New(rand.NewPCG(seed, 1)), maxContainers: maxContainers,
		containerHost: map[string]string{}, containerNet: map[string]string{},
		policyNet: map[string]string{}, svcNet: map[string]string{}, stats: map[string]*opStats{}}
	for _, k := range opKinds {
		o.stats[k] = &opStats{}
	}
	return o
}

// step does one random operation.
func (o *operator) step() {
	var choices []func()
	if len(o.containers) < o.maxContainers {
		choices = append(choices, o.createContainer, o.createContainer)
	}
	if len(o.containers) > o.maxContainers/2 {
		choices = append(choices, o.deleteContainer)
	}
	if len(o.containers) > 0 {
		choices = append(choices, o.moveContainer)
	}
	if len(o.policies) < 3 {
		choices = append(choices, o.createPolicy)
	}
	if len(o.policies) > 0 {
		choices = append(choices, o.updatePolicy, o.deletePolicy)
	}
	if len(o.svcs) < 2 {
		choices = append(choices, o.createService)
	}
	if len(o.svcs) > 0 {
		choices = append(choices, o.updateService, o.deleteService)
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
	name := o.pick(o.containers)
	if o.write("container.delete", 204, "DELETE", "/api/v1/containers/"+name+"?network="+o.containerNet[name], nil, nil) {
		o.containers = slices.DeleteFunc(o.containers, func(s string) bool { return s == name })
		delete(o.containerHost, name)
		delete(o.containerNet, name)
	}
}

func (o *operator) moveContainer() {
	name := o.pick(o.containers)
	var to []string
	for _, h := range o.hosts {
		if h != o.containerHost[name] {
			to = append(to, h)
		}
	}
	host := o.pick(to)
	if o.write("container.move", 200, "POST", "/api/v1/containers/"+name+"/move?network="+o.containerNet[name], map[string]any{"host": host}, nil) {
		o.containerHost[name] = host
	}
}

// policyBody selects the network's role=locked containers and lets
// role=free ones in on one TCP port.
func (o *operator) policyBody(name, net string) map[string]any {
	free := "role=free"
	return map[string]any{"name": name, "network": net, "selector": "role=locked",
		"ingress": []openapi.PolicyRule{{Peers: []openapi.PolicyPeer{{Selector: &free}},
			Ports: []openapi.PolicyPort{{Port: 80 + o.rng.IntN(2), Protocol: "TCP"}}}}}
}

func (o *operator) createPolicy() {
	name := o.name("p")
	net := soakNetworks[o.rng.IntN(len(soakNetworks))].name
	if o.write("policy.create", 201, "POST", "/api/v1/policies", o.policyBody(name, net), nil) {
		o.policies = append(o.policies, name)
		o.policyNet[name] = net
	}
}

func (o *operator) updatePolicy() {
	name := o.pick(o.policies)
	var p openapi.Policy
	if code, _, err := o.api.doRetry(60*time.Second, "GET", "/api/v1/policies/"+name+"?network="+o.policyNet[name], nil, &p); err != nil || code != 200 {
		o.stats["policy.update"].Failed++
		o.failures = append(o.failures, fmt.Sprintf("GET policy %s: %d %v", name, code, err))
		return
	}
	o.write("policy.update", 200, "PUT", "/api/v1/policies/"+name+"?network="+p.Network, o.policyBody(name, p.Network), nil)
}

func (o *operator) deletePolicy() {
	name := o.pick(o.policies)
	if o.write("policy.delete", 204, "DELETE", "/api/v1/policies/"+name+"?network="+o.policyNet[name], nil, nil) {
		o.policies = slices.DeleteFunc(o.policies, func(s string) bool { return s == name })
	}
}

func (o *operator) serviceBody(name, net string) map[string]any {
	return map[string]any{"name": name, "network": net, "selector": "role=free",
		"ports": []map[string]any{{"port": 80 + o.rng.IntN(2), "targetPort": 80}}}
}

func (o *operator) createService() {
	name := o.name("s")
	net := soakNetworks[o.rng.IntN(len(soakNetworks))].name
	if o.write("service.create", 201, "POST", "/api/v1/services", o.serviceBody(name, net), nil) {
		o.svcs = append(o.svcs, name)
		o.svcNet[name] = net
	}
}

func (o *operator) updateService() {
	name := o.pick(o.svcs)
	var s openapi.Service
	if code, _, err := o.api.doRetry(60*time.Second, "GET", "/api/v1/services/"+name+"?network="+o.svcNet[name], nil, &s); err != nil || code != 200 {
		o.stats["service.update"].Failed++
		o.failures = append(o.failures, fmt.Sprintf("GET service %s: %d %v", name, code, err))
		return
	}
	o.write("service.update", 200, "PUT", "/api/v1/services/"+name+"?network="+s.Network, o.serviceBody(name, s.Network), nil)
}

func (o *operator) deleteService() {
	name := o.pick(o.svcs)
	if o.write("service.delete", 204, "DELETE", "/api/v1/services/"+name+"?network="+o.svcNet[name], nil, nil) {
		o.svcs = slices.DeleteFunc(o.svcs, func(s string) bool { return s == name })
	}
}
