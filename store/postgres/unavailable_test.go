package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestUnavailableWhileTheDatabaseIsDown: with the server stopped, every
// read and write fails with an error matching store.ErrUnavailable (so the
// server answers 503, not 500), nothing is acknowledged, and the same store
// works again once the server is back, without being reopened. A statement
// the server refuses is not "unavailable".
func TestUnavailableWhileTheDatabaseIsDown(t *testing.T) {
	c := pgtest.Own(t)
	db := open(t, c.NewDatabase(t), "a", postgres.Options{WriteTimeout: 5 * time.Second})
	exp := time.Now().Add(time.Hour)
	if err := db.PutToken(ctx, rec("before", nil, exp), nil); err != nil {
		t.Fatal(err)
	}

	c.Stop()
	calls := map[string]func() error{
		"PutToken": func() error {
			return db.PutToken(ctx, rec("during", nil, exp), &store.AuditEvent{Type: store.AuditIssued})
		},
		"Revoke": func() error {
			_, _, err := db.Revoke(ctx, store.Revocation{JTI: "before", ExpiresAt: exp}, nil)
			return err
		},
		"Append":       func() error { return db.Append(ctx, store.AuditEvent{Type: store.AuditRefused}) },
		"Token":        func() error { _, err := db.Token(ctx, "before"); return err },
		"FirstRevoked": func() error { _, err := db.FirstRevoked(ctx, "before"); return err },
		"RevocationsAfter": func() error {
			_, _, _, err := db.RevocationsAfter(ctx, 0, 10)
			return err
		},
		"Suspended": func() error { _, err := db.Suspended(ctx, time.Now()); return err },
		"Ping":      db.Ping,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while the database is down: %v (want store.ErrUnavailable)", name, err)
		}
	}

	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Resume(rctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.Ping() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the store did not come back 10 s after the database did")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Errorf("%s after the database came back: %v", name, err)
		}
	}
	if _, err := db.Token(ctx, "before"); err != nil {
		t.Errorf("a token acknowledged before: %v", err)
	}
	// A statement the server refuses is an error, not unavailability.
	if err := db.Suspend(ctx, "far", time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("a refused write: %v", err)
	}
}
