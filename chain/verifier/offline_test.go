package verifier_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// keySet is a key set the test can withdraw keys from.
type keySet struct {
	mu   sync.Mutex
	keys map[string]tokens.PublicKey
}

func (k *keySet) ResolveKey(kid string) (tokens.PublicKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.keys[kid]
	return p, ok
}

func (k *keySet) withdraw(kid string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, kid)
}

// offlineRig signs tokens with a ring and verifies them offline.
func offlineRig(t *testing.T) (*tokens.KeyRing, *keySet, *verifier.RevocationSet, *verifier.Verifier, time.Time) {
	t.Helper()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ring, err := tokens.OpenKeyRing(context.Background(), &tokens.MemoryKeyStore{}, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ring.ResolveKey(ring.CurrentKeyID())
	keys := &keySet{keys: map[string]tokens.PublicKey{pk.ID: pk}}
	revs := verifier.NewRevocationSet()
	v, err := verifier.New(verifier.Config{Issuer: "https://m.example", Audience: "https://api.example", Now: func() time.Time { return now }}, keys, revs)
	if err != nil {
		t.Fatal(err)
	}
	return ring, keys, revs, v, now
}

func sign(t *testing.T, ring *tokens.KeyRing, now time.Time, edit func(*jwt.Claims)) string {
	t.Helper()
	c := &jwt.Claims{Issuer: "https://m.example", Subject: "o", ClientID: "db", Audience: jwt.Audience{"https://api.example"},
		Scope: "db:read:orders", IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(time.Minute)), ID: "g",
		Act: &jwt.Actor{Subject: "db"}, Lineage: []string{"r"}}
	if edit != nil {
		edit(c)
	}
	tok, err := ring.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestOfflineVerifier: New needs no Mandate; a withdrawn key stops verifying
// even the tokens already cached, revocations come from the source given,
// and a date beyond ±2^53 is malformed.
func TestOfflineVerifier(t *testing.T) {
	ring, keys, revs, v, now := offlineRig(t)
	ctx := context.Background()
	tok := sign(t, ring, now, nil)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); err != nil || verifier.CacheLen(v) != 1 {
		t.Fatalf("cached: %v (%d cached)", err, verifier.CacheLen(v))
	}
	huge := sign(t, ring, now, func(c *jwt.Claims) { c.ID, c.Expiry = "h", jwt.NumericDate(1<<53+1) })
	if _, err := v.Verify(ctx, huge); !errors.Is(err, verifier.ErrMalformedToken) {
		t.Errorf("exp beyond 2^53: %v", err)
	}
	revs.Add("r")
	var rev *verifier.RevokedError
	if _, err := v.Verify(ctx, tok); !errors.As(err, &rev) || rev.JTI != "r" || !rev.Ancestor {
		t.Errorf("ancestor revoked: %v", err)
	}
	keys.withdraw(ring.CurrentKeyID())
	other := sign(t, ring, now, func(c *jwt.Claims) { c.ID, c.Lineage = "x", []string{"y"} })
	if _, err := v.Verify(ctx, other); !errors.Is(err, verifier.ErrInvalidSignature) {
		t.Errorf("a withdrawn key verified a token: %v", err)
	}
}

// TestAWithdrawnKeyEndsItsCachedVerifications: a token verified (and
// cached) before its key left the key set is refused afterwards.
func TestAWithdrawnKeyEndsItsCachedVerifications(t *testing.T) {
	ring, keys, _, v, now := offlineRig(t)
	ctx := context.Background()
	tok := sign(t, ring, now, nil)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	keys.withdraw(ring.CurrentKeyID())
	if _, err := v.Verify(ctx, tok); !errors.Is(err, verifier.ErrInvalidSignature) {
		t.Fatalf("cached token of a withdrawn key: %v", err)
	}
}
