package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// healthFixture: hosts h1 and h2, network blue with web1, web2 (h1, v1 and
// v2) and web3 (h2, v1); service checked (with a health check, weights
// v1=90 v2=10) and plain (none), both selecting app=web.
type healthFixture struct {
	st               *Store
	ctx              context.Context
	checked, plain   openapi.Service
	web1, web2, web3 openapi.Container
}

func newHealthFixture(t *testing.T) *healthFixture {
	st, _ := newStore(t, Options{})
	f := &healthFixture{st: st, ctx: context.Background()}
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkNetwork(t, st, "blue", "10.10.0.0/24", 0)
	ctr := func(name, host, version string) openapi.Container {
		c, err := st.CreateContainer(f.ctx, "test", openapi.Container{Name: name, Network: "blue", Host: host,
			Labels: map[string]string{"app": "web", "version": version}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f.web1, f.web2, f.web3 = ctr("web1", "h1", "v1"), ctr("web2", "h1", "v2"), ctr("web3", "h2", "v1")
	var err error
	if f.checked, err = st.CreateService(f.ctx, "test", openapi.Service{Name: "checked", Network: "blue", Selector: "app=web",
		Ports:       []openapi.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}},
		Weights:     []openapi.ServiceWeight{{Selector: "version=v1", Weight: 90}, {Selector: "version=v2", Weight: 10}},
		HealthCheck: &openapi.HealthCheck{}}); err != nil {
		t.Fatal(err)
	}
	if f.plain, err = st.CreateService(f.ctx, "test", openapi.Service{Name: "plain", Network: "blue", Selector: "app=web",
		Ports: []openapi.ServicePort{{Port: 53, Protocol: "UDP"}}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *healthFixture) rev(t *testing.T) int64 {
	t.Helper()
	r, err := f.st.Revision(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// events returns the endpoint events after rev.
func (f *healthFixture) events(t *testing.T, rev int64) []openapi.Event {
	t.Helper()
	evs, err := f.st.EventsSince(f.ctx, rev, []string{EndpointKind}, 100)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// rows returns the stored verdicts as "<container name>=<healthy>".
func (f *healthFixture) rows(t *testing.T) map[string]bool {
	t.Helper()
	in, err := f.st.LoadIntent(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{f.web1.ID: "web1", f.web2.ID: "web2", f.web3.ID: "web3"}
	out := map[string]bool{}
	for _, h := range in.EndpointHealth {
		out[names[h.Container]] = h.Healthy
	}
	return out
}

func (f *healthFixture) endpoints(t *testing.T, ref string) map[string]openapi.Endpoint {
	t.Helper()
	eps, err := f.st.ServiceEndpoints(f.ctx, ref, "blue")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]openapi.Endpoint{}
	for _, e := range eps {
		out[e.Container] = e
	}
	return out
}

// Reports write only the verdicts that changed, of the reporting host's
// containers, for services with a health check; each change is an event;
// the endpoints list shows weights and health.
func TestEndpointHealthReports(t *testing.T) {
	f := newHealthFixture(t)
	st, ctx := f.st, f.ctx
	eh := func(svc openapi.Service, c openapi.Container, healthy bool, reason string) openapi.EndpointHealth {
		return openapi.EndpointHealth{Service: svc.ID, Container: c.ID, Healthy: healthy, Reason: reason}
	}
	before := f.rev(t)
	report := []openapi.EndpointHealth{
		eh(f.checked, f.web1, false, "connection refused"),
		eh(f.checked, f.web2, true, ""),
		eh(f.checked, f.web3, false, "not on h1"),                               // another host's container
		eh(f.plain, f.web1, false, "no health check"),                           // a service without a check
		{Service: "00000000-0000-0000-0000-000000000001", Container: f.web1.ID}, // no such service
	}
	if err := st.ReportEndpointHealth(ctx, "h1", report); err != nil {
		t.Fatal(err)
	}
	if got := f.rows(t); len(got) != 2 || got["web1"] || !got["web2"] {
		t.Fatalf("rows after the first report: %v", got)
	}
	evs := f.events(t, before)
	if len(evs) != 2 || evs[0].Revision != evs[1].Revision || evs[0].Revision != before+1 {
		t.Fatalf("events: %+v", evs)
	}
	for _, e := range evs {
		var obj openapi.EndpointHealth
		if err := json.Unmarshal(e.Object, &obj); err != nil {
			t.Fatal(err)
		}
		if e.Action != openapi.EventCreated || e.ID != f.checked.ID+"/"+obj.Container || e.Network != "blue" || obj.Host != "h1" ||
			obj.Service != f.checked.ID || (e.Name == "web1") == obj.Healthy || (e.Name == "web1" && obj.Reason != "connection refused") {
			t.Fatalf("event %+v object %+v", e, obj)
		}
	}

	// The same report again writes nothing, from the cache or from the
	// store.
	rev := f.rev(t)
	if err := st.ReportEndpointHealth(ctx, "h1", report); err != nil {
		t.Fatal(err)
	}
	st.health.clear()
	// Only the reason changed: not a change of verdict.
	report[0].Reason = "i/o timeout"
	if err := st.ReportEndpointHealth(ctx, "h1", report); err != nil {
		t.Fatal(err)
	}
	if f.rev(t) != rev {
		t.Fatalf("unchanged reports moved the revision %d -> %d", rev, f.rev(t))
	}

	// web1 recovers: one row, one event.
	report[0].Healthy, report[0].Reason = true, ""
	if err := st.ReportEndpointHealth(ctx, "h1", report); err != nil {
		t.Fatal(err)
	}
	evs = f.events(t, rev)
	if len(evs) != 1 || evs[0].Action != openapi.EventUpdated || evs[0].Name != "web1" {
		t.Fatalf("recovery events: %+v", evs)
	}
	// h2 reports web3 down.
	rev = f.rev(t)
	if err := st.ReportEndpointHealth(ctx, "h2", []openapi.EndpointHealth{eh(f.checked, f.web3, false, "timeout"), eh(f.checked, f.web1, false, "not on h2")}); err != nil {
		t.Fatal(err)
	}
	if got := f.rows(t); len(got) != 3 || !got["web1"] || !got["web2"] || got["web3"] {
		t.Fatalf("rows: %v", got)
	}
	if evs := f.events(t, rev); len(evs) != 1 || evs[0].Name != "web3" {
		t.Fatalf("h2 events: %+v", evs)
	}

	// Endpoints: weights from package service, health from the rows.
	eps := f.endpoints(t, "checked")
	// v1 (90) has web1 and web3, v2 (10) web2: 65535*0.9/2 and 65535*0.1.
	if len(eps) != 3 || eps["web1"].Weight != 29491 || eps["web2"].Weight != 6554 || eps["web3"].Weight != 0 {
		t.Fatalf("endpoint weights: %+v", eps)
	}
	w3 := eps["web3"]
	if w3.Health != openapi.HealthUnhealthy || w3.Reason != "timeout" || w3.Since == nil || w3.Host != "h2" || w3.Address != f.web3.IP ||
		len(w3.Ports) != 1 || w3.Ports[0] != (openapi.EndpointPort{Name: "http", Port: 8080, Protocol: "TCP"}) {
		t.Fatalf("web3: %+v", w3)
	}
	if eps["web1"].Health != openapi.HealthHealthy || eps["web1"].Since == nil || eps["web1"].Reason != "" {
		t.Fatalf("web1: %+v", eps["web1"])
	}
	for _, e := range f.endpoints(t, "plain") {
		if e.Health != openapi.HealthUnchecked || e.Weight != 100 || e.Since != nil {
			t.Fatalf("plain endpoint %+v", e)
		}
	}
	if _, err := st.ServiceEndpoints(ctx, "nope", ""); !IsNotFound(err) {
		t.Fatalf("unknown service: %v", err)
	}

	// Bad reports are 400s naming the entry.
	wantField(t, st.ReportEndpointHealth(ctx, "h1", []openapi.EndpointHealth{{Service: "x", Container: f.web1.ID}}), 400, "endpoints[0].service")
	wantField(t, st.ReportEndpointHealth(ctx, "h1", []openapi.EndpointHealth{{Service: f.checked.ID, Container: "'; DROP"}}), 400, "endpoints[0].container")
	wantField(t, st.ReportEndpointHealth(ctx, "h1", make([]openapi.EndpointHealth, openapi.MaxEndpoints+1)), 400, "endpoints")
}

// Changing or removing a service's health check, deleting a backend or the
// service drops the verdicts, with deleted events; unchanged checks keep
// them.
func TestEndpointHealthCleared(t *testing.T) {
	f := newHealthFixture(t)
	st, ctx := f.st, f.ctx
	down := func(host string, cs ...openapi.Container) {
		t.Helper()
		var r []openapi.EndpointHealth
		for _, c := range cs {
			r = append(r, openapi.EndpointHealth{Service: f.checked.ID, Container: c.ID, Reason: "down"})
		}
		if err := st.ReportEndpointHealth(ctx, host, r); err != nil {
			t.Fatal(err)
		}
	}
	down("h1", f.web1, f.web2)
	down("h2", f.web3)
	if got := f.rows(t); len(got) != 3 {
		t.Fatalf("rows: %v", got)
	}
	// A change of something else keeps them.
	upd := f.checked
	upd.Labels = map[string]string{"team": "a"}
	rev := f.rev(t)
	if _, err := st.UpdateService(ctx, "test", "checked", "blue", 0, upd); err != nil {
		t.Fatal(err)
	}
	if got := f.rows(t); len(got) != 3 || len(f.events(t, rev)) != 0 {
		t.Fatalf("rows after a label change: %v", got)
	}
	// A new interval drops them all.
	upd.HealthCheck = &openapi.HealthCheck{IntervalSeconds: 7}
	rev = f.rev(t)
	if _, err := st.UpdateService(ctx, "test", "checked", "blue", 0, upd); err != nil {
		t.Fatal(err)
	}
	evs := f.events(t, rev)
	if got := f.rows(t); len(got) != 0 || len(evs) != 3 {
		t.Fatalf("after a new check: rows %v, events %+v", got, evs)
	}
	for _, e := range evs {
		var obj openapi.EndpointHealth
		if err := json.Unmarshal(e.Object, &obj); err != nil || e.Action != openapi.EventDeleted || e.Revision != rev+1 ||
			obj.Service != f.checked.ID || obj.Host == "" || e.ID != obj.Service+"/"+obj.Container {
			t.Fatalf("deleted event %+v (%v)", e, err)
		}
	}
	// The agents' same reports come in again: written again (the cache
	// was cleared).
	down("h1", f.web1, f.web2)
	down("h2", f.web3)
	// A deleted backend's verdict goes with it.
	rev = f.rev(t)
	if _, err := st.DeleteContainer(ctx, "test", "web2", "blue", 0); err != nil {
		t.Fatal(err)
	}
	if evs := f.events(t, rev); len(evs) != 1 || evs[0].Name != "web2" || evs[0].Action != openapi.EventDeleted {
		t.Fatalf("container delete events: %+v", evs)
	}
	// Removing the check drops the rest.
	upd.HealthCheck = nil
	rev = f.rev(t)
	if _, err := st.UpdateService(ctx, "test", "checked", "blue", 0, upd); err != nil {
		t.Fatal(err)
	}
	if got := f.rows(t); len(got) != 0 || len(f.events(t, rev)) != 2 {
		t.Fatalf("after removing the check: rows %v", got)
	}
	// And a deleted service's go with it.
	upd.HealthCheck = &openapi.HealthCheck{}
	if _, err := st.UpdateService(ctx, "test", "checked", "blue", 0, upd); err != nil {
		t.Fatal(err)
	}
	down("h1", f.web1)
	rev = f.rev(t)
	if _, err := st.DeleteService(ctx, "test", "checked", "blue", 0); err != nil {
		t.Fatal(err)
	}
	evs = f.events(t, rev)
	if got := f.rows(t); len(got) != 0 || len(evs) != 1 || evs[0].Name != "web1" {
		t.Fatalf("after the service delete: rows %v events %+v", got, evs)
	}
}

// wantField checks that err is a problem of status naming field.
func wantField(t testing.TB, err error, status int, field string) {
	t.Helper()
	pe, ok := problem.As(err)
	if !ok || pe.Status != status || pe.Field != field {
		t.Fatalf("got %v, want a %d naming %q", err, status, field)
	}
}
