package verifier

import (
	"errors"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens"
)

// Errors a resource server can branch on with errors.Is. Each Verify error
// wraps exactly one of them (a revocation is a *RevokedError, which matches
// ErrRevoked). The claim errors are package chain's, named here too so a
// resource server needs one import.
var (
	// ErrMalformedToken: not a well-formed Mandate token (encoding, claims, or
	// an act chain or lineage that breaks the chain invariants).
	ErrMalformedToken = chain.ErrMalformedToken
	// ErrInvalidSignature: the signature does not verify, its algorithm is not
	// allowed, or no published key has its kid.
	ErrInvalidSignature = errors.New("invalid token signature")
	// ErrWrongIssuer: the token's iss is not the configured issuer.
	ErrWrongIssuer = chain.ErrWrongIssuer
	// ErrWrongAudience: the token's aud does not include this resource server.
	ErrWrongAudience = chain.ErrWrongAudience
	// ErrNotYetValid: the token's nbf or iat is in the future (beyond the leeway).
	ErrNotYetValid = chain.ErrNotYetValid
	// ErrExpired: the token's exp has passed (beyond the leeway).
	ErrExpired = chain.ErrExpired
	// ErrRevoked: the token or one of its ancestors is revoked.
	ErrRevoked = errors.New("token has been revoked")
	// ErrStaleRevocations: the revocation feed has not been synced within the
	// configured bound, so the verifier cannot vouch for any token (fail closed).
	ErrStaleRevocations = errors.New("revocation data is stale")
	// ErrFeedCredentials: Mandate refused this resource server's client id
	// and secret at the revocation feed (401 or 403). Unlike Mandate being
	// away, waiting does not fix it: Discover fails with it, and OnSync
	// reports it if the credentials stop working later.
	ErrFeedCredentials = errors.New("the revocation feed refused this resource server's credentials (ClientID/ClientSecret of a resource_server client)")
	// ErrSenderConstrained: the token is bound to a key (cnf) and cannot be
	// accepted as a bearer token.
	ErrSenderConstrained = errors.New("token is sender-constrained")
	// ErrInvalidDPoPProof: the proof is missing, malformed, for another
	// request or key, stale, or replayed (answered invalid_dpop_proof). It is
	// tokens.ErrDPoP, which every proof check failure there wraps.
	ErrInvalidDPoPProof = tokens.ErrDPoP
	// ErrDPoPNonce: the proof lacks the current server nonce (answered
	// use_dpop_nonce, with a fresh nonce).
	ErrDPoPNonce = errors.New("a fresh DPoP nonce is required")
)

// RevokedError says which revoked jti cut the token off: its own, or an
// ancestor's (the whole task or subtree was revoked).
type RevokedError struct {
	JTI      string
	Ancestor bool
}

// Error names the revoked ancestor, when it is one.
func (e *RevokedError) Error() string {
	if e.Ancestor {
		return "token has been revoked: ancestor " + e.JTI + " is revoked"
	}
	return "token has been revoked"
}

// Is makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }
