package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/controller/internal/problem"
)

// When PostgreSQL stops, fails over, turns read-only or runs out of disk,
// every request that needs it must answer a clear 503 quickly, never a 500
// and never hang (docs/failure-matrix-pg.md):
//   - a write group waits at most AcquireTimeout for a connection (and a
//     new connection at most ConnectTimeout per host of the URL), then
//     answers 503, so a write that queued behind a group that waited waits
//     at most twice that; the group's statements are bounded by
//     statementTimeout; reads are bounded by the API's request deadline;
//   - Unavailable classifies the database's refusals (connection lost or
//     refused, shutting down, read-only, disk full, too many connections)
//     as 503 problems, for writes (mapError) and reads (the API's fail);
//   - a write whose COMMIT was sent and whose answer was lost says so: it
//     may have landed (errCommitInDoubt), and a retry must check first.
// The pool reconnects by itself when the database is back; nothing needs a
// restart.

// Defaults of the pool's bounds (Options.AcquireTimeout, ConnectTimeout).
const (
	DefaultAcquireTimeout = time.Second
	DefaultConnectTimeout = 2 * time.Second
)

// RetryAfter is the Retry-After, in seconds, of the 503s Unavailable makes.
const RetryAfter = 1

// SQLSTATE codes the database answers when it cannot serve a write now.
const (
	codeReadOnly = "25006" // read_only_sql_transaction: a standby, or default_transaction_read_only
	codeDiskFull = "53100"
)

// Unavailable returns the 503 problem err is when it says the database
// cannot serve now (unreachable, shutting down, read-only, out of disk or
// connections, a bounded wait that ran out), or nil. The cause goes to the
// log, never to the client.
func Unavailable(err error) *problem.Error {
	if err == nil {
		return nil
	}
	if pe, ok := problem.As(err); ok {
		if pe.Status == 503 {
			return pe
		}
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeReadOnly:
			return problem.Unavailable("the database is read-only (a standby, or writes switched off); nothing was written, retry later").WithCause(err)
		case pgErr.Code == codeDiskFull:
			return problem.Unavailable("the database is out of disk space; nothing was written, retry later").WithCause(err)
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),                                 // insufficient resources
			strings.HasPrefix(pgErr.Code, "58"),                                 // system error (I/O)
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutting down, starting up
			return unavailable(err)
		}
		return nil
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, errClosed), isClosedConn(err):
		return unavailable(err)
	}
	return nil
}

// isClosedConn reports pgx's error for a connection it already knows is
// closed (it has no exported sentinel).
func isClosedConn(err error) bool {
	return strings.HasSuffix(err.Error(), "conn closed")
}

// errCommitInDoubt is a write group whose COMMIT was sent but whose answer
// never came: the connection broke, so the writes may or may not have
// landed.
func errCommitInDoubt(err error) error {
	return problem.Unavailable("the database connection broke while committing: the write may or may not have landed; read it back (or retry with If-Match / a unique name) before writing again").WithCause(err)
}

// inDoubt reports a COMMIT failure that does not say the transaction was
// rolled back: anything but an answer of the server.
func inDoubt(err error) bool {
	var pgErr *pgconn.PgError
	return err != nil && !errors.As(err, &pgErr)
}

// A write group's statements run on the group's context (30 s), and
// PostgreSQL ends each after statementTimeout on its own. A server that
// stopped answering (hung, or its host gone without a TCP reset) ends
// nothing, so the statements of a write group also get a deadline of
// their own on the client side, a second past the server's: it fires only
// when the server did not answer in time, and the group fails (503) instead
// of holding every write behind it for the group's whole timeout.
// statementGuard (the pool's tracer) applies it to the statements whose
// context carries guardKey.

type guardKey struct{}

// guardStatements marks ctx: each statement run on it gets its own deadline.
func guardStatements(ctx context.Context) context.Context {
	return context.WithValue(ctx, guardKey{}, true)
}

type cancelKey struct{}

type statementGuard struct{}

func (statementGuard) start(ctx context.Context) context.Context {
	if ctx.Value(guardKey{}) == nil {
		return ctx
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout+time.Second)
	return context.WithValue(ctx, cancelKey{}, cancel)
}

func (statementGuard) end(ctx context.Context) {
	if cancel, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

func (g statementGuard) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return g.start(ctx)
}

func (g statementGuard) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	g.end(ctx)
}

func (g statementGuard) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return g.start(ctx)
}

func (statementGuard) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (g statementGuard) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	g.end(ctx)
}
