package chain

import (
	"errors"
	"fmt"
	"time"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Expect is what a JWT's registered claims must satisfy, stated explicitly by
// whoever reads the token. Every reader calls Check with its own
// expectations — the token endpoint for Mandate's tokens, every resource
// server's verifier, `mandate inspect`, and the checks of a trusted issuer's
// token, a private_key_jwt client assertion and an ephemeral agent's token —
// so a date, an issuer or an audience means the same thing everywhere.
type Expect struct {
	// Issuer, when set, must be the token's iss exactly.
	Issuer string
	// Audiences, when set, are the audiences the reader answers to: the
	// token's aud must include at least one of them.
	Audiences []string
	// Now is the reading of the reader's clock.
	Now time.Time
	// Leeway is how far the token's maker's clock may run ahead of ours:
	// nbf and iat may be up to Leeway after Now.
	Leeway time.Duration
	// ExpiryLeeway is how long after exp the token is still accepted: a
	// resource server's allowance for clock skew, never more than MaxLeeway
	// (a larger value counts as MaxLeeway). Mandate itself allows none on the
	// tokens it is shown.
	ExpiryLeeway time.Duration
	// MaxLifetime, when set, bounds exp - iat (an agent token made for one
	// exchange); it needs iat (RequireIssuedAt) to mean anything.
	MaxLifetime time.Duration
	// MaxAhead, when set, bounds how far exp may be past Now (plus Leeway):
	// a client assertion is made for one request.
	MaxAhead time.Duration
	// RequireIssuedAt makes iat required (exp always is).
	RequireIssuedAt bool
	// MaxDepth bounds a Mandate token's lineage (Check): chain.MaxDepth when
	// zero, and never more.
	MaxDepth int
}

// Errors of the claim checks; a ClaimError wraps exactly one of them.
var (
	// ErrMalformedToken: not a well-formed token (its encoding, a required
	// claim missing, or an act chain or lineage that breaks the chain
	// invariants).
	ErrMalformedToken = errors.New("malformed token")
	// ErrWrongIssuer: iss is not the issuer expected.
	ErrWrongIssuer = errors.New("token from another issuer")
	// ErrWrongAudience: aud does not include the audience expected.
	ErrWrongAudience = errors.New("token not meant for this audience")
	// ErrNotYetValid: nbf or iat is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("token is not valid yet")
	// ErrExpired: exp has passed (beyond the expiry leeway).
	ErrExpired = errors.New("token has expired")
	// ErrTooLongLived: the token lives longer than the reader accepts.
	ErrTooLongLived = errors.New("token lives too long")
)

// ClaimError is a failed claim check. Its Error reads as a resource server
// reports it ("token has expired", "token not meant for this audience: aud
// does not include ..."); Phrase reads after the token's name in an OAuth
// error description ("subject_token has expired"). Claim says which claim
// failed, for a reader that words its refusals its own way.
type ClaimError struct {
	// Err is the sentinel: ErrMalformedToken, ErrWrongIssuer, ...
	Err error
	// Claim is the claim at fault: "exp", "nbf", "iat", "iss" or "aud".
	Claim  string
	detail string
	phrase string
}

// Error reads as a resource server reports the refusal.
func (e *ClaimError) Error() string {
	if e.detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.detail
}

// Unwrap makes errors.Is(err, ErrExpired) and the like work.
func (e *ClaimError) Unwrap() error { return e.Err }

// Phrase says what is wrong, to follow the name of the token in a sentence.
func (e *ClaimError) Phrase() string { return e.phrase }

func claimError(sentinel error, claim, detail, phrase string) *ClaimError {
	return &ClaimError{Err: sentinel, Claim: claim, detail: detail, phrase: phrase}
}

// CheckRegistered checks a JWT's registered claims against the
// expectations, in the order every verifier reports faults: a required claim
// missing (malformed), issuer, audience, not yet valid, expired, lifetime.
// It returns a *ClaimError.
func (e Expect) CheckRegistered(r jwt.Registered) error {
	switch {
	case r.Expiry.IsZero():
		return claimError(ErrMalformedToken, "exp", "exp is required", "has no exp: exp is required")
	case e.RequireIssuedAt && r.IssuedAt.IsZero():
		return claimError(ErrMalformedToken, "iat", "iat is required", "has no iat: iat is required")
	case e.Issuer != "" && r.Issuer != e.Issuer:
		return claimError(ErrWrongIssuer, "iss", fmt.Sprintf("iss %q", jwt.Excerpt(r.Issuer)), "was issued by another issuer")
	}
	if len(e.Audiences) > 0 && !containsAny(r.Audience, e.Audiences) {
		d := fmt.Sprintf("aud does not include %q", e.Audiences[0])
		for _, a := range e.Audiences[1:] {
			d += fmt.Sprintf(" nor %q", a)
		}
		return claimError(ErrWrongAudience, "aud", d, d)
	}
	latest := e.Now.Add(e.Leeway)
	if r.NotBefore.Time().After(latest) {
		return claimError(ErrNotYetValid, "nbf", "", "is not valid yet")
	}
	if r.IssuedAt.Time().After(latest) {
		return claimError(ErrNotYetValid, "iat", "", "is not valid yet")
	}
	if err := e.CheckExpiry(r.Expiry.Time()); err != nil {
		return err
	}
	if e.MaxAhead > 0 && r.Expiry.Time().After(latest.Add(e.MaxAhead)) {
		d := fmt.Sprintf("exp is more than %s ahead", e.MaxAhead)
		return claimError(ErrTooLongLived, "exp", d, d)
	}
	if e.MaxLifetime > 0 && !r.IssuedAt.IsZero() && r.Expiry.Time().Sub(r.IssuedAt.Time()) > e.MaxLifetime {
		d := fmt.Sprintf("lives longer than %s", e.MaxLifetime)
		return claimError(ErrTooLongLived, "exp", d, d)
	}
	return nil
}

// CheckExpiry is the one check that changes with time: a token verified
// earlier (and cached) is checked again with it on every use.
func (e Expect) CheckExpiry(exp time.Time) error {
	if !e.Now.Before(exp.Add(min(e.ExpiryLeeway, MaxLeeway))) {
		return claimError(ErrExpired, "exp", "", "has expired")
	}
	return nil
}

func containsAny(have jwt.Audience, want []string) bool {
	for _, w := range want {
		if have.Contains(w) {
			return true
		}
	}
	return false
}

// Check applies every rule of a Mandate token that needs neither a key nor
// revocation data, to claims whose signature has been verified: the chain
// structure (act, lineage, depth), the scope grammar, then the registered
// claims (CheckRegistered). The token endpoint and every resource-server
// verifier call it, and nothing else, for these rules. Structure and scope
// faults wrap ErrMalformedChain and ErrMalformedScope; the rest are
// *ClaimError.
func (e Expect) Check(c *jwt.Claims) (*Chain, error) {
	depth := e.MaxDepth
	if depth <= 0 || depth > MaxDepth {
		depth = MaxDepth
	}
	if err := CheckStructure(c, depth); err != nil {
		return nil, err
	}
	scopes, err := ParseScope(c.Scope)
	if err != nil {
		return nil, err
	}
	if err := e.CheckRegistered(c.RegisteredClaims()); err != nil {
		return nil, err
	}
	return newChain(c, scopes), nil
}
