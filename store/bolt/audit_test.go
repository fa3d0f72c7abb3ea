package bolt_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
)

func auditTrail(t *testing.T, n int) (string, *bolt.DB) {
	t.Helper()
	dir := t.TempDir()
	db := open(t, dir, time.Hour)
	ctx := context.Background()
	for i := range n {
		ev := &store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), Type: store.AuditIssued, Client: "orchestrator", JTI: "t" + string(rune('a'+i)), Reason: "ok"}
		if i%2 == 0 {
			if err := db.PutToken(ctx, rec(ev.JTI, nil, t0.Add(time.Hour)), ev); err != nil {
				t.Fatal(err)
			}
		} else if err := db.Append(ctx, *ev); err != nil {
			t.Fatal(err)
		}
	}
	return dir, db
}

// tamper edits the raw bbolt file of a closed store.
func tamper(t *testing.T, dir string, edit func(b *bbolt.Bucket, meta *bbolt.Bucket)) {
	t.Helper()
	raw, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Update(func(tx *bbolt.Tx) error {
		edit(tx.Bucket([]byte("audit")), tx.Bucket([]byte("meta")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func seq(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func TestAuditChainVerifies(t *testing.T) {
	_, db := auditTrail(t, 6)
	rep, err := db.VerifyAudit(context.Background())
	if err != nil || !rep.OK || rep.Records != 6 || rep.First != 1 || rep.Last != 6 || len(rep.Head) != 64 {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	recs, _ := db.AuditAfter(context.Background(), 2, 2)
	if len(recs) != 2 || recs[0].Seq != 3 || recs[1].Prev != recs[0].Hash || recs[0].JTI != "tc" {
		t.Errorf("AuditAfter = %+v", recs)
	}
}

func TestAuditVerifyNamesTheTamperedRecord(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(b, meta *bbolt.Bucket)
		at    uint64
		words string
	}{
		{"an edited reason", func(b, _ *bbolt.Bucket) {
			v := b.Get(seq(3))
			_ = b.Put(seq(3), []byte(strings.Replace(string(v), `"reason":"ok"`, `"reason":"nothing to see"`, 1)))
		}, 3, "altered"},
		{"a removed record", func(b, _ *bbolt.Bucket) { _ = b.Delete(seq(4)) }, 5, "missing"},
		{"a re-hashed record", func(b, _ *bbolt.Bucket) {
			// Edit record 2 and fix its own hash: record 3 no longer links to it.
			v := strings.Replace(string(b.Get(seq(2))), `"client":"orchestrator"`, `"client":"mallory"`, 1)
			var r store.AuditRecord
			_ = jsonUnmarshal([]byte(v), &r)
			r.Hash = r.ComputeHash()
			_ = b.Put(seq(2), jsonMarshal(r))
		}, 3, "does not link to record 2: one of the two was rewritten"},
		{"a truncated tail", func(b, _ *bbolt.Bucket) { _ = b.Delete(seq(6)) }, 5, "removed from the end"},
		{"garbage", func(b, _ *bbolt.Bucket) { _ = b.Put(seq(2), []byte("{")) }, 2, "not a valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, db := auditTrail(t, 6)
			db.Close()
			tamper(t, dir, tt.edit)
			db = open(t, dir, time.Hour)
			rep, err := db.VerifyAudit(context.Background())
			if err != nil || rep.OK || rep.BrokenAt != tt.at || !strings.Contains(rep.Problem, tt.words) {
				t.Fatalf("report = %+v, %v; want broken at %d mentioning %q", rep, err, tt.at, tt.words)
			}
		})
	}
}

func TestAuditCollectionKeepsTheChainVerifiable(t *testing.T) {
	dir, db := auditTrail(t, 6) // records at t0 .. t0+5m
	db.Close()
	db, err := bolt.Open(dir, bolt.Options{Retention: time.Hour, AuditRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.GC(t0.Add(time.Hour + 2*time.Minute + time.Second))
	if err != nil || res.Audit != 3 {
		t.Fatalf("GC = %+v, %v", res, err)
	}
	rep, _ := db.VerifyAudit(context.Background())
	if !rep.OK || rep.First != 4 || rep.Records != 4 {
		t.Fatalf("after collection (3 kept + the collection record): %+v", rep)
	}
	recs, _ := db.AuditTail(context.Background(), 1)
	if recs[0].Type != store.AuditCollected || recs[0].Base != 3 {
		t.Errorf("collection record = %+v", recs[0])
	}
}

// TestDeletingTheStartIsDetected: removing the oldest records and moving the
// base by hand (as collection would) is caught, since no collection record
// vouches for the new base.
func TestDeletingTheStartIsDetected(t *testing.T) {
	dir, db := auditTrail(t, 6)
	db.Close()
	tamper(t, dir, func(b, meta *bbolt.Bucket) {
		var last store.AuditRecord
		for i := uint64(1); i <= 4; i++ {
			_ = jsonUnmarshal(b.Get(seq(i)), &last)
			_ = b.Delete(seq(i))
		}
		_ = meta.Put([]byte("audit_base"), append(seq(4), last.Hash...))
	})
	db = open(t, dir, time.Hour)
	rep, _ := db.VerifyAudit(context.Background())
	if rep.OK || rep.BrokenAt != 5 || !strings.Contains(rep.Problem, "deleted from the start") {
		t.Fatalf("report = %+v", rep)
	}
}
