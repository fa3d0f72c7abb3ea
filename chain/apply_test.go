package chain

import (
	"testing"
	"time"
)

// TestAnOlderAnswerNeverErasesANewerOne: two polls start from the same cursor;
// the one that applies second (here a reset snapshot taken before a
// revocation) must not replace what the first applied; and a reset never
// makes the verifier forget a revocation it knew (a restored store may have
// lost it).
func TestAnOlderAnswerNeverErasesANewerOne(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := &Verifier{cfg: VerifierConfig{Leeway: 5 * time.Second}, revoked: map[string]int64{}}
	exp := now.Add(time.Hour).Unix()
	newer := &feedAnswer{Cursor: "s.5", Reset: true}
	newer.Revocations = append(newer.Revocations, struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}{"x", exp})
	older := &feedAnswer{Cursor: "s.4", Reset: true}

	v.apply("", newer, now)
	v.apply("", older, now)
	if !v.Revoked("x") || v.cursor != "s.5" {
		t.Fatalf("older snapshot applied over a newer one: revoked=%v cursor=%s", v.revoked, v.cursor)
	}
	v.apply("s.5", &feedAnswer{Cursor: "t.1", Reset: true}, now)
	if !v.Revoked("x") || v.cursor != "t.1" {
		t.Fatalf("a reset forgot a revocation: revoked=%v cursor=%s", v.revoked, v.cursor)
	}
	if v.LastSync() != now {
		t.Errorf("LastSync = %v", v.LastSync())
	}
	v.apply("t.1", &feedAnswer{Cursor: "t.2", More: true}, now.Add(time.Second))
	if v.LastSync() != now {
		t.Error("a page with more to come counted as caught up")
	}
	// A later answer from the current cursor applies, and expired entries go.
	v.apply("t.2", &feedAnswer{Cursor: "s.6"}, now.Add(2*time.Hour))
	if v.Revoked("x") || v.cursor != "s.6" {
		t.Errorf("revoked=%v cursor=%s", v.revoked, v.cursor)
	}
}
