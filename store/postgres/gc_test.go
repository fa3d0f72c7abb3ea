package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestOneCollectorAtATime: while another replica holds the collector's
// lock, a pass collects nothing and returns at once; once it is released,
// the next pass collects.
func TestOneCollectorAtATime(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Need(t).NewDatabase(t)
	db, err := Open(ctx, dsn, Options{Replica: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if err := db.PutToken(ctx, &store.TokenRecord{JTI: "old", Holder: "h", ExpiresAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1)`, collectorLock); err != nil {
		t.Fatal(err)
	}
	if res, err := db.GC(t0.Add(time.Hour)); err != nil || res != (store.GCResult{}) {
		t.Fatalf("GC while another replica collects = %+v, %v", res, err)
	}
	if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1)`, collectorLock); err != nil {
		t.Fatal(err)
	}
	if res, err := db.GC(t0.Add(time.Hour)); err != nil || res != (store.GCResult{Tokens: 1}) {
		t.Fatalf("GC after = %+v, %v", res, err)
	}
	// The pass released its lock: another session takes it at once.
	var got bool
	if err := other.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, collectorLock).Scan(&got); err != nil || !got {
		t.Errorf("the collector's lock was kept: %v %v", got, err)
	}
}
