package store_test

import (
	"net/http"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/controller/internal/testenv"
)

// The whole path: a controller starts with SWITCHYARD_ADMIN_TOKEN, the
// bootstrap token is revoked through the API, and a controller started again
// with the same token refuses it.
func TestRevokedBootstrapTokenAfterRestart(t *testing.T) {
	db := testenv.DatabaseURL(t)
	call := func(method, url string) int {
		t.Helper()
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testenv.AdminToken)
		resp, err := testenv.Client(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	first := testenv.Start(t, db, nil)
	if code := call(http.MethodDelete, first.URL+"/api/v1/tokens/"+store.BootstrapTokenName); code/100 != 2 {
		t.Fatalf("revoke: status %d", code)
	}
	first.Close()
	restarted := testenv.Start(t, db, nil)
	if code := call(http.MethodGet, restarted.URL+"/api/v1/networks"); code != http.StatusUnauthorized {
		t.Fatalf("the revoked bootstrap token got status %d after a restart, want 401", code)
	}
}
