package store_test

import (
	"encoding/json"
	"fmt"
	"iter"
	"reflect"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// trail is a chain of n records from base, as a backend would store it.
func trail(base store.AuditBase, n int) (raws [][]byte, head string) {
	prev := base.Hash
	for i := range n {
		seq := base.Seq + uint64(i) + 1
		r := store.NextAuditRecord(seq, prev, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute).Local(), Type: store.AuditIssued, JTI: fmt.Sprint("t", seq)})
		b, _ := json.Marshal(r)
		raws = append(raws, b)
		prev = r.Hash
	}
	return raws, prev
}

func records(first uint64, raws [][]byte, skip ...uint64) iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		for i, b := range raws {
			seq := first + uint64(i)
			if len(skip) > 0 && skip[0] == seq {
				continue
			}
			if !yield(seq, b) {
				return
			}
		}
	}
}

func TestNextAuditRecordChains(t *testing.T) {
	r := store.NextAuditRecord(7, "abc", store.AuditEvent{Time: t0.In(time.FixedZone("x", 3600)), Type: store.AuditRefused})
	if r.Seq != 7 || r.Prev != "abc" || r.Time.Location() != time.UTC || !r.Time.Equal(t0) || r.Hash != r.ComputeHash() || len(r.Hash) != 64 {
		t.Errorf("record = %+v", r)
	}
}

func TestVerifyAuditChain(t *testing.T) {
	raws, head := trail(store.AuditBase{}, 5)
	if rep := store.VerifyAuditChain(store.AuditBase{}, "", records(1, nil)); rep != (store.AuditReport{OK: true, First: 1}) {
		t.Errorf("empty trail: %+v", rep)
	}
	if rep := store.VerifyAuditChain(store.AuditBase{}, head, records(1, raws)); rep != (store.AuditReport{OK: true, Records: 5, First: 1, Last: 5, Head: head}) {
		t.Errorf("intact trail: %+v", rep)
	}
	var r3 store.AuditRecord
	_ = json.Unmarshal(raws[2], &r3)
	edited := r3
	edited.Reason = "edited"
	rehashed := edited
	rehashed.Hash = rehashed.ComputeHash()
	var renumbered store.AuditRecord
	_ = json.Unmarshal(raws[1], &renumbered)
	renumbered.Seq = 20
	renumbered.Hash = renumbered.ComputeHash()
	enc := func(r store.AuditRecord) []byte { b, _ := json.Marshal(r); return b }
	with := func(i int, b []byte) [][]byte { out := append([][]byte(nil), raws...); out[i] = b; return out }
	vouch := store.AuditCollectedEvent(t0, store.AuditBase{Seq: 3, Hash: r3.Hash}, 3, t0)
	tests := []struct {
		name    string
		base    store.AuditBase
		head    string
		recs    iter.Seq2[uint64, []byte]
		at      uint64
		problem string
	}{
		{"garbage", store.AuditBase{}, head, records(1, with(2, []byte("{"))), 3, "record 3 is not a valid audit record"},
		{"a gap", store.AuditBase{}, head, records(1, raws, 2), 3, "record 3 follows record 1: 1 record(s) missing"},
		{"a renumbered record", store.AuditBase{}, head, records(1, with(1, enc(renumbered))), 2, "record 2 claims to be record 20"},
		{"an edited record", store.AuditBase{}, head, records(1, with(2, enc(edited))), 3, "record 3 was altered: its content does not match its hash"},
		{"a rehashed record", store.AuditBase{}, head, records(1, with(2, enc(rehashed))), 4, "record 4 does not link to record 3: one of the two was rewritten"},
		{"a stale head", store.AuditBase{}, "feed", records(1, raws), 5, "the stored head does not match the last record: records were removed from the end"},
		{"an unvouched base", store.AuditBase{Seq: 3, Hash: r3.Hash}, head, records(4, raws[3:]), 4, "the trail starts after record 3, but no collection record vouches for that: records were deleted from the start"},
		{"a base vouched with another hash", store.AuditBase{Seq: 3, Hash: r3.Hash}, "", func(yield func(uint64, []byte) bool) {
			wrong := vouch
			wrong.BaseHash = "0000"
			records(4, raws[3:])(yield) // records 4 and 5
			r := store.NextAuditRecord(6, head, wrong)
			yield(6, enc(r))
		}, 4, "the trail starts after record 3, but no collection record vouches for that: records were deleted from the start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := store.VerifyAuditChain(tt.base, tt.head, tt.recs)
			if rep.OK || rep.BrokenAt != tt.at || rep.Problem != tt.problem {
				t.Errorf("report = %+v; want broken at %d: %q", rep, tt.at, tt.problem)
			}
		})
	}
	// A collection record vouching for the base makes the rest verify.
	last := store.NextAuditRecord(6, head, vouch)
	all := append(append([][]byte(nil), raws[3:]...), enc(last))
	rep := store.VerifyAuditChain(store.AuditBase{Seq: 3, Hash: r3.Hash}, last.Hash, records(4, all))
	if rep != (store.AuditReport{OK: true, Records: 3, First: 4, Last: 6, Head: last.Hash}) {
		t.Errorf("vouched base: %+v", rep)
	}
}

func TestAuditCollectedEvent(t *testing.T) {
	ev := store.AuditCollectedEvent(t0.Add(time.Hour), store.AuditBase{Seq: 42, Hash: "h"}, 40, t0.In(time.FixedZone("x", 3600)))
	want := store.AuditEvent{Time: t0.Add(time.Hour), Type: store.AuditCollected, Base: 42, BaseHash: "h",
		Reason: "40 records up to #42, older than 2026-11-27T09:00:00Z, collected"}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("event = %+v", ev)
	}
}
