package api_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/api"
	"github.com/switchyard/switchyard/controller/internal/testenv"
)

// Past api.DefaultAuthFailures unknown tokens from one address within a
// minute, that address gets 429 problem+json with Retry-After for any
// token it had not authenticated with, even a valid one, without the
// token being looked up; tokens that authenticated from it before are
// served as usual. Successes never count.
func TestFailedAuthenticationsLimited(t *testing.T) {
	e := newEnv(t, nil)
	viewer := e.newToken("viewer1", "viewer", "")
	late := e.newToken("late", "viewer", "") // never used before the block
	for i := 0; i < 3*api.DefaultAuthFailures; i++ {
		e.must(200, "GET", "/api/v1/revision", nil, withToken(viewer)) // successes never count
	}
	for i := 0; i < api.DefaultAuthFailures; i++ {
		e.wantProblem(e.do("GET", "/api/v1/revision", nil, withToken("sy_guess_"+strconv.Itoa(i))), 401, "")
	}
	for _, tok := range []string{"sy_guess_more", late, testenv.AdminToken + "x"} {
		r := e.do("GET", "/api/v1/revision", nil, withToken(tok))
		p := e.wantProblem(r, 429, "")
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 60 {
			t.Errorf("Retry-After %q, want 1..60 seconds", r.Header.Get("Retry-After"))
		}
		if !strings.Contains(p["detail"].(string), "retry in") {
			t.Errorf("detail %q", p["detail"])
		}
	}
	// Known good from this address: served. (The test's client is the
	// admin, which authenticated before the guesses.)
	e.must(200, "GET", "/api/v1/revision", nil, withToken(viewer))
	e.must(200, "GET", "/api/v1/revision", nil)
}

// Token secrets are stored as their SHA-256, never in clear: not in the
// tokens table, the audit log or the event log; listing tokens shows no
// secret.
func TestTokenSecretsStoredHashed(t *testing.T) {
	e := newEnv(t, nil)
	secret := e.newToken("hashed", "operator", "")
	conn, err := pgx.Connect(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var hash []byte
	if err := conn.QueryRow(context.Background(), `SELECT hash FROM tokens WHERE name = 'hashed'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte(secret)); string(hash) != string(sum[:]) {
		t.Errorf("stored hash %x, want SHA-256 of the secret %x", hash, sum)
	}
	for _, table := range []string{"tokens", "audit", "events"} {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` t WHERE row_to_json(t)::text LIKE '%' || $1 || '%'`,
			secret).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("the secret is in clear in %d rows of %s", n, table)
		}
	}
	if r := e.must(200, "GET", "/api/v1/tokens", nil); strings.Contains(string(r.Body), secret) {
		t.Error("the token list shows the secret")
	}
}
