package store

import (
	"encoding/json"
	"fmt"
	"iter"
	"time"
)

// This file holds the audit trail's rules, which every backend applies the
// same way: how a record is chained to the one before it, how a trail is
// verified, and how a collection vouches for the trail's new start. A backend
// only stores records, the head hash and the base, and hands them to these
// functions.

// AuditBase is where a trail starts once its oldest records were collected:
// the sequence number and hash of the newest collected record. The zero value
// is the base of a trail nothing was ever collected from.
type AuditBase struct {
	Seq  uint64
	Hash string
}

// NextAuditRecord is the record that appends ev to a trail as record seq,
// chained to prev, the hash of the record before it ("" for the first): its
// time in UTC and its hash computed. A backend stores it (as JSON) and makes
// its Hash the trail's new head, in the transaction that writes the decision.
func NextAuditRecord(seq uint64, prev string, ev AuditEvent) AuditRecord {
	rec := AuditRecord{Seq: seq, AuditEvent: ev, Prev: prev}
	rec.Time = rec.Time.UTC()
	rec.Hash = rec.ComputeHash()
	return rec
}

// VerifyAuditChain verifies one hash chain from what its backend stores: the
// chain's base (zero if nothing was collected), the stored head hash ("" for
// an empty trail), and every stored record as (sequence number, JSON) in
// sequence order. It checks each record's hash, its link to the one before,
// the continuity of sequence numbers, that a collection record vouches for
// the base, and that the head is the last record's hash, and reports the first
// problem. The JSON need only stay valid during the iteration's yield; a
// backend whose reading fails part way returns its error, not the report. A
// backend that keeps several chains (one per replica) verifies each alone.
func VerifyAuditChain(base AuditBase, head string, records iter.Seq2[uint64, []byte]) AuditReport {
	var rep AuditReport
	var vouched AuditBase
	prev := base.Hash
	rep.First, rep.Last = base.Seq+1, base.Seq
	broken := func(seq uint64, format string, args ...any) {
		if rep.BrokenAt == 0 && rep.Problem == "" {
			rep.BrokenAt, rep.Problem = seq, fmt.Sprintf(format, args...)
		}
	}
	for seq, raw := range records {
		rep.Records++
		var r AuditRecord
		if err := json.Unmarshal(raw, &r); err != nil {
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
		if r.Type == AuditCollected {
			vouched = AuditBase{Seq: r.Base, Hash: r.BaseHash}
		}
		rep.Last, prev = seq, r.Hash
	}
	rep.Head = prev
	if base.Seq > 0 && base != vouched {
		broken(base.Seq+1, "the trail starts after record %d, but no collection record vouches for that: records were deleted from the start", base.Seq)
	}
	if head != prev {
		broken(rep.Last, "the stored head does not match the last record: records were removed from the end")
	}
	rep.OK = rep.Problem == ""
	return rep
}

// AuditCollectedEvent is the event a backend appends, in the transaction that
// deletes the oldest n audit records (all written before cutoff, the newest
// of them now the chain's base), so the kept trail still verifies and a start
// deleted any other way does not.
func AuditCollectedEvent(now time.Time, base AuditBase, n int, cutoff time.Time) AuditEvent {
	return AuditEvent{Time: now, Type: AuditCollected, Base: base.Seq, BaseHash: base.Hash,
		Reason: fmt.Sprintf("%d records up to #%d, older than %s, collected", n, base.Seq, cutoff.UTC().Format(time.RFC3339))}
}
