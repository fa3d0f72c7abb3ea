package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestAStuckStatementTimesOut: Mandate's sessions carry a statement_timeout
// (DefaultStatementTimeout unless the DSN sets one), so a write stuck
// behind a lock another session holds fails as unavailable — a 503 the
// client retries — instead of holding its request and connection for ever.
func TestAStuckStatementTimesOut(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	db := open(t, dsn, "a", postgres.Options{})
	for d, want := range map[string]string{dsn: postgres.DefaultStatementTimeout, dsn + " statement_timeout=5min": "5min"} {
		if p, err := postgres.SessionParams(d); err != nil || p["statement_timeout"] != want {
			t.Errorf("statement_timeout %q (%v), want %q", p["statement_timeout"], err, want)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := db.PutToken(ctx, rec("root", nil, t0.Add(time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	short := open(t, dsn+" statement_timeout=300", "b", postgres.Options{WriteTimeout: time.Minute})
	// Another session holds the revocation counter, which a token with
	// ancestors reads under FOR SHARE.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE mandate_revocation_head IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = short.PutToken(ctx, rec("child", []string{"root"}, t0.Add(time.Hour)), &store.AuditEvent{Time: t0, Type: store.AuditIssued, JTI: "child"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a write stuck behind a lock: %v, want unavailable", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("it took %s: the statement_timeout did not cut it", took)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := short.PutToken(ctx, rec("child", []string{"root"}, t0.Add(time.Hour)), nil); err != nil {
		t.Errorf("the same write once the lock is gone: %v", err)
	}
}
