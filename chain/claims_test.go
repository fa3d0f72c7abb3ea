package chain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

var now = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) jwt.NumericDate { return jwt.At(now.Add(d)) }

// TestCheckRegistered: every expectation, one row per way to break it, with
// the sentinel and the words each reader reports.
func TestCheckRegistered(t *testing.T) {
	base := jwt.Registered{Issuer: "https://m.example", Subject: "a", Audience: jwt.Audience{"https://api.example"},
		IssuedAt: at(0), NotBefore: at(0), Expiry: at(time.Minute)}
	expect := chain.Expect{Issuer: "https://m.example", Audiences: []string{"https://api.example"}, Now: now, Leeway: 5 * time.Second}
	edit := func(f func(*jwt.Registered)) jwt.Registered { r := base; f(&r); return r }
	tests := []struct {
		name   string
		e      chain.Expect
		r      jwt.Registered
		want   error
		phrase string
	}{
		{"valid", expect, base, nil, ""},
		{"no exp", expect, edit(func(r *jwt.Registered) { r.Expiry = 0 }), chain.ErrMalformedToken, "has no exp: exp is required"},
		{"no iat when required", func() chain.Expect { e := expect; e.RequireIssuedAt = true; return e }(),
			edit(func(r *jwt.Registered) { r.IssuedAt = 0 }), chain.ErrMalformedToken, "has no iat"},
		{"another issuer", expect, edit(func(r *jwt.Registered) { r.Issuer = "https://evil.example" }), chain.ErrWrongIssuer, "was issued by another issuer"},
		{"another audience", expect, edit(func(r *jwt.Registered) { r.Audience = jwt.Audience{"https://other.example"} }), chain.ErrWrongAudience, `aud does not include "https://api.example"`},
		{"no audience", expect, edit(func(r *jwt.Registered) { r.Audience = nil }), chain.ErrWrongAudience, "aud does not include"},
		{"nbf beyond the leeway", expect, edit(func(r *jwt.Registered) { r.NotBefore = at(6 * time.Second) }), chain.ErrNotYetValid, "is not valid yet"},
		{"iat beyond the leeway", expect, edit(func(r *jwt.Registered) { r.IssuedAt = at(time.Hour) }), chain.ErrNotYetValid, "is not valid yet"},
		{"exp reached", expect, edit(func(r *jwt.Registered) { r.Expiry = at(0) }), chain.ErrExpired, "has expired"},
		{"exp passed, within the expiry leeway", func() chain.Expect { e := expect; e.ExpiryLeeway = 5 * time.Second; return e }(),
			edit(func(r *jwt.Registered) { r.Expiry = at(-4 * time.Second) }), nil, ""},
		{"exp passed, beyond the expiry leeway", func() chain.Expect { e := expect; e.ExpiryLeeway = 5 * time.Second; return e }(),
			edit(func(r *jwt.Registered) { r.Expiry = at(-5 * time.Second) }), chain.ErrExpired, "has expired"},
		{"an expiry leeway beyond MaxLeeway counts as MaxLeeway", func() chain.Expect { e := expect; e.ExpiryLeeway = time.Hour; return e }(),
			edit(func(r *jwt.Registered) { r.Expiry = at(-chain.MaxLeeway) }), chain.ErrExpired, "has expired"},
		{"an assertion's iat does not bound it (MaxAhead only)", func() chain.Expect { e := expect; e.MaxAhead = 5 * time.Minute; return e }(),
			edit(func(r *jwt.Registered) { r.IssuedAt = at(-time.Hour) }), nil, ""},
		{"exp too far ahead", func() chain.Expect { e := expect; e.MaxAhead = 5 * time.Minute; return e }(),
			edit(func(r *jwt.Registered) { r.Expiry = at(time.Hour) }), chain.ErrTooLongLived, "exp is more than 5m0s ahead"},
		{"lives too long (exp - iat)", func() chain.Expect { e := expect; e.MaxLifetime = 5 * time.Minute; return e }(),
			edit(func(r *jwt.Registered) { r.IssuedAt = at(-time.Hour) }), chain.ErrTooLongLived, "lives longer than 5m0s"},
		{"any of several audiences", func() chain.Expect { e := expect; e.Audiences = []string{"x", "https://api.example"}; return e }(), base, nil, ""},
		// Faults are reported in one order, whatever the token: issuer before time.
		{"wrong issuer and expired", expect, edit(func(r *jwt.Registered) { r.Issuer, r.Expiry = "x", at(-time.Hour) }), chain.ErrWrongIssuer, "was issued by"},
	}
	for _, tt := range tests {
		err := tt.e.CheckRegistered(tt.r)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		var ce *chain.ClaimError
		if !errors.Is(err, tt.want) || !errors.As(err, &ce) || !strings.Contains(ce.Phrase(), tt.phrase) {
			t.Errorf("%s: %v (phrase %q), want %v with %q", tt.name, err, phraseOf(err), tt.want, tt.phrase)
		}
	}
}

func phraseOf(err error) string {
	var ce *chain.ClaimError
	if errors.As(err, &ce) {
		return ce.Phrase()
	}
	return ""
}

// TestCheckAppliesTheChainRulesFirst: Check refuses a malformed chain or scope
// before looking at time or issuer, and returns the Chain of a valid token.
func TestCheckAppliesTheChainRulesFirst(t *testing.T) {
	e := chain.Expect{Issuer: "https://m.example", Now: now, MaxDepth: 2}
	good := jwt.Claims{Issuer: "https://m.example", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "db", ID: "g", Scope: "db:read:*",
		Act: &jwt.Actor{Subject: "db", Act: &jwt.Actor{Subject: "res"}}, Lineage: []string{"r", "c"},
		IssuedAt: at(0), NotBefore: at(0), Expiry: at(time.Minute), Cnf: &jwt.Confirmation{JKT: "k"}}
	c, err := e.Check(&good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != "r" || c.Depth != 2 || c.JKT != "k" || !c.HasScope("db:read:orders") || strings.Join(c.Ancestry(), ",") != "r,c,g" {
		t.Errorf("chain = %+v", c)
	}
	for name, tt := range map[string]struct {
		edit func(*jwt.Claims)
		want error
	}{
		"too deep, and expired":        {func(c *jwt.Claims) { c.Lineage = []string{"a", "b", "c"}; c.Expiry = at(-time.Hour) }, chain.ErrMalformedChain},
		"bad scope, wrong issuer":      {func(c *jwt.Claims) { c.Scope = "a  b"; c.Issuer = "x" }, chain.ErrMalformedScope},
		"wrong issuer, expired":        {func(c *jwt.Claims) { c.Issuer = "x"; c.Expiry = at(-time.Hour) }, chain.ErrWrongIssuer},
		"depth 0 means chain.MaxDepth": {func(c *jwt.Claims) {}, nil},
	} {
		cl := good
		cl.Lineage = append([]string{}, good.Lineage...)
		tt.edit(&cl)
		ee := e
		if tt.want == nil {
			ee.MaxDepth = 0
		}
		if _, err := ee.Check(&cl); !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
}
