// Package pgtest gives tests a fresh PostgreSQL database of their own on the
// server named by SWITCHYARD_TEST_DATABASE_URL, dropped when the test ends.
// Tests only: it must never be imported by a binary.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding a PostgreSQL URL whose server the tests
// may create databases on (make test sets it).
const EnvURL = "SWITCHYARD_TEST_DATABASE_URL"

// DatabaseURL creates a fresh database and returns its URL. Without
// SWITCHYARD_TEST_DATABASE_URL the test is skipped, except in CI (CI set),
// where that is a failure.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with make test", EnvURL)
		}
		t.Skipf("%s is not set: run the tests with make test", EnvURL)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "sytest_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvURL, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}
