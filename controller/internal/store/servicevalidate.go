package store

import (
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// Bounds and defaults of a service's load-balancing fields.
const (
	// MaxGroupID is the largest service group id: its last group,
	// MaxGroupID*MaxServicePorts+31, stays below OpenFlow's reserved ids.
	MaxGroupID = 134217726
	// MaxServiceWeights bounds a service's weights entries.
	MaxServiceWeights = 32
	// MaxWeight is the largest weight of a weights entry.
	MaxWeight = 10000
	// DefaultAffinityTimeout is a ClientIP affinity's timeout when none is given.
	DefaultAffinityTimeout = 10800
	// MaxAffinityTimeout is the longest affinity timeout (a day).
	MaxAffinityTimeout = 86400
	// MaxHealthSeconds bounds a health check's interval and timeout.
	MaxHealthSeconds = 3600
	// MaxHealthThreshold bounds a health check's thresholds.
	MaxHealthThreshold = 100
)

// validatePorts checks and defaults a service's ports: at most
// MaxServicePorts, no name or port/protocol twice.
func validatePorts(ports []openapi.ServicePort) error {
	if len(ports) == 0 {
		return problem.Invalid("ports", "a service needs at least one port")
	}
	if len(ports) > openapi.MaxServicePorts {
		return problem.Invalid("ports", "a service has at most %d ports, not %d", openapi.MaxServicePorts, len(ports))
	}
	seen, names := map[string]bool{}, map[string]bool{}
	for i := range ports {
		p := &ports[i]
		field := fmt.Sprintf("ports[%d]", i)
		if err := checkPort(field+".port", p.Port); err != nil {
			return err
		}
		if p.TargetPort == 0 {
			p.TargetPort = p.Port
		}
		if err := checkPort(field+".targetPort", p.TargetPort); err != nil {
			return err
		}
		proto, err := normProtocol(field+".protocol", p.Protocol, "TCP", "UDP", "SCTP")
		if err != nil {
			return err
		}
		p.Protocol = proto
		if p.Name != "" {
			if err := checkName(field+".name", p.Name); err != nil {
				return err
			}
			if names[p.Name] {
				return problem.Invalid(field+".name", "port name %q is used twice", p.Name)
			}
			names[p.Name] = true
		}
		key := fmt.Sprint(p.Port, "/", p.Protocol)
		if seen[key] {
			return problem.Invalid(field+".port", "port %s is listed twice", key)
		}
		seen[key] = true
	}
	return nil
}

// validateWeights checks the canary weights.
func validateWeights(ws []openapi.ServiceWeight) error {
	if len(ws) > MaxServiceWeights {
		return problem.Invalid("weights", "a service has at most %d weights, not %d", MaxServiceWeights, len(ws))
	}
	for i, w := range ws {
		field := fmt.Sprintf("weights[%d]", i)
		if _, err := parseSelector(field+".selector", w.Selector); err != nil {
			return err
		}
		if w.Weight < 1 || w.Weight > MaxWeight {
			return problem.Invalid(field+".weight", "weight %d is out of range 1-%d", w.Weight, MaxWeight)
		}
	}
	return nil
}

// validateAffinity checks and defaults the session affinity and its timeout.
func validateAffinity(v *openapi.Service) error {
	switch v.SessionAffinity {
	case "", openapi.AffinityNone:
		v.SessionAffinity = openapi.AffinityNone
		if v.SessionAffinityTimeoutSeconds != 0 {
			return problem.Invalid("sessionAffinityTimeoutSeconds", "a timeout needs sessionAffinity %s", openapi.AffinityClientIP)
		}
		return nil
	case openapi.AffinityClientIP:
	default:
		return problem.Invalid("sessionAffinity", "unknown session affinity %q: use %s or %s", v.SessionAffinity, openapi.AffinityNone, openapi.AffinityClientIP)
	}
	if v.SessionAffinityTimeoutSeconds == 0 {
		v.SessionAffinityTimeoutSeconds = DefaultAffinityTimeout
	}
	if t := v.SessionAffinityTimeoutSeconds; t < 1 || t > MaxAffinityTimeout {
		return problem.Invalid("sessionAffinityTimeoutSeconds", "timeout %d is out of range 1-%d seconds", t, MaxAffinityTimeout)
	}
	return nil
}

// validateHealthCheck checks and defaults a health check (nil: none).
func validateHealthCheck(hc *openapi.HealthCheck, ports []openapi.ServicePort) error {
	if hc == nil {
		return nil
	}
	proto := strings.ToUpper(hc.Protocol)
	switch proto {
	case "":
		proto = "TCP"
	case "TCP", "HTTP":
	default:
		return problem.Invalid("healthCheck.protocol", "unknown health check protocol %q: use TCP or HTTP", hc.Protocol)
	}
	hc.Protocol = proto
	if hc.Port == 0 && len(ports) > 0 {
		hc.Port = ports[0].TargetPort
	}
	if err := checkPort("healthCheck.port", hc.Port); err != nil {
		return err
	}
	switch {
	case proto == "TCP" && hc.Path != "":
		return problem.Invalid("healthCheck.path", "a path needs protocol HTTP")
	case proto == "HTTP" && hc.Path == "":
		hc.Path = "/"
	case proto == "HTTP" && (!strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " \t\r\n")):
		return problem.Invalid("healthCheck.path", "path %q must start with / and hold no spaces", hc.Path)
	}
	for _, f := range []struct {
		name     string
		v        *int
		def, max int
	}{
		{"intervalSeconds", &hc.IntervalSeconds, 5, MaxHealthSeconds},
		{"timeoutSeconds", &hc.TimeoutSeconds, 1, MaxHealthSeconds},
		{"unhealthyThreshold", &hc.UnhealthyThreshold, 3, MaxHealthThreshold},
		{"healthyThreshold", &hc.HealthyThreshold, 1, MaxHealthThreshold},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > f.max {
			return problem.Invalid("healthCheck."+f.name, "%s %d is out of range 1-%d", f.name, *f.v, f.max)
		}
	}
	if hc.IntervalSeconds < hc.TimeoutSeconds {
		return problem.Invalid("healthCheck.intervalSeconds", "the interval (%d s) must not be shorter than the timeout (%d s)",
			hc.IntervalSeconds, hc.TimeoutSeconds)
	}
	return nil
}
