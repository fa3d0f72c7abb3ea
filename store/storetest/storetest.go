// Package storetest is the conformance suite of Mandate's stores: every
// behaviour the core relies on (durable group-committed writes, the child and
// holder indexes, revocation and its log, retention, the audit trail, and
// read-only opening), run against any backend by one call of Run from that
// backend's tests.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Store is what a backend under test opens: every store interface the core
// persists through, the collector, the signing-key store, and Close.
type Store interface {
	store.Tokens
	store.Revocations
	store.RevocationLog
	store.Audit
	store.Collector
	store.Suspensions
	tokens.KeyStore
	io.Closer
}

// AuditTrail edits a closed store's audit trail behind its back, bypassing
// every rule, so the suite can check that VerifyAudit notices.
type AuditTrail interface {
	// Record returns record seq as stored (its JSON), or nil.
	Record(seq uint64) ([]byte, error)
	// PutRecord stores raw as record seq, leaving the head as it is.
	PutRecord(seq uint64, raw []byte) error
	// DeleteRecord removes record seq, leaving the head as it is.
	DeleteRecord(seq uint64) error
	// SetBase moves the chain's base as a collection would, but without
	// appending the record that vouches for it.
	SetBase(base store.AuditBase) error
}

// Backend is how the suite opens stores of the backend under test. Every
// test gets its own location (a fresh t.TempDir()), and closes and reopens
// it to check that what was acknowledged is durable.
type Backend struct {
	// Open opens the store at dir, creating it if dir holds none, with the
	// given retention. A backend that keeps no files derives its database
	// from dir.
	Open func(dir string, r store.Retention) (Store, error)
	// OpenReadOnly opens the closed store at dir read-only: reads answer as
	// Open's would, and every write fails with store.ErrReadOnly. Nil skips
	// the read-only tests.
	OpenReadOnly func(dir string) (Store, error)
	// Tamper runs edit on the audit trail of the closed store at dir and
	// saves what it did. Nil skips the tamper-detection tests.
	Tamper func(dir string, edit func(AuditTrail) error) error
}

// Run runs the whole suite against b, each behaviour as a subtest.
func Run(t *testing.T, b Backend) {
	if b.Open == nil {
		t.Fatal("storetest: Backend.Open is required")
	}
	s := &suite{b: b}
	for _, tt := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"TokenRoundTrip", s.testTokenRoundTrip},
		{"ChildrenIndex", s.testChildrenIndex},
		{"HeldBy", s.testHeldBy},
		{"ScanTokens", s.testScanTokens},
		{"ScanWhileWriting", s.testScanWhileWriting},
		{"GroupCommit", s.testGroupCommit},
		{"RevokeIsOneIdempotentRecord", s.testRevokeIdempotent},
		{"NoTokenBelowARevokedAncestor", s.testNoTokenBelowRevoked},
		{"RevocationLog", s.testRevocationLog},
		{"GarbageCollection", s.testGarbageCollection},
		{"GarbageCollectionOfABacklog", s.testGarbageCollectionBacklog},
		{"RevocationGrace", s.testRevocationGrace},
		{"SigningKeys", s.testSigningKeys},
		{"Suspensions", s.testSuspensions},
		{"AuditTrail", s.testAuditTrail},
		{"AuditWrittenWithDecisions", s.testAuditWithDecisions},
		{"AuditCollection", s.testAuditCollection},
		{"AuditTamperDetection", s.testAuditTamper},
		{"AuditDeletedStartDetection", s.testAuditDeletedStart},
		{"ReadOnly", s.testReadOnly},
	} {
		t.Run(tt.name, tt.fn)
	}
}

// T0 is the suite's clock: whole seconds, as token times are.
var T0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

type suite struct{ b Backend }

// open opens the store at dir and closes it when the test ends (a store the
// test closed itself is closed again, harmlessly).
func (s *suite) open(t *testing.T, dir string, r store.Retention) Store {
	t.Helper()
	st, err := s.b.Open(dir, r)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// reopen closes st and opens dir again, so what follows reads what was made
// durable.
func (s *suite) reopen(t *testing.T, st Store, dir string, r store.Retention) Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return s.open(t, dir, r)
}

var ctx = context.Background()

// Rec is a token record in lineage, issued at T0, expiring at exp.
func Rec(jti string, lineage []string, exp time.Time) *store.TokenRecord {
	r := &store.TokenRecord{JTI: jti, Lineage: lineage, Subject: "o", Holder: "h", Scope: "s",
		Audience: []string{"a"}, IssuedAt: T0, ExpiresAt: exp, Act: &jwt.Actor{Subject: "h"}}
	if n := len(lineage); n > 0 {
		r.Parent = lineage[n-1]
	}
	return r
}

func put(t *testing.T, st Store, r *store.TokenRecord, ev *store.AuditEvent) {
	t.Helper()
	if err := st.PutToken(ctx, r, ev); err != nil {
		t.Fatalf("PutToken %s: %v", r.JTI, err)
	}
}

func revoke(t *testing.T, st Store, jti string, exp time.Time) store.Revocation {
	t.Helper()
	r, created, err := st.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: exp, RevokedAt: T0}, nil)
	if err != nil || !created {
		t.Fatalf("Revoke %s: %v %v", jti, created, err)
	}
	return r
}

func gc(t *testing.T, st Store, now time.Time) store.GCResult {
	t.Helper()
	res, err := st.GC(now)
	if err != nil {
		t.Fatalf("GC(%s): %v", now, err)
	}
	return res
}

// normal is r with its times in UTC, so records compare whatever time zone a
// backend hands back.
func normal(r store.TokenRecord) store.TokenRecord {
	r.IssuedAt, r.ExpiresAt = r.IssuedAt.UTC(), r.ExpiresAt.UTC()
	return r
}

func normalRev(r store.Revocation) store.Revocation {
	r.ExpiresAt, r.RevokedAt = r.ExpiresAt.UTC(), r.RevokedAt.UTC()
	return r
}

func jtis(recs []*store.TokenRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.JTI)
	}
	return out
}

func revJTIs(rs []store.Revocation) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.JTI)
	}
	return out
}

func (s *suite) testTokenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	full := &store.TokenRecord{JTI: "tok-1", Parent: "root", Lineage: []string{"root-0", "root"}, Subject: "orchestrator",
		Holder: "db-agent", Act: &jwt.Actor{Subject: "db-agent", Issuer: "https://idp.example", Act: &jwt.Actor{Subject: "researcher"}},
		Scope: "db:read:orders db:read:users", Audience: []string{"https://db.example", "https://api.example"},
		IssuedAt: T0, ExpiresAt: T0.Add(5 * time.Minute), JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
	root := Rec("root", nil, T0.Add(time.Hour))
	put(t, st, full, nil)
	put(t, st, root, nil)
	if err := st.PutToken(ctx, &store.TokenRecord{Holder: "h", ExpiresAt: T0}, nil); err == nil {
		t.Error("a record without jti was stored")
	}
	st = s.reopen(t, st, dir, store.Retention{Tokens: time.Hour})
	for _, want := range []*store.TokenRecord{full, root} {
		got, err := st.Token(ctx, want.JTI)
		if err != nil {
			t.Fatalf("Token(%s) after reopen: %v", want.JTI, err)
		}
		if !reflect.DeepEqual(normal(*got), normal(*want)) {
			t.Errorf("Token(%s) after reopen =\n%+v, want\n%+v", want.JTI, *got, *want)
		}
	}
	if _, err := st.Token(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Token of a missing jti: %v, want store.ErrNotFound", err)
	}
}

func (s *suite) testChildrenIndex(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	for _, r := range []*store.TokenRecord{Rec("root", nil, T0.Add(time.Hour)), Rec("c1", []string{"root"}, T0.Add(time.Minute)),
		Rec("c2", []string{"root"}, T0.Add(time.Minute)), Rec("g", []string{"root", "c1"}, T0.Add(time.Minute)), Rec("rootx", nil, T0.Add(time.Hour))} {
		put(t, st, r, nil)
	}
	st = s.reopen(t, st, dir, store.Retention{Tokens: time.Hour})
	for jti, want := range map[string][]string{"root": {"c1", "c2"}, "c1": {"g"}, "c2": nil, "g": nil, "roo": nil, "nope": nil} {
		kids, err := st.Children(ctx, jti)
		if err != nil || len(kids) != len(want) || (len(want) > 0 && !reflect.DeepEqual(kids, want)) {
			t.Errorf("Children(%s) = %v, %v; want %v", jti, kids, err, want)
		}
	}
}

func (s *suite) testHeldBy(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{})
	mk := func(jti, holder string, exp time.Time) {
		r := Rec(jti, nil, exp)
		r.Holder = holder
		put(t, st, r, nil)
	}
	mk("a1", "agent", T0.Add(time.Minute))
	mk("a2", "agent", T0.Add(time.Hour))
	mk("gone", "agent", T0)
	mk("b1", "agent-b", T0.Add(time.Hour)) // a holder whose id extends another's
	for holder, want := range map[string][]string{"agent": {"a1", "a2"}, "agent-b": {"b1"}, "agen": {}, "nobody": {}} {
		held, err := st.HeldBy(ctx, holder, T0)
		if err != nil || !reflect.DeepEqual(jtis(held), want) {
			t.Errorf("HeldBy(%s, T0) = %v, %v; want %v", holder, jtis(held), err, want)
		}
	}
	if held, _ := st.HeldBy(ctx, "agent", T0.Add(time.Minute)); !reflect.DeepEqual(jtis(held), []string{"a2"}) {
		t.Errorf("HeldBy at a1's expiry = %v, want [a2]", jtis(held))
	}
	gc(t, st, T0.Add(2*time.Hour))
	for _, holder := range []string{"agent", "agent-b"} {
		if held, err := st.HeldBy(ctx, holder, T0); err != nil || len(held) != 0 {
			t.Errorf("holder index of %s survived GC: %v, %v", holder, jtis(held), err)
		}
	}
}

func (s *suite) testScanTokens(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{})
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("t%02d", i))
	}
	for _, i := range []int{7, 3, 24, 0, 12, 18, 1, 9, 21, 15, 5, 11, 2, 20, 14, 8, 23, 6, 17, 4, 13, 22, 10, 19, 16} {
		put(t, st, Rec(want[i], nil, T0.Add(time.Hour)), nil)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		batch, err := st.ScanTokens(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			if pages != 3 {
				t.Errorf("%d pages of 10 for 25 records", pages)
			}
			break
		}
		if len(batch) > 10 || pages > 3 {
			t.Fatalf("page %d has %d records (limit 10)", pages, len(batch))
		}
		got = append(got, jtis(batch)...)
		after = batch[len(batch)-1].JTI
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan = %v, want every jti once in order", got)
	}
	if batch, _ := st.ScanTokens(ctx, "t05x", 3); !reflect.DeepEqual(jtis(batch), []string{"t06", "t07", "t08"}) {
		t.Errorf("scan after a jti not stored = %v", jtis(batch))
	}
	if batch, _ := st.ScanTokens(ctx, "t24", 10); len(batch) != 0 {
		t.Errorf("scan after the last = %v", jtis(batch))
	}
}

// testScanWhileWriting reads the store batch by batch, with other reads
// between batches, while writers grow it: ScanTokens must hold nothing that
// stalls a writer once it returns.
func (s *suite) testScanWhileWriting(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{Tokens: time.Hour})
	for i := range 600 {
		put(t, st, Rec(fmt.Sprintf("seed%04d", i), nil, T0.Add(time.Hour)), nil)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 500 {
			if err := st.PutToken(ctx, Rec(fmt.Sprintf("w%05d-%s", i, strings.Repeat("x", 2000)), nil, T0.Add(time.Hour)), nil); err != nil {
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
			batch, err := st.ScanTokens(ctx, after, 64)
			if err != nil || len(batch) == 0 {
				break
			}
			for _, r := range batch[:1] {
				_, _ = st.FirstRevoked(ctx, r.JTI)
			}
			after = batch[len(batch)-1].JTI
		}
	}
}

// testGroupCommit writes from many goroutines at once: every acknowledged
// write, with its audit record, survives a reopen, and the trail chains.
func (s *suite) testGroupCommit(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	const writers, revokers = 200, 50
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			jti := fmt.Sprintf("t%03d", i)
			ev := &store.AuditEvent{Time: T0, Type: store.AuditIssued, JTI: jti}
			if err := st.PutToken(ctx, Rec(jti, []string{"root"}, T0.Add(time.Hour)), ev); err != nil {
				t.Error(err)
			}
		})
	}
	for i := range revokers {
		wg.Go(func() {
			jti := fmt.Sprintf("r%03d", i)
			ev := &store.AuditEvent{Time: T0, Type: store.AuditRevoked, JTI: jti}
			if _, created, err := st.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: T0.Add(time.Hour), RevokedAt: T0}, ev); err != nil || !created {
				t.Error(created, err)
			}
		})
	}
	wg.Wait()
	st = s.reopen(t, st, dir, store.Retention{Tokens: time.Hour})
	if kids, _ := st.Children(ctx, "root"); len(kids) != writers {
		t.Errorf("%d of %d acknowledged token writes survived", len(kids), writers)
	}
	for i := range writers {
		if _, err := st.Token(ctx, fmt.Sprintf("t%03d", i)); err != nil {
			t.Fatalf("token t%03d: %v", i, err)
		}
	}
	revs, next, head, err := st.RevocationsAfter(ctx, 0, 0)
	if err != nil || len(revs) != revokers || head != revokers || next != revokers {
		t.Fatalf("revocation log after concurrent revokes: %d entries, next %d head %d, %v", len(revs), next, head, err)
	}
	for i, r := range revs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("log entry %d has seq %d: seqs must be dense and ordered", i+1, r.Seq)
		}
	}
	rep, err := st.VerifyAudit(ctx)
	if err != nil || !rep.OK || rep.Records != writers+revokers {
		t.Errorf("audit after concurrent writes: %+v, %v", rep, err)
	}
	recs, _ := st.AuditAfter(ctx, 0, 0)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.JTI] = true
	}
	if len(seen) != writers+revokers {
		t.Errorf("%d distinct events in the trail, want %d", len(seen), writers+revokers)
	}
}

func (s *suite) testRevokeIdempotent(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	first := store.Revocation{JTI: "root", ExpiresAt: T0.Add(time.Hour), RevokedAt: T0, Reason: "task over", By: "ops"}
	got, created, err := st.Revoke(ctx, first, &store.AuditEvent{Time: T0, Type: store.AuditRevoked, JTI: "root"})
	if err != nil || !created || got.Seq != 1 {
		t.Fatalf("revoke: %+v %v %v", got, created, err)
	}
	first.Seq = 1
	again := first
	again.Reason, again.RevokedAt, again.By = "other", T0.Add(time.Minute), "someone"
	got, created, err = st.Revoke(ctx, again, &store.AuditEvent{Time: T0, Type: store.AuditRevoked, JTI: "root", Reason: "again"})
	if err != nil || created || !reflect.DeepEqual(normalRev(got), first) {
		t.Fatalf("second revoke = %+v %v %v; want the first record and false", got, created, err)
	}
	if _, _, err := st.Revoke(ctx, store.Revocation{ExpiresAt: T0}, nil); err == nil {
		t.Error("a revocation without jti was stored")
	}
	st = s.reopen(t, st, dir, store.Retention{Tokens: time.Hour})
	r, err := st.FirstRevoked(ctx, "other", "root", "x")
	if err != nil || r == nil || !reflect.DeepEqual(normalRev(*r), first) {
		t.Fatalf("FirstRevoked after reopen = %+v, %v", r, err)
	}
	if r, err := st.FirstRevoked(ctx, "a", "b"); r != nil || err != nil {
		t.Errorf("unrevoked reported revoked: %+v %v", r, err)
	}
	if r, err := st.FirstRevoked(ctx); r != nil || err != nil {
		t.Errorf("FirstRevoked of nothing = %+v %v", r, err)
	}
	if revs, _, head, _ := st.RevocationsAfter(ctx, 0, 0); len(revs) != 1 || head != 1 {
		t.Errorf("%d revocation records (head %d), want one", len(revs), head)
	}
	if recs, _ := st.AuditAfter(ctx, 0, 0); len(recs) != 1 || recs[0].Reason != "" {
		t.Errorf("audit after a repeated revoke = %+v; the repeat must change nothing", recs)
	}
}

// testNoTokenBelowRevoked: PutToken refuses a token an ancestor of which
// is revoked (store.ErrAncestorRevoked), writing nothing — no record, no
// child link, no audit record — while its siblings under live ancestors,
// written in the same group commit, are stored; and a token racing the
// revocation of its ancestor is either refused or recorded below it,
// never recorded as if the ancestor were live.
func (s *suite) testNoTokenBelowRevoked(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	exp := T0.Add(time.Hour)
	put(t, st, Rec("root", nil, exp), nil)
	put(t, st, Rec("mid", []string{"root"}, exp), nil)
	put(t, st, Rec("other", nil, exp), nil)
	revoke(t, st, "mid", exp)
	before, _ := st.AuditAfter(ctx, 0, 0)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			lineage := []string{"root", "mid"}
			if i%2 == 1 {
				lineage = []string{"other"}
			}
			errs[i] = st.PutToken(ctx, Rec(fmt.Sprintf("c%02d", i), lineage, exp), &store.AuditEvent{Time: T0, Type: store.AuditIssued, JTI: fmt.Sprintf("c%02d", i)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		_, found := st.Token(ctx, fmt.Sprintf("c%02d", i))
		switch {
		case i%2 == 0 && (!errors.Is(err, store.ErrAncestorRevoked) || !strings.Contains(err.Error(), "mid")):
			t.Errorf("a token below the revoked mid: %v, want ErrAncestorRevoked naming mid", err)
		case i%2 == 0 && !errors.Is(found, store.ErrNotFound):
			t.Errorf("a refused token was recorded: %v", found)
		case i%2 == 1 && (err != nil || found != nil):
			t.Errorf("a token below a live ancestor: %v %v", err, found)
		}
	}
	if kids, _ := st.Children(ctx, "mid"); len(kids) != 0 {
		t.Errorf("children of the revoked token: %v", kids)
	}
	if after, _ := st.AuditAfter(ctx, 0, 0); len(after) != len(before)+len(errs)/2 {
		t.Errorf("%d audit records written for %d tokens stored", len(after)-len(before), len(errs)/2)
	}

	// Racing: a revocation of an ancestor while tokens below it are
	// written. Each is refused, or recorded with the revocation committed
	// after it (it is then refused wherever it is shown, by its lineage).
	put(t, st, Rec("task", nil, exp), nil)
	var revokedAt uint64
	var wg2 sync.WaitGroup
	results := make([]error, 30)
	for i := range results {
		wg2.Go(func() {
			results[i] = st.PutToken(ctx, Rec(fmt.Sprintf("r%02d", i), []string{"task"}, exp), nil)
		})
		if i == 10 {
			wg2.Go(func() {
				r, _, err := st.Revoke(ctx, store.Revocation{JTI: "task", ExpiresAt: exp, RevokedAt: T0}, nil)
				if err != nil {
					t.Error(err)
				}
				revokedAt = r.Seq
			})
		}
	}
	wg2.Wait()
	if revokedAt == 0 {
		t.Fatal("the task was not revoked")
	}
	for i, err := range results {
		if err != nil && !errors.Is(err, store.ErrAncestorRevoked) {
			t.Errorf("r%02d: %v", i, err)
		}
	}
	if err := st.PutToken(ctx, Rec("late", []string{"task"}, exp), nil); !errors.Is(err, store.ErrAncestorRevoked) {
		t.Errorf("a token below the task once revoked: %v", err)
	}
}

func (s *suite) testRevocationLog(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{})
	id := st.ID()
	if other := s.open(t, t.TempDir(), store.Retention{}); id == "" || other.ID() == id {
		t.Fatalf("store ids %q and %q", id, other.ID())
	}
	if revs, next, head, err := st.RevocationsAfter(ctx, 0, 0); len(revs) != 0 || next != 0 || head != 0 || err != nil {
		t.Errorf("empty log = %v next %d head %d %v", revs, next, head, err)
	}
	for i, jti := range []string{"a", "b", "c"} {
		r, created, err := st.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: T0.Add(time.Duration(i+1) * time.Minute), RevokedAt: T0}, nil)
		if err != nil || !created || r.Seq != uint64(i+1) {
			t.Fatalf("revoke %s: seq %d %v %v", jti, r.Seq, created, err)
		}
	}
	if r, created, _ := st.Revoke(ctx, store.Revocation{JTI: "b", ExpiresAt: T0}, nil); created || r.Seq != 2 {
		t.Errorf("re-revoking moved the entry: %+v", r)
	}
	all, next, head, err := st.RevocationsAfter(ctx, 0, 0)
	if err != nil || head != 3 || next != 3 || !reflect.DeepEqual(revJTIs(all), []string{"a", "b", "c"}) {
		t.Fatalf("log = %v next %d head %d %v", revJTIs(all), next, head, err)
	}
	for i, r := range all {
		if r.Seq != uint64(i+1) || !r.ExpiresAt.Equal(T0.Add(time.Duration(i+1)*time.Minute)) {
			t.Errorf("entry %d = %+v", i+1, r)
		}
	}
	if page, next, head, _ := st.RevocationsAfter(ctx, 0, 2); !reflect.DeepEqual(revJTIs(page), []string{"a", "b"}) || next != 2 || head != 3 {
		t.Errorf("first page = %v next %d head %d", revJTIs(page), next, head)
	}
	if later, next, _, _ := st.RevocationsAfter(ctx, 2, 2); !reflect.DeepEqual(revJTIs(later), []string{"c"}) || next != 3 {
		t.Errorf("after 2 = %v next %d", revJTIs(later), next)
	}
	if none, next, head, _ := st.RevocationsAfter(ctx, 3, 0); len(none) != 0 || head != 3 || next != 3 {
		t.Errorf("after head = %v, %d %d", none, next, head)
	}
	if jti, ok, _ := st.RevocationAt(ctx, 2); !ok || jti != "b" {
		t.Errorf("RevocationAt(2) = %q %v", jti, ok)
	}
	if jti, ok, _ := st.RevocationAt(ctx, 4); ok || jti != "" {
		t.Errorf("RevocationAt(4), beyond the head = %q %v", jti, ok)
	}
	// Expired entries leave the log; the head never goes back.
	if res := gc(t, st, T0.Add(2*time.Minute)); res.Revocations != 2 {
		t.Errorf("GC = %+v, want 2 revocations", res)
	}
	st = s.reopen(t, st, dir, store.Retention{})
	all, next, head, _ = st.RevocationsAfter(ctx, 0, 0)
	if _, ok, _ := st.RevocationAt(ctx, 1); ok {
		t.Error("collected entry still in the log")
	}
	if head != 3 || next != 3 || !reflect.DeepEqual(revJTIs(all), []string{"c"}) || st.ID() != id {
		t.Errorf("after GC and reopen: %v next %d head %d id %s (was %s)", revJTIs(all), next, head, st.ID(), id)
	}
	if r := revoke(t, st, "d", T0.Add(time.Hour)); r.Seq != 4 {
		t.Errorf("seq after collection and reopen = %d, want 4", r.Seq)
	}
	// The newest entry collected: reading to the end still reaches the head.
	revoke(t, st, "e", T0.Add(2*time.Minute+30*time.Second))
	if res := gc(t, st, T0.Add(2*time.Minute+30*time.Second)); res.Revocations != 1 {
		t.Errorf("GC = %+v, want e's revocation", res)
	}
	if all, next, head, _ := st.RevocationsAfter(ctx, 0, 0); !reflect.DeepEqual(revJTIs(all), []string{"c", "d"}) || next != 5 || head != 5 {
		t.Errorf("log = %v next %d head %d; want [c d] 5 5", revJTIs(all), next, head)
	}
	if page, next, _, _ := st.RevocationsAfter(ctx, 0, 1); !reflect.DeepEqual(revJTIs(page), []string{"c"}) || next != 3 {
		t.Errorf("first page of 1 = %v next %d; want [c] 3", revJTIs(page), next)
	}
	// A full page that ends at the last stored entry may report that entry
	// or the head as next: either way nothing is skipped.
	if page, next, _, _ := st.RevocationsAfter(ctx, 3, 1); !reflect.DeepEqual(revJTIs(page), []string{"d"}) || (next != 4 && next != 5) {
		t.Errorf("after 3 = %v next %d; want [d] and 4 or 5", revJTIs(page), next)
	}
	if none, next, head, _ := st.RevocationsAfter(ctx, 4, 1); len(none) != 0 || next != 5 || head != 5 {
		t.Errorf("after 4 = %v next %d head %d; want none, 5, 5", revJTIs(none), next, head)
	}
}

func (s *suite) testGarbageCollection(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{Tokens: time.Hour})
	put(t, st, Rec("root", nil, T0.Add(10*time.Minute)), nil)
	put(t, st, Rec("child", []string{"root"}, T0.Add(5*time.Minute)), nil)
	put(t, st, Rec("live", nil, T0.Add(3*time.Hour)), nil)
	revoke(t, st, "root", T0.Add(10*time.Minute))
	revoke(t, st, "live", T0.Add(3*time.Hour))

	// Before expiry nothing goes.
	if res := gc(t, st, T0.Add(4*time.Minute)); res != (store.GCResult{}) {
		t.Fatalf("early GC removed %+v", res)
	}
	// At the root's expiry its revocation leaves; the records stay for retention.
	if res := gc(t, st, T0.Add(10*time.Minute)); res != (store.GCResult{Revocations: 1}) {
		t.Fatalf("GC at expiry = %+v", res)
	}
	if r, _ := st.FirstRevoked(ctx, "root"); r != nil {
		t.Error("an expired token's revocation was kept")
	}
	if r, _ := st.FirstRevoked(ctx, "live"); r == nil {
		t.Error("a live token's revocation was collected")
	}
	if _, err := st.Token(ctx, "child"); err != nil {
		t.Error("record collected before retention passed")
	}
	// Just before the root's retention ends, only the child (expired earlier) goes.
	if res := gc(t, st, T0.Add(10*time.Minute+time.Hour-time.Second)); res != (store.GCResult{Tokens: 1}) {
		t.Fatalf("GC before the root's retention ended = %+v", res)
	}
	// After retention the expired records and their child links go.
	if res := gc(t, st, T0.Add(10*time.Minute+time.Hour)); res != (store.GCResult{Tokens: 1}) {
		t.Fatalf("GC after retention = %+v", res)
	}
	for _, jti := range []string{"root", "child"} {
		if _, err := st.Token(ctx, jti); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(%s) after collection: %v", jti, err)
		}
	}
	if kids, _ := st.Children(ctx, "root"); len(kids) != 0 {
		t.Errorf("dangling child links: %v", kids)
	}
	if held, _ := st.HeldBy(ctx, "h", T0); !reflect.DeepEqual(jtis(held), []string{"live"}) {
		t.Errorf("held after collection = %v", jtis(held))
	}
	if _, err := st.Token(ctx, "live"); err != nil {
		t.Error("live record collected")
	}
	if batch, _ := st.ScanTokens(ctx, "", 10); !reflect.DeepEqual(jtis(batch), []string{"live"}) {
		t.Errorf("records after GC = %v", jtis(batch))
	}
	if res := gc(t, st, T0.Add(10*time.Minute+time.Hour)); res != (store.GCResult{}) {
		t.Errorf("a second pass removed %+v", res)
	}
}

// testGarbageCollectionBacklog collects more records than any one batch a
// backend might delete at a time: one GC call takes them all.
func (s *suite) testGarbageCollectionBacklog(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{})
	const n = 2500
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			jti := fmt.Sprintf("t%05d", i)
			if err := st.PutToken(ctx, Rec(jti, nil, T0.Add(time.Minute)), nil); err != nil {
				t.Error(err)
			}
			if i%2 == 0 {
				if _, _, err := st.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: T0.Add(time.Minute), RevokedAt: T0}, nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if res := gc(t, st, T0.Add(time.Minute)); res != (store.GCResult{Tokens: n, Revocations: n / 2}) {
		t.Fatalf("GC = %+v", res)
	}
	if batch, _ := st.ScanTokens(ctx, "", 10); len(batch) != 0 {
		t.Errorf("records left: %v", jtis(batch))
	}
}

func (s *suite) testRevocationGrace(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{Revocations: time.Minute})
	revoke(t, st, "r", T0)
	if res := gc(t, st, T0.Add(59*time.Second)); res.Revocations != 0 {
		t.Fatal("collected within the grace")
	}
	if r, _ := st.FirstRevoked(ctx, "r"); r == nil {
		t.Fatal("revocation gone within the grace")
	}
	if res := gc(t, st, T0.Add(time.Minute)); res.Revocations != 1 {
		t.Fatal("not collected after the grace")
	}
	if revs, _, head, _ := st.RevocationsAfter(ctx, 0, 0); len(revs) != 0 || head != 1 {
		t.Errorf("log entry left behind: %v (head %d)", revs, head)
	}
	if _, ok, _ := st.RevocationAt(ctx, 1); ok {
		t.Error("RevocationAt answers for a collected entry")
	}
}

func (s *suite) testSigningKeys(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{})
	if keys, err := st.SigningKeys(ctx); len(keys) != 0 || err != nil {
		t.Fatalf("keys of a new store = %v, %v", keys, err)
	}
	k1, err := tokens.GenerateKey(tokens.AlgEdDSA, T0)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := tokens.GenerateKey(tokens.AlgES256, T0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	k2.ActivatesAt, k2.Overlap = T0.Add(2*time.Hour), 16*time.Minute
	for _, k := range []tokens.StoredKey{k1, k2} {
		if err := st.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddSigningKey(ctx, k1); err == nil {
		t.Error("a kid already stored was stored again")
	}
	st = s.reopen(t, st, dir, store.Retention{})
	keys, err := st.SigningKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys after reopen = %d, %v", len(keys), err)
	}
	slices.SortFunc(keys, func(a, b tokens.StoredKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for i, want := range []tokens.StoredKey{k1, k2} {
		got := keys[i]
		if got.ID != want.ID || got.Alg != want.Alg || string(got.PKCS8) != string(want.PKCS8) || got.Sealed != want.Sealed ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.ActivatesAt.Equal(want.ActivatesAt) || got.Overlap != want.Overlap {
			t.Errorf("key %d after reopen = %+v, want %+v", i, got, want)
		}
	}
	// A key's record is replaced in place: its private part destroyed, or
	// the key marked compromised; an unknown kid cannot be replaced.
	gone := k1
	gone.PKCS8, gone.CompromisedAt = nil, T0.Add(3*time.Hour)
	if err := st.ReplaceSigningKey(ctx, gone); err != nil {
		t.Fatal(err)
	}
	unknown, _ := tokens.GenerateKey(tokens.AlgEdDSA, T0)
	if err := st.ReplaceSigningKey(ctx, unknown); err == nil {
		t.Error("a kid never stored was replaced")
	}
	st = s.reopen(t, st, dir, store.Retention{})
	keys, _ = st.SigningKeys(ctx)
	if len(keys) != 2 {
		t.Fatalf("%d keys after a replace", len(keys))
	}
	for _, k := range keys {
		if k.ID == k1.ID && (!k.Destroyed() || !k.CompromisedAt.Equal(gone.CompromisedAt)) {
			t.Errorf("replaced key = %+v", k)
		}
	}
}

func (s *suite) testSuspensions(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{})
	if got, err := st.Suspended(ctx, T0); len(got) != 0 || err != nil {
		t.Fatalf("suspensions of a new store = %v, %v", got, err)
	}
	for client, until := range map[string]time.Time{"a": T0.Add(time.Minute), "b": T0.Add(time.Hour)} {
		if err := st.Suspend(ctx, client, until); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Suspend(ctx, "a", T0.Add(2*time.Minute)); err != nil { // suspended again: the later end holds
		t.Fatal(err)
	}
	st = s.reopen(t, st, dir, store.Retention{})
	got, err := st.Suspended(ctx, T0.Add(90*time.Second))
	if err != nil || len(got) != 2 || !got["a"].Equal(T0.Add(2*time.Minute)) || !got["b"].Equal(T0.Add(time.Hour)) {
		t.Fatalf("suspensions after reopen = %v, %v", got, err)
	}
	if got, _ := st.Suspended(ctx, T0.Add(2*time.Minute)); len(got) != 1 || got["b"].IsZero() {
		t.Errorf("an ended suspension is still in force: %v", got)
	}
}

// auditTrail writes n audit records a minute apart from T0, alternately with
// a token write and alone.
func auditTrail(t *testing.T, st Store, n int) []store.AuditEvent {
	t.Helper()
	var evs []store.AuditEvent
	for i := range n {
		ev := store.AuditEvent{Time: T0.Add(time.Duration(i) * time.Minute), Type: store.AuditIssued, Client: "orchestrator", JTI: "t" + string(rune('a'+i)), Reason: "ok"}
		if i%2 == 0 {
			put(t, st, Rec(ev.JTI, nil, T0.Add(time.Hour)), &ev)
		} else if err := st.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func seqs(recs []store.AuditRecord) []uint64 {
	out := []uint64{}
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func (s *suite) testAuditTrail(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	rep, err := st.VerifyAudit(ctx)
	if err != nil || rep != (store.AuditReport{OK: true, First: 1}) {
		t.Fatalf("report of an empty trail = %+v, %v", rep, err)
	}
	evs := auditTrail(t, st, 6)
	// An event in another zone is kept in UTC.
	away := store.AuditEvent{Time: T0.Add(6 * time.Minute).In(time.FixedZone("away", -5*3600)), Type: store.AuditKeyRotated, KID: "k2", Client: "ops",
		Policies: []string{"p1", "p2"}, Depth: 2, Code: "c", Grant: "g", Holder: "h", Subject: "s", Scope: "sc", Root: "r"}
	if err := st.Append(ctx, away); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, away)
	st = s.reopen(t, st, dir, store.Retention{Tokens: time.Hour})

	rep, err = st.VerifyAudit(ctx)
	if err != nil || !rep.OK || rep.Records != 7 || rep.First != 1 || rep.Last != 7 || len(rep.Head) != 64 || rep.BrokenAt != 0 || rep.Problem != "" {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	all, err := st.AuditAfter(ctx, 0, 0)
	if err != nil || len(all) != 7 {
		t.Fatalf("AuditAfter(0, 0) = %d records, %v", len(all), err)
	}
	prev := ""
	for i, r := range all {
		// Every backend chains by the same rule.
		want := store.NextAuditRecord(uint64(i+1), prev, evs[i])
		if r.Time.Location() != time.UTC || !reflect.DeepEqual(r, want) {
			t.Errorf("record %d =\n%+v, want\n%+v", i+1, r, want)
		}
		prev = r.Hash
	}
	if rep.Head != all[6].Hash {
		t.Errorf("head %s is not the last record's hash %s", rep.Head, all[6].Hash)
	}
	recs, _ := st.AuditAfter(ctx, 2, 2)
	if len(recs) != 2 || recs[0].Seq != 3 || recs[1].Prev != recs[0].Hash || recs[0].JTI != "tc" {
		t.Errorf("AuditAfter(2, 2) = %+v", recs)
	}
	if recs, _ := st.AuditAfter(ctx, 7, 0); len(recs) != 0 {
		t.Errorf("AuditAfter(head) = %v", seqs(recs))
	}
	for n, want := range map[int][]uint64{1: {7}, 3: {5, 6, 7}, 7: {1, 2, 3, 4, 5, 6, 7}, 50: {1, 2, 3, 4, 5, 6, 7}} {
		if recs, err := st.AuditTail(ctx, n); err != nil || !reflect.DeepEqual(seqs(recs), want) {
			t.Errorf("AuditTail(%d) = %v, %v; want %v", n, seqs(recs), err, want)
		}
	}
}

// testAuditWithDecisions: PutToken and Revoke write their event with the
// decision; a nil event writes none.
func (s *suite) testAuditWithDecisions(t *testing.T) {
	st := s.open(t, t.TempDir(), store.Retention{Tokens: time.Hour})
	put(t, st, Rec("quiet", nil, T0.Add(time.Hour)), nil)
	revoke(t, st, "quiet", T0.Add(time.Hour))
	if recs, _ := st.AuditAfter(ctx, 0, 0); len(recs) != 0 {
		t.Fatalf("writes without an event appended %d records", len(recs))
	}
	put(t, st, Rec("loud", nil, T0.Add(time.Hour)), &store.AuditEvent{Time: T0, Type: store.AuditIssued, JTI: "loud", Client: "c"})
	if _, _, err := st.Revoke(ctx, store.Revocation{JTI: "loud", ExpiresAt: T0.Add(time.Hour), RevokedAt: T0},
		&store.AuditEvent{Time: T0.Add(time.Second), Type: store.AuditRevoked, JTI: "loud", Client: "c", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.AuditAfter(ctx, 0, 0)
	if len(recs) != 2 || recs[0].Type != store.AuditIssued || recs[0].JTI != "loud" || recs[1].Type != store.AuditRevoked || recs[1].Reason != "done" {
		t.Fatalf("trail = %+v", recs)
	}
	if rep, _ := st.VerifyAudit(ctx); !rep.OK || rep.Records != 2 {
		t.Errorf("report = %+v", rep)
	}
}

func (s *suite) testAuditCollection(t *testing.T) {
	keep := s.open(t, t.TempDir(), store.Retention{Tokens: time.Hour}) // audit kept for ever
	auditTrail(t, keep, 6)
	if res := gc(t, keep, T0.Add(1000*time.Hour)); res.Audit != 0 {
		t.Errorf("audit collected with no audit retention: %+v", res)
	}
	if rep, _ := keep.VerifyAudit(ctx); !rep.OK || rep.Records != 6 || rep.First != 1 {
		t.Errorf("trail kept for ever = %+v", rep)
	}

	dir := t.TempDir()
	r := store.Retention{Tokens: time.Hour, Audit: time.Hour}
	st := s.open(t, dir, r)
	auditTrail(t, st, 6) // records at T0 .. T0+5m
	third, _ := st.AuditAfter(ctx, 2, 1)
	now := T0.Add(time.Hour + 2*time.Minute + time.Second)
	if res := gc(t, st, now); res.Audit != 3 {
		t.Fatalf("GC = %+v, want the 3 records written before T0+2m1s", res)
	}
	if res := gc(t, st, now); res.Audit != 0 {
		t.Fatalf("a second pass collected %+v", res)
	}
	st = s.reopen(t, st, dir, r)
	rep, _ := st.VerifyAudit(ctx)
	if !rep.OK || rep.First != 4 || rep.Last != 7 || rep.Records != 4 {
		t.Fatalf("after collection (3 kept + the collection record): %+v", rep)
	}
	recs, _ := st.AuditTail(ctx, 1)
	if len(recs) != 1 {
		t.Fatalf("tail = %+v", recs)
	}
	prev, _ := st.AuditAfter(ctx, 5, 1)
	want := store.NextAuditRecord(7, prev[0].Hash, store.AuditEvent{Time: now, Type: store.AuditCollected,
		Base: 3, BaseHash: third[0].Hash, Reason: "3 records up to #3, older than 2026-11-27T09:02:01Z, collected"})
	if !reflect.DeepEqual(recs[0], want) {
		t.Errorf("collection record =\n%+v, want\n%+v", recs[0], want)
	}
	if all, _ := st.AuditAfter(ctx, 0, 0); !reflect.DeepEqual(seqs(all), []uint64{4, 5, 6, 7}) {
		t.Errorf("trail after collection = %v", seqs(all))
	}
	// A later collection moves the base on; the newest collection record vouches.
	if res := gc(t, st, T0.Add(time.Hour+5*time.Minute+time.Second)); res.Audit != 3 {
		t.Fatalf("second collection = %+v", res)
	}
	if rep, _ := st.VerifyAudit(ctx); !rep.OK || rep.First != 7 || rep.Last != 8 || rep.Records != 2 {
		t.Errorf("after the second collection: %+v", rep)
	}
	// Collecting every record, the collection records included, still verifies.
	if res := gc(t, st, T0.Add(10*time.Hour)); res.Audit != 2 {
		t.Errorf("GC of the whole trail = %+v", res)
	}
	if rep, _ := st.VerifyAudit(ctx); !rep.OK || rep.First != 9 || rep.Records != 1 {
		t.Errorf("after collecting everything: %+v", rep)
	}
}

// tamper edits the audit trail of the closed store at dir.
func (s *suite) tamper(t *testing.T, dir string, edit func(AuditTrail) error) {
	t.Helper()
	if err := s.b.Tamper(dir, edit); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (s *suite) testAuditTamper(t *testing.T) {
	if s.b.Tamper == nil {
		t.Skip("the backend offers no Tamper hook")
	}
	tests := []struct {
		name  string
		edit  func(AuditTrail) error
		at    uint64
		words string
	}{
		{"an edited reason", func(a AuditTrail) error {
			v, err := a.Record(3)
			if err != nil {
				return err
			}
			return a.PutRecord(3, []byte(strings.Replace(string(v), `"reason":"ok"`, `"reason":"nothing to see"`, 1)))
		}, 3, "record 3 was altered: its content does not match its hash"},
		{"a removed record", func(a AuditTrail) error { return a.DeleteRecord(4) }, 5, "record 5 follows record 3: 1 record(s) missing"},
		{"a re-hashed record", func(a AuditTrail) error {
			// Edit record 2 and fix its own hash: record 3 no longer links to it.
			v, err := a.Record(2)
			if err != nil {
				return err
			}
			r, err := decode(strings.Replace(string(v), `"client":"orchestrator"`, `"client":"mallory"`, 1))
			if err != nil {
				return err
			}
			r.Hash = r.ComputeHash()
			return a.PutRecord(2, encode(r))
		}, 3, "record 3 does not link to record 2: one of the two was rewritten"},
		{"a renumbered record", func(a AuditTrail) error {
			v, err := a.Record(4)
			if err != nil {
				return err
			}
			r, err := decode(string(v))
			if err != nil {
				return err
			}
			r.Seq = 40
			r.Hash = r.ComputeHash()
			return a.PutRecord(4, encode(r))
		}, 4, "record 4 claims to be record 40"},
		{"a truncated tail", func(a AuditTrail) error { return a.DeleteRecord(6) }, 5, "the stored head does not match the last record: records were removed from the end"},
		{"garbage", func(a AuditTrail) error { return a.PutRecord(2, []byte("{")) }, 2, "record 2 is not a valid audit record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := s.open(t, dir, store.Retention{Tokens: time.Hour})
			auditTrail(t, st, 6)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			s.tamper(t, dir, tt.edit)
			st = s.open(t, dir, store.Retention{Tokens: time.Hour})
			rep, err := st.VerifyAudit(ctx)
			if err != nil || rep.OK || rep.BrokenAt != tt.at || rep.Problem != tt.words {
				t.Fatalf("report = %+v, %v; want broken at %d: %q", rep, err, tt.at, tt.words)
			}
		})
	}
}

// testAuditDeletedStart: removing the oldest records and moving the base by
// hand (as collection would) is caught, since no collection record vouches
// for the new base.
func (s *suite) testAuditDeletedStart(t *testing.T) {
	if s.b.Tamper == nil {
		t.Skip("the backend offers no Tamper hook")
	}
	dir := t.TempDir()
	st := s.open(t, dir, store.Retention{Tokens: time.Hour})
	auditTrail(t, st, 6)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s.tamper(t, dir, func(a AuditTrail) error {
		var last store.AuditRecord
		for i := uint64(1); i <= 4; i++ {
			v, err := a.Record(i)
			if err != nil {
				return err
			}
			if last, err = decode(string(v)); err != nil {
				return err
			}
			if err := a.DeleteRecord(i); err != nil {
				return err
			}
		}
		return a.SetBase(store.AuditBase{Seq: 4, Hash: last.Hash})
	})
	st = s.open(t, dir, store.Retention{Tokens: time.Hour})
	rep, _ := st.VerifyAudit(ctx)
	want := "the trail starts after record 4, but no collection record vouches for that: records were deleted from the start"
	if rep.OK || rep.BrokenAt != 5 || rep.Problem != want || rep.First != 5 || rep.Records != 2 {
		t.Fatalf("report = %+v", rep)
	}
}

// snapshot is everything a reader can see of a store.
type snapshot struct {
	ID          string
	Tokens      []store.TokenRecord
	Children    []string
	Held        []string
	Revoked     *store.Revocation
	Revocations []store.Revocation
	Next, Head  uint64
	At          string
	Audit       []store.AuditRecord
	Tail        []store.AuditRecord
	Report      store.AuditReport
	Keys        []string
}

func read(t *testing.T, st Store) snapshot {
	t.Helper()
	var s snapshot
	var err error
	fail := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	s.ID = st.ID()
	recs, err := st.ScanTokens(ctx, "", 100)
	fail("ScanTokens", err)
	for _, r := range recs {
		tok, err := st.Token(ctx, r.JTI)
		fail("Token", err)
		s.Tokens = append(s.Tokens, normal(*tok))
	}
	s.Children, err = st.Children(ctx, "root")
	fail("Children", err)
	held, err := st.HeldBy(ctx, "h", T0)
	fail("HeldBy", err)
	s.Held = jtis(held)
	s.Revoked, err = st.FirstRevoked(ctx, "x", "c1")
	fail("FirstRevoked", err)
	revs, next, head, err := st.RevocationsAfter(ctx, 0, 0)
	fail("RevocationsAfter", err)
	for _, r := range revs {
		s.Revocations = append(s.Revocations, normalRev(r))
	}
	s.Next, s.Head = next, head
	s.At, _, err = st.RevocationAt(ctx, 1)
	fail("RevocationAt", err)
	s.Audit, err = st.AuditAfter(ctx, 0, 0)
	fail("AuditAfter", err)
	s.Tail, err = st.AuditTail(ctx, 2)
	fail("AuditTail", err)
	s.Report, err = st.VerifyAudit(ctx)
	fail("VerifyAudit", err)
	keys, err := st.SigningKeys(ctx)
	fail("SigningKeys", err)
	for _, k := range keys {
		s.Keys = append(s.Keys, k.ID)
	}
	return s
}

// testReadOnly: a store opened read-only answers every read as the store
// does, and refuses every write with store.ErrReadOnly, changing nothing.
func (s *suite) testReadOnly(t *testing.T) {
	if s.b.OpenReadOnly == nil {
		t.Skip("the backend has no read-only open")
	}
	dir := t.TempDir()
	r := store.Retention{Tokens: time.Hour, Audit: time.Hour}
	st := s.open(t, dir, r)
	put(t, st, Rec("root", nil, T0.Add(time.Hour)), &store.AuditEvent{Time: T0, Type: store.AuditIssued, JTI: "root"})
	put(t, st, Rec("c1", []string{"root"}, T0.Add(time.Minute)), &store.AuditEvent{Time: T0, Type: store.AuditIssued, JTI: "c1"})
	if _, _, err := st.Revoke(ctx, store.Revocation{JTI: "c1", ExpiresAt: T0.Add(time.Minute), RevokedAt: T0, Reason: "r", By: "ops"},
		&store.AuditEvent{Time: T0, Type: store.AuditRevoked, JTI: "c1"}); err != nil {
		t.Fatal(err)
	}
	key, err := tokens.GenerateKey(tokens.AlgEdDSA, T0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	want := read(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := s.b.OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { _ = ro.Close() })
	if got := read(t, ro); !reflect.DeepEqual(got, want) {
		t.Errorf("read-only store reads\n%+v\nwhere the store reads\n%+v", got, want)
	}
	key2, _ := tokens.GenerateKey(tokens.AlgEdDSA, T0)
	ev := &store.AuditEvent{Time: T0, Type: store.AuditIssued, JTI: "new"}
	writes := map[string]func() error{
		"PutToken": func() error { return ro.PutToken(ctx, Rec("new", []string{"root"}, T0.Add(time.Hour)), ev) },
		"Revoke": func() error {
			_, _, err := ro.Revoke(ctx, store.Revocation{JTI: "root", ExpiresAt: T0.Add(time.Hour), RevokedAt: T0}, ev)
			return err
		},
		"Append":            func() error { return ro.Append(ctx, *ev) },
		"AddSigningKey":     func() error { return ro.AddSigningKey(ctx, key2) },
		"ReplaceSigningKey": func() error { return ro.ReplaceSigningKey(ctx, key) },
		"Suspend":           func() error { return ro.Suspend(ctx, "a", T0) },
		"GC": func() error {
			_, err := ro.GC(T0.Add(100 * time.Hour))
			return err
		},
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v, want store.ErrReadOnly", name, err)
		}
	}
	if got := read(t, ro); !reflect.DeepEqual(got, want) {
		t.Errorf("refused writes changed what the read-only store reads:\n%+v", got)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	st = s.open(t, dir, r)
	if got := read(t, st); !reflect.DeepEqual(got, want) {
		t.Errorf("refused writes changed the store:\n%+v", got)
	}
}

func decode(v string) (store.AuditRecord, error) {
	var r store.AuditRecord
	err := json.Unmarshal([]byte(v), &r)
	return r, err
}

func encode(r store.AuditRecord) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}
