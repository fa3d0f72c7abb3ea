package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-auth/mandate/store"
)

// Errors that mean the database could not be reached, or went away, match
// store.ErrUnavailable, so the server answers 503 with Retry-After rather
// than an internal error or, worse, a guess; a statement the server refused
// does not. The pool reconnects by itself once the database answers again.

// unavailableError is an error of a store that could not reach its
// database: it matches both its cause and store.ErrUnavailable.
type unavailableError struct{ error }

func (e *unavailableError) Unwrap() []error { return []error{e.error, store.ErrUnavailable} }

// errorf is fmt.Errorf, marking the result unavailable (store.ErrUnavailable)
// when an error among args says the database could not be reached.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	for _, a := range args {
		if e, ok := a.(error); ok && unavailable(e) {
			return &unavailableError{err}
		}
	}
	return err
}

// unavailable reports whether err says the database could not be reached,
// or the connection broke, or the server is going away or is not the
// primary (after a failover): as opposed to a statement it refused.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err != nil
	}
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up: nobody waits for the answer
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || // connection exception
			strings.HasPrefix(c, "53") || // insufficient resources: too many connections, disk full
			strings.HasPrefix(c, "57P") || // shutting down, crashed, cannot connect now
			c == "25006" || // read-only transaction: a standby, after a failover
			c == "57014" // canceled: statement_timeout (the database did not answer in time)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, ErrClosed) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool")
}
