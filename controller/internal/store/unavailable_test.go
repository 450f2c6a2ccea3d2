package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// Every way the database says it cannot serve now is a 503; a client's
// mistake or a bug is not.
func TestUnavailable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	for name, c := range map[string]struct {
		err    error
		detail string // a part of the detail; "" for not a 503
	}{
		"refused":          {&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, "cannot be reached"},
		"reset":            {fmt.Errorf("read: %w", syscall.ECONNRESET), "cannot be reached"},
		"eof":              {fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), "cannot be reached"},
		"deadline":         {fmt.Errorf("acquire: %w", context.DeadlineExceeded), "cannot be reached"},
		"closed conn":      {errors.New("conn closed"), "cannot be reached"},
		"store closed":     {errClosed, "cannot be reached"},
		"admin shutdown":   {pg("57P01"), "cannot be reached"},
		"starting up":      {pg("57P03"), "cannot be reached"},
		"connection class": {pg("08006"), "cannot be reached"},
		"too many conns":   {pg("53300"), "cannot be reached"},
		"io error":         {pg("58030"), "cannot be reached"},
		"read-only":        {pg("25006"), "read-only"},
		"disk full":        {pg("53100"), "out of disk space"},
		"a 503 problem":    {problem.Unavailable("busy"), "busy"},
		"a 409 problem":    {problem.Conflict("name", "exists"), ""},
		"unique violation": {pg("23505"), ""},
		"syntax error":     {pg("42601"), ""},
		"a bug":            {errors.New("nil map"), ""},
		"nil":              {nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			pe := Unavailable(c.err)
			switch {
			case c.detail == "" && pe != nil:
				t.Fatalf("%v: %v", c.err, pe)
			case c.detail != "" && (pe == nil || pe.Status != 503 || !strings.Contains(pe.Detail, c.detail)):
				t.Fatalf("%v: %+v", c.err, pe)
			}
			if c.detail != "" {
				if m, ok := problem.As(mapError(c.err)); !ok || m.Status != 503 {
					t.Fatalf("mapError(%v) = %v", c.err, mapError(c.err))
				}
			}
		})
	}
}

// A COMMIT that got no answer from the server may have landed; one the
// server refused did not.
func TestCommitInDoubt(t *testing.T) {
	if !inDoubt(io.ErrUnexpectedEOF) || inDoubt(&pgconn.PgError{Code: "40001"}) || inDoubt(nil) {
		t.Fatal("inDoubt")
	}
	pe, ok := problem.As(errCommitInDoubt(io.ErrUnexpectedEOF))
	if !ok || pe.Status != 503 || !strings.Contains(pe.Detail, "may or may not have landed") || !errors.Is(pe, io.ErrUnexpectedEOF) {
		t.Fatalf("%+v", pe)
	}
}

// Only a write group's statements get a client-side deadline, a second
// past the server's statement timeout, released when they end.
func TestStatementGuard(t *testing.T) {
	var g statementGuard
	plain := context.Background()
	if ctx := g.TraceQueryStart(plain, nil, pgx.TraceQueryStartData{}); ctx != plain {
		t.Fatal("a statement outside a write group got a deadline")
	}
	ctx := g.TraceBatchStart(guardStatements(plain), nil, pgx.TraceBatchStartData{})
	dl, ok := ctx.Deadline()
	if left := time.Until(dl); !ok || left > statementTimeout+time.Second || left < statementTimeout {
		t.Fatalf("deadline in %s", left)
	}
	g.TraceBatchEnd(ctx, nil, pgx.TraceBatchEndData{})
	if ctx.Err() == nil {
		t.Fatal("the deadline was not released")
	}
}
