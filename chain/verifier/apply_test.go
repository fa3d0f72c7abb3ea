package verifier

import (
	"testing"
	"time"
)

// TestAnOlderAnswerNeverErasesANewerOne: two polls start from the same cursor;
// the one that applies second (here a reset snapshot taken before a
// revocation) must not replace what the first applied; and a reset never
// makes the feed forget a revocation it knew (a restored store may have
// lost it).
func TestAnOlderAnswerNeverErasesANewerOne(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := newFeed(Config{Leeway: 5 * time.Second}, "", nil)
	exp := now.Add(time.Hour).Unix()
	newer := &feedAnswer{Cursor: "s.5", Reset: true}
	newer.Revocations = append(newer.Revocations, feedEntry{"x", exp})
	older := &feedAnswer{Cursor: "s.4", Reset: true}
	revoked := func() bool { _, ok := f.FirstRevoked([]string{"x"}); return ok }

	f.apply("", newer, now)
	f.apply("", older, now)
	if !revoked() || f.cursor != "s.5" {
		t.Fatalf("older snapshot applied over a newer one: revoked=%v cursor=%s", f.revoked, f.cursor)
	}
	f.apply("s.5", &feedAnswer{Cursor: "t.1", Reset: true}, now)
	if !revoked() || f.cursor != "t.1" {
		t.Fatalf("a reset forgot a revocation: revoked=%v cursor=%s", f.revoked, f.cursor)
	}
	if f.LastSync() != now {
		t.Errorf("LastSync = %v", f.LastSync())
	}
	f.apply("t.1", &feedAnswer{Cursor: "t.2", More: true}, now.Add(time.Second))
	if f.LastSync() != now {
		t.Error("a page with more to come counted as caught up")
	}
	// A later answer from the current cursor applies, and expired entries go.
	f.apply("t.2", &feedAnswer{Cursor: "s.6"}, now.Add(2*time.Hour))
	if revoked() || f.cursor != "s.6" {
		t.Errorf("revoked=%v cursor=%s", f.revoked, f.cursor)
	}
}
