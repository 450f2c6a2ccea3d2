package store

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/pgtest"
)

// openStore opens a migrated store on url, closed when the test ends.
func openStore(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// newStore opens a migrated store on a fresh database.
func newStore(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	url := pgtest.DatabaseURL(t)
	return openStore(t, url, opts), url
}

func mkHost(t testing.TB, st *Store, name, addr string) {
	t.Helper()
	if _, err := st.CreateHost(context.Background(), "test", openapi.Host{Name: name, Address: addr}); err != nil {
		t.Fatal(err)
	}
}

func mkNetwork(t testing.TB, st *Store, name, cidr string, vni int64) openapi.Network {
	t.Helper()
	n, err := st.CreateNetwork(context.Background(), "test", openapi.Network{Name: name, CIDR: cidr, VNI: vni})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fill inserts containers straight into network (on host h1) at offsets
// to, to-step, ... down to from, except the gateway and skip: a quick way to
// a full or fragmented pool. The free lists follow through their triggers;
// from the top down, each takes the end of an interval, which one bulk
// transaction does in linear time (from the bottom up, the row versions it
// leaves behind would make it quadratic; one allocation per write does not).
func fill(t testing.TB, st *Store, network string, from, to, step int64, skip ...int64) {
	t.Helper()
	if skip == nil {
		skip = []int64{}
	}
	// Addresses and MACs as CreateContainer makes them (macFor).
	if _, err := st.Pool.Exec(context.Background(), `INSERT INTO containers (name, network_id, host_id, ip, ip_offset, mac, revision)
		SELECT 'fill-' || g, n.id, h.id, host(n.cidr::inet + g)::inet, g,
		       lpad(to_hex(x'0a5800000000'::bigint + ((n.cidr::inet + g) - '0.0.0.0'::inet)), 12, '0')::macaddr, 1
		FROM networks n, hosts h, generate_series($3::bigint, $2::bigint, -$4::bigint) g
		WHERE n.name = $1 AND h.name = 'h1' AND g <> (n.gateway - n.cidr::inet) AND g <> ALL($5::bigint[])`,
		network, from, to, step, skip); err != nil {
		t.Fatal(err)
	}
}

// fillServices inserts services straight into the service range at
// addresses first+from..first+to, except skip, with the next group ids.
func fillServices(t testing.TB, st *Store, network string, from, to int64, skip ...int64) {
	t.Helper()
	if skip == nil {
		skip = []int64{}
	}
	if _, err := st.Pool.Exec(context.Background(), `INSERT INTO services (name, network_id, vip, ports, revision, group_id)
		SELECT 'fill-' || g, n.id, $2::inet + g, '[{"port":80,"protocol":"TCP"}]', 1,
		       (SELECT coalesce(max(group_id), 0) FROM services) + row_number() OVER ()
		FROM networks n, generate_series($4::bigint, $3::bigint, -1) g WHERE n.name = $1 AND g <> ALL($5::bigint[])`,
		network, st.opts.ServiceCIDR.Addr().String(), from, to, skip); err != nil {
		t.Fatal(err)
	}
}

func createContainer(t testing.TB, st *Store, network, name string) (openapi.Container, error) {
	t.Helper()
	return st.CreateContainer(context.Background(), "test", openapi.Container{Name: name, Network: network, Host: "h1"})
}

var exhausted = problem.Exhausted("", "").Status

func wantStatus(t testing.TB, err error, status int) {
	t.Helper()
	pe, ok := problem.As(err)
	if !ok || pe.Status != status {
		t.Fatalf("got %v, want a %d problem", err, status)
	}
}

// vacuum removes the dead row versions and the empty pages a bulk fill
// leaves in the free lists (a running system writes them one allocation at
// a time, and autovacuum cleans up), and gathers the statistics autovacuum
// would, so what is measured next is the steady state, not the remains of
// one giant transaction.
func vacuum(t testing.TB, st *Store) {
	t.Helper()
	for _, sql := range []string{`VACUUM FULL ipam_free`, `ANALYZE`} {
		if _, err := st.Pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
}
