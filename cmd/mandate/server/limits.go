package server

import (
	"time"

	"github.com/mandate-auth/mandate/chain"
)

// The limits of a running Mandate that depend on each other, in one place
// with those of chain/limits.go, delegation.MaxFeedWait and the verifier's
// defaults: limits_test.go fails when one of them moves without the others.
const (
	// RevocationGrace keeps a revocation in the store and the feed this long
	// after its token's exp: no verifier accepts a token longer past exp
	// (chain.MaxLeeway ≤ chain.RevocationGrace).
	RevocationGrace = chain.RevocationGrace
	// WriteTimeout bounds writing one answer. The longest answer is a feed
	// long poll, held up to delegation.MaxFeedWait: that must end well before.
	WriteTimeout = 30 * time.Second
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout bound slow clients.
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	IdleTimeout       = 2 * time.Minute
	// SyncInterval is how often a replica on PostgreSQL reads again what
	// other replicas change — signing keys, suspensions — besides when a
	// notification says so: a new key is published by every replica before
	// it signs only if this is well below tokens.KeyActivationDelay, even
	// when a notification is lost.
	SyncInterval = 5 * time.Second
)

// KeyOverlap is how long a retired signing key stays published after it
// stops signing, for root tokens of rootTTL: the longest-lived token it
// signed must still verify until its exp plus the revocation grace.
func KeyOverlap(rootTTL time.Duration) time.Duration { return rootTTL + RevocationGrace }
