package server

import (
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/tokens"
)

// TestLimitsAgree fails when a limit moves without those that depend on it.
func TestLimitsAgree(t *testing.T) {
	if chain.MaxLeeway > chain.RevocationGrace {
		t.Errorf("a verifier may allow %s past exp, but the feed drops revocations %s after exp", chain.MaxLeeway, chain.RevocationGrace)
	}
	if RevocationGrace != chain.RevocationGrace {
		t.Errorf("the store keeps revocations %s past exp, the chain rules promise %s", RevocationGrace, chain.RevocationGrace)
	}
	if MaxFeedWait+time.Second > WriteTimeout {
		t.Errorf("a feed long poll of %s cannot be written within WriteTimeout %s", MaxFeedWait, WriteTimeout)
	}
	if delegation.MaxFeedWait != MaxFeedWait {
		t.Errorf("the core caps long polls at %s, the server plans for %s", delegation.MaxFeedWait, MaxFeedWait)
	}
	if got := KeyOverlap(15 * time.Minute); got != 15*time.Minute+chain.RevocationGrace {
		t.Errorf("KeyOverlap(15m) = %s, want root TTL + grace", got)
	}
	if MaxDepth != chain.MaxDepth {
		t.Errorf("config accepts max_depth up to %d, the chain rules %d", MaxDepth, chain.MaxDepth)
	}
	// A verifier left at its defaults accepts every depth a server may be
	// configured with, and refuses a leeway beyond the grace.
	if _, err := verifier.New(verifier.Config{Issuer: "https://m.example", Audience: "a", Leeway: chain.RevocationGrace + time.Second},
		noKeys{}, verifier.NewRevocationSet()); err == nil {
		t.Error("a verifier accepted a leeway beyond the revocation grace")
	}
	cfg := testConfig(t.TempDir())
	cfg.Tokens.MaxDepth = chain.MaxDepth + 1
	if _, err := cfg.Validate(""); err == nil {
		t.Error("config accepted a max_depth beyond chain.MaxDepth")
	}
}

// noKeys is a key set that knows no key.
type noKeys struct{}

func (noKeys) ResolveKey(string) (tokens.PublicKey, bool) { return tokens.PublicKey{}, false }
