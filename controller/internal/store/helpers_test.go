package store

import (
	"context"
	"testing"

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
