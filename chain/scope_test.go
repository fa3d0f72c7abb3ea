package chain

import (
	"errors"
	"reflect"
	"testing"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		p, c string
		want bool
	}{
		{"db:read:orders", "db:read:orders", true},
		{"db:read:*", "db:read:orders", true},
		{"db:read:*", "db:read:*", true},
		{"db:read:*", "db:read:orders:archive", true},
		{"db:*", "db:read:*", true},
		{"*", "anything:at:all", true},
		{"*", "*", true},
		{"db:read:*", "db:write:orders", false},
		{"db:read:*", "db:read", false},
		{"db:read:*", "db:readx:orders", false},
		{"db:read:*", "db:*", false},
		{"db:read:orders", "db:read:*", false},
		{"db:read:orders", "db:read:orders2", false},
		{"db:read:orders", "DB:read:orders", false},
		{"db*", "dbx", false},                    // only ":*" is a wildcard
		{"db:*:orders", "db:read:orders", false}, // a star in the middle is literal
		{"tools:*", "*", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := Covers(tt.p, tt.c); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.p, tt.c, got, tt.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"db:read:* tools:search", []string{"db:read:*", "tools:search"}},
		{"a b a", []string{"a", "b"}},
		{"!#[]~", []string{"!#[]~"}},
	}
	for _, tt := range good {
		got, err := ParseScope(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseScope(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []string{" a", "a ", "a  b", "a\tb", "a\nb", `a"b`, `a\b`, "caf\u00e9", "db\uff1aread", "a\x00", "a\x7f"}
	for _, in := range bad {
		if _, err := ParseScope(in); !errors.Is(err, ErrMalformedScope) {
			t.Errorf("ParseScope(%q) err = %v, want ErrMalformedScope", in, err)
		}
	}
	many := ""
	for i := 0; i <= MaxScopes; i++ {
		many += "s "
	}
	if _, err := ParseScope(many[:len(many)-1]); !errors.Is(err, ErrMalformedScope) {
		t.Errorf("more than MaxScopes accepted")
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		a, b, want []string
	}{
		{[]string{"db:read:*", "tools:*"}, []string{"db:read:orders", "tools:search", "mail:send"}, []string{"db:read:orders", "tools:search"}},
		{[]string{"db:*"}, []string{"db:read:*", "db:read:orders"}, []string{"db:read:*"}},
		{[]string{"db:read:orders"}, []string{"db:*"}, []string{"db:read:orders"}},
		{[]string{"*"}, []string{"a", "b"}, []string{"a", "b"}},
		{[]string{"a"}, []string{"b"}, nil},
		{nil, []string{"a"}, nil},
		{[]string{"db:read:*", "db:read:orders"}, []string{"db:read:orders"}, []string{"db:read:orders"}},
	}
	for _, tt := range tests {
		got := Intersect(tt.a, tt.b)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Intersect(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		// Every result scope is granted by both sides.
		for _, s := range got {
			if !CoveredBy(tt.a, s) || !CoveredBy(tt.b, s) {
				t.Errorf("Intersect(%v, %v) produced %q not covered by both", tt.a, tt.b, s)
			}
		}
	}
}

func TestUncoveredAndMissing(t *testing.T) {
	if s, bad := Uncovered([]string{"db:read:*"}, []string{"db:read:x", "db:write:x"}); !bad || s != "db:write:x" {
		t.Errorf("Uncovered = %q %v", s, bad)
	}
	if _, bad := Uncovered([]string{"db:read:*"}, []string{"db:read:x"}); bad {
		t.Error("covered scope reported")
	}
	if a, bad := Missing([]string{"https://a"}, []string{"https://a", "https://b"}); !bad || a != "https://b" {
		t.Errorf("Missing = %q %v", a, bad)
	}
	if got := Common([]string{"a", "b", "a"}, []string{"a"}); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("Common = %v", got)
	}
}
