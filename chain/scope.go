package chain

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// ErrMalformedScope reports a scope string that is not a space-separated list of
// RFC 6749 §3.3 scope tokens (printable ASCII except space, '"' and '\').
var ErrMalformedScope = errors.New("malformed scope")

// ParseScope splits a space-separated scope string into its tokens, keeping the
// first occurrence of each. It refuses empty tokens (two spaces in a row, leading
// or trailing space), characters outside RFC 6749 §3.3, more than MaxScopes
// tokens, a token longer than MaxScopeLength and a string longer than
// MaxScopeString. The empty string parses to no scopes.
func ParseScope(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxScopeString {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedScope, MaxScopeString)
	}
	parts := strings.Split(s, " ")
	if len(parts) > MaxScopes {
		return nil, fmt.Errorf("%w: more than %d scopes", ErrMalformedScope, MaxScopes)
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%w: empty scope token (scopes are separated by single spaces)", ErrMalformedScope)
		}
		if len(p) > MaxScopeLength {
			return nil, fmt.Errorf("%w: scope %q is longer than %d bytes", ErrMalformedScope, jwt.Excerpt(p), MaxScopeLength)
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, fmt.Errorf("%w: scope %q has a character outside RFC 6749 §3.3", ErrMalformedScope, jwt.Excerpt(p))
			}
		}
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// FormatScope joins scope tokens with single spaces, the wire form of the
// "scope" claim and parameter.
func FormatScope(scopes []string) string { return strings.Join(scopes, " ") }

// Covers reports whether holding scope p grants scope c: p == c, or p is "*", or
// p ends in ":*" and c starts with p without its "*" ("db:read:*" covers
// "db:read:orders" and "db:read:*", not "db:write:orders" nor "db:read").
func Covers(p, c string) bool {
	if p == c {
		return true
	}
	prefix, wild := Wildcard(p)
	return wild && strings.HasPrefix(c, prefix)
}

// Wildcard is the one reading of a scope's wildcard, which coverage and the
// policy package's scope patterns share: "*" grants every scope (prefix ""),
// "a:b:*" every scope that starts with "a:b:" (prefix "a:b:"); any other
// scope, an inner "*" included, is a literal (wild false).
func Wildcard(scope string) (prefix string, wild bool) {
	if scope == "*" {
		return "", true
	}
	if p, ok := strings.CutSuffix(scope, ":*"); ok {
		return p + ":", true
	}
	return "", false
}

// CoveredBy reports whether some scope in set covers c.
func CoveredBy(set []string, c string) bool {
	for _, p := range set {
		if Covers(p, c) {
			return true
		}
	}
	return false
}

// Uncovered returns the first scope of want that no scope of have covers, and
// false when every scope of want is covered.
func Uncovered(have, want []string) (string, bool) {
	for _, c := range want {
		if !CoveredBy(have, c) {
			return c, true
		}
	}
	return "", false
}

// Intersect returns the scopes granted by both a and b, wildcard-aware: for each
// pair the narrower scope is kept when one covers the other ("db:*" with
// "db:read:*" gives "db:read:*"). The result is minimal (no scope in it is
// covered by another) and ordered by first appearance in a.
func Intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			var n string
			switch {
			case Covers(x, y):
				n = y
			case Covers(y, x):
				n = x
			default:
				continue
			}
			if !contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return minimize(out)
}

// minimize drops every scope that another, different scope in the list covers.
func minimize(s []string) []string {
	out := s[:0:0]
	for i, c := range s {
		redundant := false
		for j, p := range s {
			if i != j && p != c && Covers(p, c) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
