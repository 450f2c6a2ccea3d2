// Package service decides which containers back a service and with what
// weight: the one rule the flow compiler (select-group buckets) and the REST
// API (GET /services/{ref}/endpoints) share.
//
// It is pure: no I/O, no clock, no database. It does not know about health
// (callers drop unhealthy backends themselves) nor about OpenFlow.
package service

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/openapi"
)

// MaxBucketWeight is the largest OpenFlow bucket weight.
const MaxBucketWeight = 65535

// DefaultWeight is every backend's weight when the service has no weights.
const DefaultWeight = 100

// Backend is one container a service selects, with its bucket weight.
type Backend struct {
	Container *openapi.Container
	// Weight is 0..MaxBucketWeight; 0 means no new connections.
	Weight int
}

// Backends returns the containers of svc's network that its selector picks,
// sorted by container ID, with their weights. ctrs may hold containers of
// any network; those without an address or a host are skipped.
//
// Without Weights every backend weighs DefaultWeight. With Weights, a
// backend belongs to the subset of the first entry whose selector matches
// it, and a backend no entry matches weighs 0. Subsets without backends are
// ignored (their share goes to the others). A backend's weight is
// max(1, round(MaxBucketWeight * w / W / n)), where w is its subset's
// weight, W the sum of the weights of the subsets with backends, and n the
// number of backends in its subset: each subset's share of new connections
// is w/W.
//
// The error reports a selector that does not parse (the store rejects such
// services, so the compiler may treat an error as "no backends").
func Backends(svc *openapi.Service, ctrs []openapi.Container) ([]Backend, error) {
	sel, err := selector.Parse(svc.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	subsets := make([]selector.Selector, len(svc.Weights))
	for i, w := range svc.Weights {
		if subsets[i], err = selector.Parse(w.Selector); err != nil {
			return nil, fmt.Errorf("weights[%d].selector: %w", i, err)
		}
	}
	var out []Backend
	for i := range ctrs {
		c := &ctrs[i]
		if c.Network != svc.Network || c.IP == "" || c.Host == "" || !sel.Matches(c.Labels) {
			continue
		}
		out = append(out, Backend{Container: c})
	}
	slices.SortFunc(out, func(a, b Backend) int { return cmp.Compare(a.Container.ID, b.Container.ID) })
	if len(svc.Weights) == 0 {
		for i := range out {
			out[i].Weight = DefaultWeight
		}
		return out, nil
	}
	subsetOf := make([]int, len(out))
	n := make([]int, len(svc.Weights))
	for i := range out {
		subsetOf[i] = -1
		for j := range subsets {
			if subsets[j].Matches(out[i].Container.Labels) {
				subsetOf[i] = j
				n[j]++
				break
			}
		}
	}
	total := 0
	for j, w := range svc.Weights {
		if n[j] > 0 {
			total += w.Weight
		}
	}
	for i := range out {
		j := subsetOf[i]
		if j < 0 || total <= 0 || svc.Weights[j].Weight <= 0 {
			continue
		}
		w := math.Round(float64(MaxBucketWeight) * float64(svc.Weights[j].Weight) / float64(total) / float64(n[j]))
		out[i].Weight = max(1, int(w))
	}
	return out, nil
}

// Usable returns the backends with a weight above 0 whose container
// healthy(ID) accepts; healthy nil accepts all.
func Usable(bs []Backend, healthy func(containerID string) bool) []Backend {
	var out []Backend
	for _, b := range bs {
		if b.Weight > 0 && (healthy == nil || healthy(b.Container.ID)) {
			out = append(out, b)
		}
	}
	return out
}
