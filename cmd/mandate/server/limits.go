package server

import (
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation"
)

// The limits of a running Mandate that depend on each other, in one place.
// limits_test.go fails when one of them moves without the others.
const (
	// RevocationGrace keeps a revocation in the store and the feed this long
	// after its token's exp: no verifier accepts a token longer past exp
	// (chain.MaxLeeway ≤ chain.RevocationGrace).
	RevocationGrace = chain.RevocationGrace
	// MaxFeedWait caps a long poll of the revocation feed; it must end well
	// before WriteTimeout, or the held answer could never be written.
	MaxFeedWait = delegation.MaxFeedWait
	// WriteTimeout bounds writing one answer; the longest answer is a feed
	// long poll, so it is MaxFeedWait plus a margin.
	WriteTimeout = MaxFeedWait + 5*time.Second
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout bound slow clients.
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	IdleTimeout       = 2 * time.Minute
	// MaxDepth is the largest tokens.max_depth a configuration may set: the
	// chain's own bound, which every verifier also applies.
	MaxDepth = chain.MaxDepth
)

// KeyOverlap is how long a retired signing key stays published after it
// stops signing, for root tokens of rootTTL: the longest-lived token it
// signed must still verify until its exp plus the revocation grace.
func KeyOverlap(rootTTL time.Duration) time.Duration { return rootTTL + RevocationGrace }
