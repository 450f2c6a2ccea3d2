package store

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// TestContainerDNS: every way a container is read back (create, get, list,
// update, move, its events) shows its resolver: the network's gateway and
// the search list under the store's domain; a dns given on input is ignored.
func TestContainerDNS(t *testing.T) {
	st, _ := newStore(t, Options{DNSDomain: "corp.example"})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.168.200.11")
	mkHost(t, st, "h2", "192.168.200.12")
	n := mkNetwork(t, st, "blue", "10.7.0.0/24", 0)
	want := func(what string, c openapi.Container) {
		t.Helper()
		if c.DNS == nil || !slices.Equal(c.DNS.Nameservers, []string{n.Gateway}) ||
			!slices.Equal(c.DNS.Search, []string{"blue.corp.example", "corp.example"}) {
			t.Fatalf("%s: dns %+v, want nameserver %s and search blue.corp.example corp.example", what, c.DNS, n.Gateway)
		}
	}
	c, err := st.CreateContainer(ctx, "test", openapi.Container{Name: "web", Network: "blue", Host: "h1",
		DNS: &openapi.ContainerDNS{Nameservers: []string{"8.8.8.8"}}})
	if err != nil {
		t.Fatal(err)
	}
	want("create", c)
	got, err := st.GetContainer(ctx, c.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	want("get", got)
	list, _, err := st.ListContainers(ctx, ListOptions{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	want("list", list[0])
	got.Labels = map[string]string{"app": "web"}
	if got, err = st.UpdateContainer(ctx, "test", c.ID, "", 0, got); err != nil {
		t.Fatal(err)
	}
	want("update", got)
	if got, err = st.MoveContainer(ctx, "test", c.ID, "", "h2"); err != nil {
		t.Fatal(err)
	}
	want("move", got)
	evs, err := st.EventsSince(ctx, 0, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range evs {
		if e.Kind == "container" {
			var ec openapi.Container
			if err := json.Unmarshal(e.Object, &ec); err != nil {
				t.Fatal(err)
			}
			want("event "+e.Action, ec)
			seen++
		}
	}
	if seen != 3 {
		t.Fatalf("%d container events, want 3", seen)
	}
}
