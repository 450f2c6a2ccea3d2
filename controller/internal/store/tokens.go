package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// TokenChannel is the PostgreSQL channel notified when a token is revoked or
// replaced, so every replica drops its cached authentications.
const TokenChannel = "switchyard_tokens"

// BootstrapTokenName names the admin token set by SWITCHYARD_ADMIN_TOKEN or
// generated at first start.
const BootstrapTokenName = "bootstrap-admin"

const tokenCols = `SELECT id::text, name, role, host, created_at, revoked_at FROM tokens`

func scanToken(r pgx.Row) (openapi.Token, error) {
	var t openapi.Token
	err := r.Scan(&t.ID, &t.Name, &t.Role, &t.Host, &t.CreatedAt, &t.RevokedAt)
	return t, err
}

// HashSecret is how token secrets are stored: SHA-256, never the secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewSecret returns a fresh random token secret.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "sy_" + base64.RawURLEncoding.EncodeToString(b)
}

// Authenticate returns the live token whose secret this is.
func (s *Store) Authenticate(ctx context.Context, secret string) (openapi.Token, error) {
	t, err := scanToken(s.Pool.QueryRow(ctx, tokenCols+` WHERE hash = $1 AND revoked_at IS NULL`, HashSecret(secret)))
	if err == pgx.ErrNoRows {
		return t, problem.Unauthorized("the token is unknown or revoked")
	}
	if err != nil {
		return t, unavailable(err)
	}
	return t, nil
}

// EnsureBootstrapToken makes secret the bootstrap admin token. With an empty
// secret, it generates one only when no bootstrap token exists yet and
// returns it (to be printed once); otherwise it returns "".
func (s *Store) EnsureBootstrapToken(ctx context.Context, secret string) (string, error) {
	generated := ""
	_, err := s.Write(ctx, "system", func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('switchyard.bootstrap'))`); err != nil {
			return err
		}
		var hash []byte
		err := tx.QueryRow(ctx, `SELECT hash FROM tokens WHERE name = $1 AND revoked_at IS NULL`, BootstrapTokenName).Scan(&hash)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		found := err == nil
		if secret == "" {
			if found {
				return nil
			}
			secret = NewSecret()
			generated = secret
		} else if found && string(hash) == string(HashSecret(secret)) {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE name = $1`, BootstrapTokenName); err != nil {
			return err
		}
		tx.Queue(`SELECT pg_notify($1, 'bootstrap')`, TokenChannel)
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO tokens (name, role, hash) VALUES ($1, $2, $3) RETURNING id::text`,
			BootstrapTokenName, openapi.RoleAdmin, HashSecret(secret)).Scan(&id); err != nil {
			return err
		}
		return tx.Record("token", openapi.EventCreated, id, BootstrapTokenName, "", nil)
	})
	return generated, err
}

// CreateToken stores a new token and returns it with its secret, which is
// never shown again.
func (s *Store) CreateToken(ctx context.Context, actor string, t openapi.Token) (openapi.Token, error) {
	if err := checkName("name", t.Name); err != nil {
		return t, err
	}
	switch t.Role {
	case openapi.RoleAdmin, openapi.RoleOperator, openapi.RoleViewer:
		if t.Host != "" {
			return t, problem.Invalid("host", "only node tokens are scoped to a host")
		}
	case openapi.RoleNode:
		if err := checkName("host", t.Host); err != nil {
			return t, problem.Invalid("host", "a node token needs the name of its host")
		}
	case "":
		return t, problem.Invalid("role", "role is required: admin, operator, viewer or node")
	default:
		return t, problem.Invalid("role", "unknown role %q: use admin, operator, viewer or node", t.Role)
	}
	secret := NewSecret()
	var out openapi.Token
	_, err := s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		var err error
		out, err = scanToken(tx.QueryRow(ctx, `INSERT INTO tokens (name, role, host, hash) VALUES ($1, $2, $3, $4)
			RETURNING id::text, name, role, host, created_at, revoked_at`, t.Name, t.Role, t.Host, HashSecret(secret)))
		if err != nil {
			return err
		}
		return tx.Record("token", openapi.EventCreated, out.ID, out.Name, "", nil)
	})
	out.Secret = secret
	return out, err
}

// ListTokens returns every token, newest last, without secrets.
func (s *Store) ListTokens(ctx context.Context) ([]openapi.Token, error) {
	rows, err := s.Pool.Query(ctx, tokenCols+` ORDER BY created_at, name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (openapi.Token, error) { return scanToken(r) })
}

// GetToken resolves a token by name or id.
func (s *Store) GetToken(ctx context.Context, ref string) (openapi.Token, error) {
	cond := ` WHERE name = $1`
	if isUUID(ref) {
		cond = ` WHERE id = $1::uuid`
	}
	t, err := scanToken(s.Pool.QueryRow(ctx, tokenCols+cond, ref))
	if err == pgx.ErrNoRows {
		return t, problem.NotFound("token %q not found", ref)
	}
	return t, err
}

// RevokeToken revokes a token: it stops working at once, on every replica.
func (s *Store) RevokeToken(ctx context.Context, actor, ref string) error {
	t, err := s.GetToken(ctx, ref)
	if err != nil {
		return err
	}
	_, err = s.Write(ctx, actor, func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		if _, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, t.ID, time.Now()); err != nil {
			return err
		}
		tx.Queue(`SELECT pg_notify($1, $2)`, TokenChannel, t.ID)
		return tx.Record("token", "revoked", t.ID, t.Name, "", nil)
	})
	return err
}
