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
// Each is its own number (none is defined from another), so changing one
// alone breaks a line here.
func TestLimitsAgree(t *testing.T) {
	if chain.MaxLeeway > chain.RevocationGrace {
		t.Errorf("a verifier may allow %s past exp, but the feed drops revocations %s after exp", chain.MaxLeeway, chain.RevocationGrace)
	}
	if verifier.DefaultLeeway > chain.MaxLeeway {
		t.Errorf("the verifier's default leeway %s exceeds chain.MaxLeeway %s", verifier.DefaultLeeway, chain.MaxLeeway)
	}
	if 2*verifier.DefaultFeedWait > verifier.DefaultMaxStaleness {
		t.Errorf("a quiet long poll of %s would outlast half the staleness bound %s", verifier.DefaultFeedWait, verifier.DefaultMaxStaleness)
	}
	if delegation.MaxFeedWait+time.Second > WriteTimeout {
		t.Errorf("a feed long poll held %s cannot be written within WriteTimeout %s", delegation.MaxFeedWait, WriteTimeout)
	}
	if 2*SyncInterval > tokens.KeyActivationDelay {
		t.Errorf("a replica reads keys again every %s: a key rotated in on another may sign (after %s) before it is published here", SyncInterval, tokens.KeyActivationDelay)
	}
	if RevocationGrace != chain.RevocationGrace {
		t.Errorf("the store keeps revocations %s past exp, the chain rules promise %s", RevocationGrace, chain.RevocationGrace)
	}
	if got := KeyOverlap(15 * time.Minute); got != 15*time.Minute+chain.RevocationGrace {
		t.Errorf("KeyOverlap(15m) = %s, want root TTL + grace", got)
	}
	// A verifier refuses a leeway beyond the grace; a configuration refuses
	// a depth no verifier accepts.
	if _, err := verifier.New(verifier.Config{Issuer: "https://m.example", Audience: "a", Leeway: chain.RevocationGrace + time.Second},
		noKeys{}, verifier.NewRevocationSet()); err == nil {
		t.Error("a verifier accepted a leeway beyond the revocation grace")
	}
	cfg := testConfig(t.TempDir())
	cfg.Tokens.MaxDepth = chain.MaxDepth
	if _, err := cfg.Validate(""); err != nil {
		t.Errorf("config refused max_depth %d: %v", chain.MaxDepth, err)
	}
	cfg.Tokens.MaxDepth = chain.MaxDepth + 1
	if _, err := cfg.Validate(""); err == nil {
		t.Error("config accepted a max_depth beyond chain.MaxDepth")
	}
}

// noKeys is a key set that knows no key.
type noKeys struct{}

func (noKeys) ResolveKey(string) (tokens.PublicKey, bool) { return tokens.PublicKey{}, false }
