package store

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

func wantAuth(t *testing.T, st *Store, secret string, ok bool) {
	t.Helper()
	_, err := st.Authenticate(context.Background(), secret)
	if ok && err != nil {
		t.Fatalf("the token does not authenticate: %v", err)
	}
	if !ok {
		wantStatus(t, err, 401)
	}
}

func ensureBootstrap(t *testing.T, st *Store, secret string) string {
	t.Helper()
	g, err := st.EnsureBootstrapToken(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func tokenStates(t *testing.T, st *Store) map[string]bool {
	t.Helper()
	ts, err := st.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, tk := range ts {
		live[tk.Name] = tk.RevokedAt == nil
	}
	return live
}

// A revoked bootstrap token stays revoked when a replica restarts, or a new
// one starts, with the same SWITCHYARD_ADMIN_TOKEN (it used to be deleted
// and created again, alive).
func TestBootstrapRevocationHoldsAcrossRestarts(t *testing.T) {
	const secret = "sy_bootstrap_secret"
	first, url := newStore(t, Options{})
	ensureBootstrap(t, first, secret)
	wantAuth(t, first, secret, true)
	if err := first.RevokeToken(context.Background(), "test", BootstrapTokenName); err != nil {
		t.Fatal(err)
	}
	first.Close()
	for _, name := range []string{"restarted", "new replica"} {
		st := openStore(t, url, Options{})
		ensureBootstrap(t, st, secret)
		wantAuth(t, st, secret, false)
		if live := tokenStates(t, st); len(live) != 1 || live[BootstrapTokenName] {
			t.Fatalf("%s: tokens %v, want only a revoked %s", name, live, BootstrapTokenName)
		}
	}
}

// Rotation: a new secret replaces the bootstrap token, and a replica still
// configured with the old secret cannot bring the old one back.
func TestBootstrapRotation(t *testing.T) {
	st, url := newStore(t, Options{})
	ensureBootstrap(t, st, "sy_old")
	other := openStore(t, url, Options{})
	ensureBootstrap(t, other, "sy_new")
	ensureBootstrap(t, st, "sy_old") // the replica not yet reconfigured restarts
	wantAuth(t, st, "sy_old", false)
	wantAuth(t, st, "sy_new", true)
	live := tokenStates(t, st)
	if len(live) != 2 || !live[BootstrapTokenName] {
		t.Fatalf("tokens %v: want a live %s and the retired one, revoked", live, BootstrapTokenName)
	}
	if tk, err := st.GetToken(context.Background(), BootstrapTokenName); err != nil || tk.Role != openapi.RoleAdmin {
		t.Fatalf("got %+v, %v", tk, err)
	}
}

// Without a configured secret, one is generated only when there never was a
// bootstrap token: not again after it was revoked.
func TestBootstrapGeneratedOnce(t *testing.T) {
	st, _ := newStore(t, Options{})
	g := ensureBootstrap(t, st, "")
	if g == "" {
		t.Fatal("no token generated on the first start")
	}
	wantAuth(t, st, g, true)
	if again := ensureBootstrap(t, st, ""); again != "" {
		t.Fatal("a second token was generated")
	}
	if err := st.RevokeToken(context.Background(), "test", BootstrapTokenName); err != nil {
		t.Fatal(err)
	}
	if again := ensureBootstrap(t, st, ""); again != "" {
		t.Fatal("a new token was generated after the bootstrap token was revoked")
	}
	wantAuth(t, st, g, false)
}
