package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/storetest"
)

// TestConformance runs the conformance suite every store backend passes.
func TestConformance(t *testing.T) { storetest.Run(t, backend) }

// backend opens bbolt stores for the conformance suite.
var backend = storetest.Backend{
	Open: func(dir string, r store.Retention) (storetest.Store, error) {
		return asStore(bolt.Open(dir, bolt.Options{Retention: r.Tokens, RevocationGrace: r.Revocations, AuditRetention: r.Audit}))
	},
	OpenReadOnly: func(dir string) (storetest.Store, error) { return asStore(bolt.OpenReadOnly(dir)) },
	Tamper:       tamper,
}

// asStore keeps a failed open's nil *DB from becoming a non-nil Store.
func asStore(db *bolt.DB, err error) (storetest.Store, error) {
	if err != nil {
		return nil, err
	}
	return db, nil
}

// The conformance suite's clock and token record.
var t0, rec = storetest.T0, storetest.Rec

func open(t *testing.T, dir string, retention time.Duration) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(dir, bolt.Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestFilePermissions(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	db := open(t, dir, 0)
	db.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, bolt.FileName): 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	if err := os.Chmod(filepath.Join(dir, bolt.FileName), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(dir, bolt.Options{}); !errors.Is(err, bolt.ErrInsecurePermissions) {
		t.Errorf("world-readable file opened: %v", err)
	}
	_ = os.Chmod(filepath.Join(dir, bolt.FileName), 0o600)
	_ = os.Chmod(dir, 0o777)
	if _, err := bolt.Open(dir, bolt.Options{}); !errors.Is(err, bolt.ErrInsecurePermissions) {
		t.Errorf("world-writable directory used: %v", err)
	}
}

func TestSecondProcessIsLockedOut(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, 0)
	_, err := bolt.Open(dir, bolt.Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("second open of a locked file succeeded")
	}
}

func TestRunGCCollectsInTheBackground(t *testing.T) {
	db := open(t, t.TempDir(), 0)
	_ = db.PutToken(context.Background(), rec("old", nil, t0), nil)
	_, _, _ = db.Revoke(context.Background(), store.Revocation{JTI: "old", ExpiresAt: t0, RevokedAt: t0}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	passes := make(chan store.GCResult)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		db.RunGC(ctx, time.Millisecond, func() time.Time { return t0.Add(time.Hour) }, func(r store.GCResult, err error) {
			if err != nil {
				t.Error(err)
			}
			select {
			case passes <- r:
			case <-ctx.Done():
			}
		})
	}()
	defer func() { cancel(); <-stopped }()
	if got := <-passes; got != (store.GCResult{Tokens: 1, Revocations: 1}) {
		t.Fatalf("first pass = %+v", got)
	}
	if got := <-passes; got != (store.GCResult{}) {
		t.Fatalf("second pass = %+v", got)
	}
}

// TestHolderIndexIsBuiltForOlderStores: a store written before the holder
// index existed gets it at open, so deviation finds tokens issued before.
func TestHolderIndexIsBuiltForOlderStores(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, 0)
	r := rec("old", nil, t0.Add(time.Hour))
	if err := db.PutToken(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("holders")) }); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db = open(t, dir, 0)
	if held, _ := db.HeldBy(context.Background(), "h", t0); len(held) != 1 || held[0].JTI != "old" {
		t.Errorf("held after backfill = %v", held)
	}
}

// TestStats counts records as they are written, made redundant and collected.
func TestStats(t *testing.T) {
	db := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()
	_ = db.PutToken(ctx, rec("root", nil, t0.Add(10*time.Minute)), &store.AuditEvent{Time: t0, Type: store.AuditIssued})
	_ = db.PutToken(ctx, rec("child", []string{"root"}, t0.Add(5*time.Minute)), nil)
	_ = db.PutToken(ctx, rec("live", nil, t0.Add(3*time.Hour)), nil)
	_, _, _ = db.Revoke(ctx, store.Revocation{JTI: "root", ExpiresAt: t0.Add(10 * time.Minute), RevokedAt: t0}, nil)
	_, _, _ = db.Revoke(ctx, store.Revocation{JTI: "root", ExpiresAt: t0.Add(10 * time.Minute), RevokedAt: t0}, nil)
	_, _, _ = db.Revoke(ctx, store.Revocation{JTI: "live", ExpiresAt: t0.Add(3 * time.Hour), RevokedAt: t0}, nil)
	st, err := db.Stats(t0)
	if err != nil || st.Tokens != 3 || st.Unexpired != 3 || st.Revocations != 2 || st.AuditRecords != 1 || st.FileBytes == 0 || st.PageSize == 0 {
		t.Errorf("stats = %+v, %v", st, err)
	}
	if st, _ := db.Stats(t0.Add(5 * time.Minute)); st.Unexpired != 2 {
		t.Errorf("unexpired at the child's expiry = %d", st.Unexpired)
	}
	if _, err := db.GC(t0.Add(10*time.Minute + time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Stats(t0.Add(10*time.Minute + time.Hour)); st.Tokens != 1 || st.Revocations != 1 {
		t.Errorf("stats after GC = %+v", st)
	}
}

// TestStoreID: the id is 8 random bytes in hex, made once per file.
func TestStoreID(t *testing.T) {
	dir := t.TempDir()
	id := open(t, dir, 0).ID()
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("store id %q", id)
	}
}

// TestOpenReadOnly: a data file is found from its directory or its path, a
// file that is not Mandate's is refused, and so is a file a server holds.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, 0)
	id := db.ID()
	if _, err := bolt.OpenReadOnly(dir); err == nil || !strings.Contains(err.Error(), "running server") {
		t.Errorf("read-only open of a file in use: %v", err)
	}
	db.Close()
	for _, path := range []string{dir, filepath.Join(dir, bolt.FileName)} {
		ro, err := bolt.OpenReadOnly(path)
		if err != nil {
			t.Fatalf("OpenReadOnly(%s): %v", path, err)
		}
		if ro.ID() != id {
			t.Errorf("read-only id %q, want %q", ro.ID(), id)
		}
		if err := ro.Ping(); err != nil {
			t.Error(err)
		}
		ro.Close()
	}
	other := filepath.Join(t.TempDir(), "other.db")
	raw, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := bolt.OpenReadOnly(other); err == nil || !strings.Contains(err.Error(), "not a Mandate data file") {
		t.Errorf("foreign file opened: %v", err)
	}
	if _, err := bolt.OpenReadOnly(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestRecordOnceSurvivesARestart: a single-use value recorded once is
// refused by every later call, after a reopen too, until GC collects it
// once expired.
func TestRecordOnceSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, time.Hour)
	ctx := context.Background()
	exp := time.Unix(1795770000, 0)
	if first, err := db.RecordOnce(ctx, "id-jag", "k1", exp); err != nil || !first {
		t.Fatalf("first: %v %v", first, err)
	}
	if first, err := db.RecordOnce(ctx, "id-jag", "k1", exp); err != nil || first {
		t.Fatalf("again: %v %v", first, err)
	}
	if first, err := db.RecordOnce(ctx, "workload", "k1", exp); err != nil || !first {
		t.Fatalf("another kind is another namespace: %v %v", first, err)
	}
	if _, err := db.RecordOnce(ctx, "a\x00b", "k", exp); err == nil {
		t.Error("a kind with NUL was accepted")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir, time.Hour)
	if first, err := db.RecordOnce(ctx, "id-jag", "k1", exp); err != nil || first {
		t.Fatalf("after a reopen: %v %v", first, err)
	}
	if _, err := db.GC(exp.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if first, _ := db.RecordOnce(ctx, "id-jag", "k1", exp); first {
		t.Fatal("collected before it expired")
	}
	if _, err := db.GC(exp.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if first, err := db.RecordOnce(ctx, "id-jag", "k1", exp); err != nil || !first {
		t.Fatalf("after it expired and was collected: %v %v", first, err)
	}
}
