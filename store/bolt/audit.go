package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mandate-auth/mandate/store"
)

// appendAudit adds ev, chained to the current head, inside tx; a nil ev
// appends nothing. Batch may run it again on retry: it reads the head from
// the same transaction, so a retry chains correctly.
func appendAudit(tx *bbolt.Tx, ev *store.AuditEvent) error {
	if ev == nil {
		return nil
	}
	b := tx.Bucket(bucketAudit)
	b.FillPercent = appendFill // keys are sequence numbers: always appended
	meta := tx.Bucket(bucketMeta)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec := store.NextAuditRecord(seq, string(meta.Get(keyAuditHead)), *ev)
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), val); err != nil {
		return err
	}
	return meta.Put(keyAuditHead, []byte(rec.Hash))
}

// Append durably records an event that is not part of a token or revocation
// write (a refusal, a key rotation, a policy reload).
func (d *DB) Append(_ context.Context, ev store.AuditEvent) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	return d.db.Batch(func(tx *bbolt.Tx) error { return appendAudit(tx, &ev) })
}

// AuditAfter returns up to limit records after seq, oldest first.
func (d *DB) AuditAfter(_ context.Context, after uint64, limit int) ([]store.AuditRecord, error) {
	var out []store.AuditRecord
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var r store.AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("audit record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// AuditTail returns the newest n records, oldest first.
func (d *DB) AuditTail(_ context.Context, n int) ([]store.AuditRecord, error) {
	var out []store.AuditRecord
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			var r store.AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("audit record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// auditBase reads the chain's base: the newest collected record, stored as
// seq(8) hash (absent when nothing was collected).
func auditBase(meta *bbolt.Bucket) store.AuditBase {
	v := meta.Get(keyAuditBase)
	if len(v) < 8 {
		return store.AuditBase{}
	}
	return store.AuditBase{Seq: binary.BigEndian.Uint64(v[:8]), Hash: string(v[8:])}
}

// VerifyAudit checks the whole chain by store.VerifyAuditChain: every
// record's hash, its link to the one before, the continuity of sequence
// numbers, the base and the stored head.
func (d *DB) VerifyAudit(_ context.Context) (store.AuditReport, error) {
	var rep store.AuditReport
	err := d.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		c := tx.Bucket(bucketAudit).Cursor()
		rep = store.VerifyAuditChain(auditBase(meta), string(meta.Get(keyAuditHead)), func(yield func(uint64, []byte) bool) {
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if !yield(binary.BigEndian.Uint64(k), v) {
					return
				}
			}
		})
		return nil
	})
	return rep, err
}

// collectAudit deletes audit records the retention releases at now (oldest
// first, up to gcBatch per call; cutoff is the retention's audit cutoff),
// remembers the newest deleted one as the chain's base, and appends the
// record that vouches for that base (store.AuditCollectedEvent), in one
// transaction.
func (d *DB) collectAudit(cutoff, now time.Time) (int, error) {
	n := 0
	err := d.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		c := tx.Bucket(bucketAudit).Cursor()
		var base store.AuditBase
		for k, v := c.First(); k != nil && n < gcBatch; k, v = c.First() {
			var r store.AuditRecord
			if err := json.Unmarshal(v, &r); err != nil || !d.ret.CollectsAudit(r.Time, now) {
				break
			}
			base = store.AuditBase{Seq: binary.BigEndian.Uint64(k), Hash: r.Hash}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		if err := tx.Bucket(bucketMeta).Put(keyAuditBase, append(seqKey(base.Seq), base.Hash...)); err != nil {
			return err
		}
		ev := store.AuditCollectedEvent(now, base, n, cutoff)
		return appendAudit(tx, &ev)
	})
	return n, err
}

// AuditChain returns the chain as stored, for copying it to another store:
// its base (zero when nothing was collected), its head hash, and every
// record's JSON byte for byte, in sequence order.
func (d *DB) AuditChain(_ context.Context) (store.AuditBase, string, [][]byte, error) {
	var base store.AuditBase
	var head string
	var recs [][]byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		base, head = auditBase(meta), string(meta.Get(keyAuditHead))
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			recs = append(recs, slices.Clone(v))
			return nil
		})
	})
	return base, head, recs, err
}
