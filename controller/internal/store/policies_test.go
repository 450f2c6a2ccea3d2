package store

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// Migration 00004 keeps what rows written before it hold ([] stayed []),
// and from then on a policy stores absent (NULL) apart from [].
func TestPolicyDirectionsMigration(t *testing.T) {
	ctx := context.Background()
	st, p := migratedTo(t, 3)
	if _, err := st.Pool.Exec(ctx, `
		INSERT INTO networks (name, cidr, gateway, vni, mtu, revision) VALUES ('blue', '10.10.0.0/24', '10.10.0.1', 7, 1400, 1);
		INSERT INTO policies (name, network_id, revision) SELECT 'old', id, 1 FROM networks;`); err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	old, err := st.GetPolicy(ctx, "old", "")
	if err != nil {
		t.Fatal(err)
	}
	if old.Ingress == nil || len(old.Ingress) != 0 || old.Egress == nil || len(old.Egress) != 0 {
		t.Fatalf("a policy from before the migration: ingress %#v egress %#v, want [] and []", old.Ingress, old.Egress)
	}
	created, err := st.CreatePolicy(ctx, "test", openapi.Policy{Name: "new", Network: "blue", Egress: []openapi.PolicyRule{}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.GetPolicy(ctx, created.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Ingress != nil || got.Egress == nil || len(got.Egress) != 0 {
		t.Fatalf("stored ingress %#v egress %#v, want nil and []", got.Ingress, got.Egress)
	}
	var nulls int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM policies WHERE ingress IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("rows with SQL NULL ingress: %d (%v), want 1", nulls, err)
	}
	// Down and up again: absent becomes [] going down (the old schema has
	// no absent), the rest is kept.
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
}
