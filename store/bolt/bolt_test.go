package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string, retention time.Duration) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(dir, bolt.Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rec(jti string, lineage []string, exp time.Time) *store.TokenRecord {
	r := &store.TokenRecord{JTI: jti, Lineage: lineage, Subject: "o", Holder: "h", Scope: "s",
		Audience: []string{"a"}, IssuedAt: t0, ExpiresAt: exp, Act: &tokens.Actor{Subject: "h"}}
	if n := len(lineage); n > 0 {
		r.Parent = lineage[n-1]
	}
	return r
}

func TestTokensAreDurableAndIndexed(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, time.Hour)
	ctx := context.Background()
	root := rec("root", nil, t0.Add(time.Hour))
	for _, r := range []*store.TokenRecord{root, rec("c1", []string{"root"}, t0.Add(time.Minute)), rec("c2", []string{"root"}, t0.Add(time.Minute)), rec("g", []string{"root", "c1"}, t0.Add(time.Minute))} {
		if err := db.PutToken(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	db = open(t, dir, time.Hour)
	got, err := db.Token(ctx, "root")
	if err != nil || !reflect.DeepEqual(got.Act, root.Act) || got.ExpiresAt.Unix() != root.ExpiresAt.Unix() {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	kids, _ := db.Children(ctx, "root")
	if !reflect.DeepEqual(kids, []string{"c1", "c2"}) {
		t.Errorf("children = %v", kids)
	}
	if kids, _ := db.Children(ctx, "roo"); len(kids) != 0 {
		t.Errorf("prefix of a jti matched children: %v", kids)
	}
	if _, err := db.Token(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestRevocationIsOneIdempotentRecord(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, time.Hour)
	ctx := context.Background()
	first := store.Revocation{JTI: "root", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0, Reason: "task over", By: "ops"}
	if _, created, err := db.Revoke(ctx, first, nil); err != nil || !created {
		t.Fatalf("revoke: %v %v", created, err)
	}
	again := first
	again.Reason, again.RevokedAt = "other", t0.Add(time.Minute)
	got, created, err := db.Revoke(ctx, again, nil)
	if err != nil || created || got.Reason != "task over" {
		t.Fatalf("second revoke: %+v %v %v", got, created, err)
	}
	db.Close()
	db = open(t, dir, time.Hour)
	r, err := db.FirstRevoked(ctx, "other", "root", "x")
	if err != nil || r == nil || r.JTI != "root" || r.By != "ops" {
		t.Fatalf("FirstRevoked after reopen = %+v, %v", r, err)
	}
	if r, _ := db.FirstRevoked(ctx, "a", "b"); r != nil {
		t.Errorf("unrevoked reported revoked: %+v", r)
	}
	if st, _ := db.Stats(time.Now()); st.Revocations != 1 {
		t.Errorf("revocations = %d", st.Revocations)
	}
}

func TestConcurrentWritesAllLand(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, time.Hour)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.PutToken(context.Background(), rec(fmt.Sprintf("t%03d", i), []string{"root"}, t0.Add(time.Hour)), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	db.Close()
	db = open(t, dir, time.Hour)
	if kids, _ := db.Children(context.Background(), "root"); len(kids) != 200 {
		t.Errorf("%d of 200 acknowledged writes survived", len(kids))
	}
}

func TestGarbageCollection(t *testing.T) {
	db := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()
	_ = db.PutToken(ctx, rec("root", nil, t0.Add(10*time.Minute)), nil)
	_ = db.PutToken(ctx, rec("child", []string{"root"}, t0.Add(5*time.Minute)), nil)
	_ = db.PutToken(ctx, rec("live", nil, t0.Add(3*time.Hour)), nil)
	_, _, _ = db.Revoke(ctx, store.Revocation{JTI: "root", ExpiresAt: t0.Add(10 * time.Minute), RevokedAt: t0}, nil)
	_, _, _ = db.Revoke(ctx, store.Revocation{JTI: "live", ExpiresAt: t0.Add(3 * time.Hour), RevokedAt: t0}, nil)

	// Before expiry nothing goes.
	if res, err := db.GC(t0.Add(4 * time.Minute)); err != nil || res != (bolt.GCResult{}) {
		t.Fatalf("early GC removed %+v, %v", res, err)
	}
	// At the root's expiry its revocation leaves; the records stay for retention.
	res, err := db.GC(t0.Add(10 * time.Minute))
	if err != nil || res.Revocations != 1 || res.Tokens != 0 {
		t.Fatalf("GC at expiry = %+v, %v", res, err)
	}
	if r, _ := db.FirstRevoked(ctx, "live"); r == nil {
		t.Error("a live token's revocation was collected")
	}
	if _, err := db.Token(ctx, "child"); err != nil {
		t.Error("record collected before retention passed")
	}
	// After retention the expired records and their child links go.
	res, err = db.GC(t0.Add(10*time.Minute + time.Hour))
	if err != nil || res.Tokens != 2 {
		t.Fatalf("GC after retention = %+v, %v", res, err)
	}
	if kids, _ := db.Children(ctx, "root"); len(kids) != 0 {
		t.Errorf("dangling child links: %v", kids)
	}
	if _, err := db.Token(ctx, "live"); err != nil {
		t.Error("live record collected")
	}
	st, _ := db.Stats(time.Now())
	if st.Tokens != 1 || st.Revocations != 1 {
		t.Errorf("stats after GC = %+v", st)
	}
}

func TestGarbageCollectionInBatches(t *testing.T) {
	db := open(t, t.TempDir(), 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 2500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = db.PutToken(ctx, rec(fmt.Sprintf("t%05d", i), nil, t0.Add(time.Minute)), nil)
		}()
	}
	wg.Wait()
	res, err := db.GC(t0.Add(time.Minute))
	if err != nil || res.Tokens != 2500 {
		t.Fatalf("GC = %+v, %v", res, err)
	}
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
	passes := make(chan bolt.GCResult)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		db.RunGC(ctx, time.Millisecond, func() time.Time { return t0.Add(time.Hour) }, func(r bolt.GCResult, err error) {
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
	if got := <-passes; got != (bolt.GCResult{Tokens: 1, Revocations: 1}) {
		t.Fatalf("first pass = %+v", got)
	}
	if got := <-passes; got != (bolt.GCResult{}) {
		t.Fatalf("second pass = %+v", got)
	}
}

func TestRevocationLog(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, 0)
	ctx := context.Background()
	id := db.ID()
	if other := open(t, t.TempDir(), 0); other.ID() == id || len(id) != 16 {
		t.Fatalf("store ids %q and %q", id, other.ID())
	}
	for i, jti := range []string{"a", "b", "c"} {
		r, created, err := db.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: t0.Add(time.Duration(i+1) * time.Minute), RevokedAt: t0}, nil)
		if err != nil || !created || r.Seq != uint64(i+1) {
			t.Fatalf("revoke %s: seq %d %v %v", jti, r.Seq, created, err)
		}
	}
	if r, created, _ := db.Revoke(ctx, store.Revocation{JTI: "b", ExpiresAt: t0}, nil); created || r.Seq != 2 {
		t.Errorf("re-revoking moved the entry: %+v", r)
	}
	jtis := func(rs []store.Revocation) (out []string) {
		for _, r := range rs {
			out = append(out, r.JTI)
		}
		return out
	}
	all, next, head, err := db.RevocationsAfter(ctx, 0, 0)
	if err != nil || head != 3 || next != 3 || !reflect.DeepEqual(jtis(all), []string{"a", "b", "c"}) {
		t.Fatalf("log = %v next %d head %d %v", jtis(all), next, head, err)
	}
	if page, next, _, _ := db.RevocationsAfter(ctx, 0, 2); !reflect.DeepEqual(jtis(page), []string{"a", "b"}) || next != 2 {
		t.Errorf("first page = %v next %d", jtis(page), next)
	}
	if later, next, _, _ := db.RevocationsAfter(ctx, 2, 2); !reflect.DeepEqual(jtis(later), []string{"c"}) || next != 3 {
		t.Errorf("after 2 = %v next %d", jtis(later), next)
	}
	if none, next, head, _ := db.RevocationsAfter(ctx, 3, 0); len(none) != 0 || head != 3 || next != 3 {
		t.Errorf("after head = %v, %d %d", none, next, head)
	}
	if jti, ok, _ := db.RevocationAt(ctx, 2); !ok || jti != "b" {
		t.Errorf("RevocationAt(2) = %q %v", jti, ok)
	}
	// Expired entries leave the log; the head never goes back.
	if _, err := db.GC(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open(t, dir, 0)
	all, _, head, _ = db.RevocationsAfter(ctx, 0, 0)
	if _, ok, _ := db.RevocationAt(ctx, 1); ok {
		t.Error("collected entry still in the log")
	}
	if head != 3 || !reflect.DeepEqual(jtis(all), []string{"c"}) || db.ID() != id {
		t.Errorf("after GC and reopen: %v head %d id %s", jtis(all), head, db.ID())
	}
}

func TestRevocationGraceDelaysCollection(t *testing.T) {
	db, err := bolt.Open(t.TempDir(), bolt.Options{RevocationGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	_, _, _ = db.Revoke(ctx, store.Revocation{JTI: "r", ExpiresAt: t0, RevokedAt: t0}, nil)
	if res, _ := db.GC(t0.Add(59 * time.Second)); res.Revocations != 0 {
		t.Fatal("collected within the grace")
	}
	if res, _ := db.GC(t0.Add(time.Minute)); res.Revocations != 1 {
		t.Fatal("not collected after the grace")
	}
	if revs, _, _, _ := db.RevocationsAfter(ctx, 0, 0); len(revs) != 0 {
		t.Errorf("log entry left behind: %v", revs)
	}
}

func TestHeldBy(t *testing.T) {
	db := open(t, t.TempDir(), 0)
	ctx := context.Background()
	mk := func(jti, holder string, exp time.Time) {
		r := rec(jti, nil, exp)
		r.Holder = holder
		if err := db.PutToken(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	mk("a1", "agent", t0.Add(time.Minute))
	mk("a2", "agent", t0.Add(time.Hour))
	mk("gone", "agent", t0)
	mk("b1", "agent-b", t0.Add(time.Hour)) // a holder whose id extends another's
	held, err := db.HeldBy(ctx, "agent", t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range held {
		got = append(got, r.JTI)
	}
	if !reflect.DeepEqual(got, []string{"a1", "a2"}) {
		t.Errorf("held by agent = %v", got)
	}
	if _, err := db.GC(t0.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if held, _ := db.HeldBy(ctx, "agent", t0); len(held) != 0 {
		t.Errorf("index survived GC: %d", len(held))
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

// TestListingWhileWritingDoesNotDeadlock: reading the store batch by batch,
// with other reads between batches, while writers grow the file (a nested
// read inside a scan once stalled every write).
func TestListingWhileWritingDoesNotDeadlock(t *testing.T) {
	db := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()
	for i := range 600 {
		_ = db.PutToken(ctx, rec(fmt.Sprintf("seed%04d", i), nil, t0.Add(time.Hour)), nil)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 500 {
			if err := db.PutToken(ctx, rec(fmt.Sprintf("w%05d-%s", i, strings.Repeat("x", 2000)), nil, t0.Add(time.Hour)), nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		after := ""
		for {
			batch, err := db.ScanTokens(ctx, after, 64)
			if err != nil || len(batch) == 0 {
				break
			}
			for _, r := range batch[:1] {
				_, _ = db.FirstRevoked(ctx, r.JTI)
			}
			after = batch[len(batch)-1].JTI
		}
	}
}
