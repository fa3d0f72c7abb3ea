package chain

import "time"

// The limits the issuer and every verifier share. They depend on each other
// (a verifier's leeway must not outlast the feed's grace), so they are named
// here once, each its own number; TestLimitsAgree (cmd/mandate/server)
// fails when one moves without the others.
const (
	// MaxDepth is the most ancestors a token may have: no configuration and
	// no verifier accepts a longer lineage.
	MaxDepth = 32
	// MaxScopes bounds how many scope tokens (or audiences) one request or
	// token may carry, so coverage checks stay cheap on crafted input.
	MaxScopes = 64
	// MaxScopeLength bounds one scope token, and MaxScopeString a whole
	// scope string, in bytes: a wildcard must not let a request write
	// megabytes into a token, the store, the audit trail and the logs.
	MaxScopeLength = 256
	MaxScopeString = 4 << 10
	// RevocationGrace is how long a revocation stays in the feed after its
	// token expired: a verifier that tolerates clock skew past exp must
	// still hear of it.
	RevocationGrace = time.Minute
	// MaxLeeway is the most clock-skew leeway a verifier may allow past a
	// token's exp: no more than RevocationGrace, or it could accept a
	// revoked token whose revocation has left the feed.
	MaxLeeway = time.Minute
)
