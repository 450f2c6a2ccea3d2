package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
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

// EnsureBootstrapToken creates the bootstrap admin token from secret (the
// controller's SWITCHYARD_ADMIN_TOKEN); it never brings a token back:
//
//   - A secret that is stored already, live or revoked, changes nothing: a
//     revoked bootstrap token stays revoked on every restart and every new
//     replica (a warning is logged).
//   - A new secret becomes the bootstrap token; the previous one, if any, is
//     revoked and kept as bootstrap-admin-retired-<id prefix>, so a replica
//     still configured with it cannot bring it back either. This is how the
//     bootstrap token is rotated.
//   - An empty secret generates one only when there never was a bootstrap
//     token, and returns it (to be printed once); otherwise it returns "".
func (s *Store) EnsureBootstrapToken(ctx context.Context, secret string) (string, error) {
	generated := ""
	_, err := s.Write(ctx, "system", func(tx *Tx) error {
		ctx := tx.ctx // the group's context, not the caller's
		generated = ""
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('switchyard.bootstrap'))`); err != nil {
			return err
		}
		var curID string
		err := tx.QueryRow(ctx, `SELECT id::text FROM tokens WHERE name = $1`, BootstrapTokenName).Scan(&curID)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		exists := err == nil
		newSecret := secret
		if newSecret == "" {
			if exists {
				return nil
			}
			newSecret = NewSecret()
			generated = newSecret
		} else {
			var name string
			var revoked bool
			err := tx.QueryRow(ctx, `SELECT name, revoked_at IS NOT NULL FROM tokens WHERE hash = $1`, HashSecret(newSecret)).Scan(&name, &revoked)
			if err == nil {
				if revoked {
					slog.Warn("SWITCHYARD_ADMIN_TOKEN is a revoked token and stays revoked; set a new secret to create a new bootstrap token",
						"token", name)
				}
				return nil
			}
			if err != pgx.ErrNoRows {
				return err
			}
		}
		if exists {
			retired := BootstrapTokenName + "-retired-" + curID[:8]
			if _, err := tx.Exec(ctx, `UPDATE tokens SET name = $2, revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`,
				curID, retired); err != nil {
				return err
			}
			tx.Queue(`SELECT pg_notify($1, $2)`, TokenChannel, curID)
			if err := tx.Record("token", "revoked", curID, retired, "", nil); err != nil {
				return err
			}
		}
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO tokens (name, role, hash) VALUES ($1, $2, $3) RETURNING id::text`,
			BootstrapTokenName, openapi.RoleAdmin, HashSecret(newSecret)).Scan(&id); err != nil {
			return err
		}
		return tx.Record("token", openapi.EventCreated, id, BootstrapTokenName, "", nil)
	})
	if err != nil {
		generated = ""
	}
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
