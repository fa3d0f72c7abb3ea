package chain

import (
	"strings"
	"testing"
)

// FuzzParseScope checks that any string either fails with ErrMalformedScope or
// parses into distinct RFC 6749 scope tokens that re-parse to themselves.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"", "db:read:*", "a b c", "a  b", " a", "db\uff1aread", "a\tb", "*", "x:*:y", `a"b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseScope(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tok := range got {
			if tok == "" || seen[tok] || strings.ContainsAny(tok, " \t\n\"\\") {
				t.Fatalf("ParseScope(%q) produced bad token %q", s, tok)
			}
			for i := 0; i < len(tok); i++ {
				if tok[i] < 0x21 || tok[i] > 0x7e {
					t.Fatalf("non-ASCII byte in %q", tok)
				}
			}
			seen[tok] = true
		}
		again, err := ParseScope(FormatScope(got))
		if err != nil || len(again) != len(got) {
			t.Fatalf("round trip of %q: %v %v", s, again, err)
		}
	})
}

// FuzzAttenuation checks the laws narrowing must obey for any pair of scope
// sets: every scope Intersect keeps is covered by both sides, and coverage is
// transitive along a chain.
func FuzzAttenuation(f *testing.F) {
	f.Add("db:read:* tools:*", "db:read:orders tools:search mail:send", "db:read:orders")
	f.Add("*", "a:* b", "a:x")
	f.Add("db:*", "db:read:*", "db:write:x")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		pa, err1 := ParseScope(a)
		pb, err2 := ParseScope(b)
		pc, err3 := ParseScope(c)
		if err1 != nil || err2 != nil || err3 != nil {
			return
		}
		for _, s := range Intersect(pa, pb) {
			if !CoveredBy(pa, s) || !CoveredBy(pb, s) {
				t.Fatalf("Intersect(%q, %q) kept %q not granted by both", a, b, s)
			}
		}
		// If every c is covered by b and every b by a, every c is covered by a.
		if _, bad := Uncovered(pb, pc); !bad {
			if _, bad := Uncovered(pa, pb); !bad {
				if s, bad := Uncovered(pa, pc); bad {
					t.Fatalf("coverage not transitive: %q ⊒ %q ⊒ %q but %q escapes", a, b, c, s)
				}
			}
		}
	})
}
