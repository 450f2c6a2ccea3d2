package nodes

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// Endpoint events become the compiler's health changes.
func TestToChangeEndpoint(t *testing.T) {
	h := openapi.EndpointHealth{Service: "s-id", Container: "c-id", Healthy: false, Reason: "refused", Host: "h1"}
	obj, _ := json.Marshal(h)
	for _, c := range []struct {
		action string
		want   compile.Change
	}{
		{openapi.EventCreated, compile.PutEndpointHealth(h)},
		{openapi.EventUpdated, compile.PutEndpointHealth(h)},
		{openapi.EventDeleted, compile.DeleteEndpointHealth("s-id", "c-id")},
	} {
		got, err := toChange(openapi.Event{Kind: store.EndpointKind, Action: c.action, ID: "s-id/c-id", Object: obj})
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.action, got, err, c.want)
		}
	}
	if _, err := toChange(openapi.Event{Kind: store.EndpointKind, Action: openapi.EventUpdated, Object: json.RawMessage(`[1]`)}); err == nil {
		t.Error("an unreadable endpoint event was taken")
	}
}

// The manager follows endpoint events and loads the stored verdicts without
// leaving the store.
func TestEndpointEventsFollowed(t *testing.T) {
	f := newFixture(t)
	f.m.DNSDomain = "corp.example"
	f.host("h1", "192.168.200.11")
	f.network("blue", "10.10.0.0/24")
	f.container("web", "blue", "h1")
	svc, err := f.st.CreateService(f.ctx, "test", openapi.Service{Name: "web", Network: "blue", Selector: "",
		Ports: []openapi.ServicePort{{Port: 80}}, HealthCheck: &openapi.HealthCheck{}})
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := f.st.GetContainer(f.ctx, "web", "blue")
	if err != nil {
		t.Fatal(err)
	}
	f.load()
	if err := f.st.ReportEndpointHealth(f.ctx, "h1", []openapi.EndpointHealth{{Service: svc.ID, Container: ctr.ID, Reason: "refused"}}); err != nil {
		t.Fatal(err)
	}
	rev, err := f.st.Revision(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	if f.m.revision() != rev || f.m.divergence() != nil {
		t.Fatalf("manager at %d (diverged: %v), store at %d", f.m.revision(), f.m.divergence(), rev)
	}
	// A load with a stored verdict.
	f.load()
	if f.m.revision() != rev || f.m.dnsDomain() != "corp.example" {
		t.Fatalf("reload at %d, domain %q", f.m.revision(), f.m.dnsDomain())
	}
}
