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
	rec := store.AuditRecord{Seq: seq, AuditEvent: *ev, Prev: string(meta.Get(keyAuditHead))}
	rec.Time = rec.Time.UTC()
	rec.Hash = rec.ComputeHash()
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

// VerifyAudit recomputes the whole chain: every record's hash, its link to
// the one before, the continuity of sequence numbers, and the stored head.
func (d *DB) VerifyAudit(_ context.Context) (store.AuditReport, error) {
	var rep store.AuditReport
	err := d.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var baseSeq, vouchedSeq uint64
		prev, vouchedHash := "", ""
		if v := meta.Get(keyAuditBase); len(v) >= 8 {
			baseSeq, prev = binary.BigEndian.Uint64(v[:8]), string(v[8:])
		}
		baseHash := prev
		rep.First, rep.Last = baseSeq+1, baseSeq
		broken := func(seq uint64, format string, args ...any) {
			if rep.BrokenAt == 0 && rep.Problem == "" {
				rep.BrokenAt, rep.Problem = seq, fmt.Sprintf(format, args...)
			}
		}
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			rep.Records++
			var r store.AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				broken(seq, "record %d is not a valid audit record", seq)
				continue
			}
			switch {
			case seq != rep.Last+1:
				broken(seq, "record %d follows record %d: %d record(s) missing", seq, rep.Last, seq-rep.Last-1)
			case r.Seq != seq:
				broken(seq, "record %d claims to be record %d", seq, r.Seq)
			case r.Prev != prev:
				broken(seq, "record %d does not link to record %d: one of the two was rewritten", seq, seq-1)
			case r.ComputeHash() != r.Hash:
				broken(seq, "record %d was altered: its content does not match its hash", seq)
			}
			if r.Type == store.AuditCollected {
				vouchedSeq, vouchedHash = r.Base, r.BaseHash
			}
			rep.Last, prev = seq, r.Hash
		}
		rep.Head = prev
		if baseSeq > 0 && (baseSeq != vouchedSeq || baseHash != vouchedHash) {
			broken(baseSeq+1, "the trail starts after record %d, but no collection record vouches for that: records were deleted from the start", baseSeq)
		}
		if h := string(meta.Get(keyAuditHead)); h != prev {
			broken(rep.Last, "the stored head does not match the last record: records were removed from the end")
		}
		rep.OK = rep.Problem == ""
		return nil
	})
	return rep, err
}

// collectAudit deletes audit records older than cutoff (oldest first, up to
// gcBatch per call), remembers the newest deleted one as the chain's base,
// and appends a record that vouches for that base, in one transaction.
func (d *DB) collectAudit(cutoff, now time.Time) (int, error) {
	n := 0
	err := d.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var last []byte
		for k, v := c.First(); k != nil && n < gcBatch; k, v = c.First() {
			var r store.AuditRecord
			if err := json.Unmarshal(v, &r); err != nil || !r.Time.Before(cutoff) {
				break
			}
			last = append(append([]byte(nil), k...), r.Hash...)
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		if last == nil {
			return nil
		}
		if err := tx.Bucket(bucketMeta).Put(keyAuditBase, last); err != nil {
			return err
		}
		base := binary.BigEndian.Uint64(last[:8])
		return appendAudit(tx, &store.AuditEvent{Time: now, Type: store.AuditCollected, Base: base, BaseHash: string(last[8:]),
			Reason: fmt.Sprintf("%d records up to #%d, older than %s, collected", n, base, cutoff.UTC().Format(time.RFC3339))})
	})
	return n, err
}
