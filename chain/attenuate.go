package chain

import (
	"errors"
	"fmt"
	"time"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Grant is what a token, or a client's registration, may grant: scopes
// (wildcard-aware) and audiences (matched exactly).
type Grant struct {
	Scopes    []string
	Audiences []string
}

// Bounds is where a new token's grant must stay: within its parent's (nil
// for a root token) and within its new holder's ceiling (its registration).
// A child never has more scope or audience than either.
type Bounds struct {
	Parent  *Grant
	Ceiling Grant
}

// ErrWidening is matched by every *WideningError.
var ErrWidening = errors.New("beyond what the token may grant")

// ErrTooManyAudiences refuses a request naming more than MaxScopes audiences.
var ErrTooManyAudiences = fmt.Errorf("more than %d audiences requested", MaxScopes)

// WideningError says which value crossed which bound.
type WideningError struct {
	// Claim is "scope" or "aud".
	Claim string
	// Value is the value beyond the bound; empty when nothing was requested
	// and the default (the parent's values narrowed to the ceiling) is empty.
	Value string
	// ByParent says the parent's grant is the bound crossed; otherwise it is
	// the new holder's ceiling.
	ByParent bool
}

// Error names the claim, the value and the bound it crossed.
func (e *WideningError) Error() string {
	bound := "the holder's registration"
	if e.ByParent {
		bound = "the parent token"
	}
	if e.Value == "" {
		return fmt.Sprintf("no %s of the parent token is within the holder's registration", e.Claim)
	}
	return fmt.Sprintf("%s %q is beyond %s", e.Claim, jwt.Excerpt(e.Value), bound)
}

// Is makes errors.Is(err, ErrWidening) true.
func (e *WideningError) Is(target error) bool { return target == ErrWidening }

// Scopes decides a new token's scopes. Requested scopes must each be covered
// by a parent scope (unless this is a root) and by a ceiling scope; with none
// requested, the result is the parent's scopes narrowed to the ceiling
// (wildcard-aware), or the ceiling itself for a root, and an empty narrowing
// is refused.
func (b Bounds) Scopes(requested []string) ([]string, error) {
	if len(requested) == 0 {
		if b.Parent == nil {
			return b.Ceiling.Scopes, nil
		}
		got := Intersect(b.Parent.Scopes, b.Ceiling.Scopes)
		if len(got) == 0 {
			return nil, &WideningError{Claim: "scope"}
		}
		return got, nil
	}
	if b.Parent != nil {
		if s, bad := Uncovered(b.Parent.Scopes, requested); bad {
			return nil, &WideningError{Claim: "scope", Value: s, ByParent: true}
		}
	}
	if s, bad := Uncovered(b.Ceiling.Scopes, requested); bad {
		return nil, &WideningError{Claim: "scope", Value: s}
	}
	return requested, nil
}

// Audiences is Scopes for audiences and resource indicators, matched
// exactly; repeated values count once, and at most MaxScopes may be asked for.
func (b Bounds) Audiences(requested []string) ([]string, error) {
	if len(requested) > MaxScopes {
		return nil, ErrTooManyAudiences
	}
	want := Dedupe(requested)
	if len(want) == 0 {
		if b.Parent == nil {
			return b.Ceiling.Audiences, nil
		}
		got := Common(b.Parent.Audiences, b.Ceiling.Audiences)
		if len(got) == 0 {
			return nil, &WideningError{Claim: "aud"}
		}
		return got, nil
	}
	if b.Parent != nil {
		if a, bad := Missing(b.Parent.Audiences, want); bad {
			return nil, &WideningError{Claim: "aud", Value: a, ByParent: true}
		}
	}
	if a, bad := Missing(b.Ceiling.Audiences, want); bad {
		return nil, &WideningError{Claim: "aud", Value: a}
	}
	return want, nil
}

// Expiry is the exp of a token derived from another: its lifetime ttl from
// now, cut at limit (the parent's exp, or an external subject token's
// exp), since no token outlives what it came from. limit is required: a
// zero limit (absent) cuts everything, so a missing exp can never lengthen
// a life.
func Expiry(now time.Time, ttl time.Duration, limit jwt.NumericDate) jwt.NumericDate {
	return min(jwt.At(now.Add(ttl)), limit)
}

// Derive returns the chain part of a child of parent held by holder: the
// subject and its issuer (sub_iss) unchanged; the act chain grown by the new holder when the holder
// changes (unchanged for a down-scoped copy); the lineage grown by the
// parent's jti. The issuer, scope, audience, times and binding are the
// caller's to set (Bounds, Expiry): a child is always its issuer's own
// token, never one carrying its parent's iss. The child's depth is
// len(Lineage); the caller bounds it.
func Derive(parent *jwt.Claims, holder string) *jwt.Claims {
	act := parent.Act
	if holder != parent.ClientID {
		act = &jwt.Actor{Subject: holder, Act: parent.Act}
	}
	lineage := make([]string, 0, len(parent.Lineage)+1)
	lineage = append(append(lineage, parent.Lineage...), parent.ID)
	return &jwt.Claims{Subject: parent.Subject, SubjectIssuer: parent.SubjectIssuer, ClientID: holder, Act: act, Lineage: lineage}
}

// Missing returns the first value of want that is not in allowed, and false when
// want ⊆ allowed. Audiences and resource indicators are matched exactly.
func Missing(allowed, want []string) (string, bool) {
	for _, w := range want {
		if !contains(allowed, w) {
			return w, true
		}
	}
	return "", false
}

// Common returns the values present in both a and b, in a's order, without
// duplicates: the default audience of a child narrowed to its holder.
func Common(a, b []string) []string {
	var out []string
	for _, v := range a {
		if contains(b, v) && !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Dedupe returns s without repeated values, keeping first occurrences.
func Dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
