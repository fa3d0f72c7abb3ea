package verifier_test

import (
	"context"
	"errors"
	"strings"
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
	c := &jwt.Claims{Issuer: "https://m.example", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "db", Audience: jwt.Audience{"https://api.example"},
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

// TestEveryTypedError: with no Mandate running, every way a token can be
// refused comes back as the sentinel a resource server branches on.
func TestEveryTypedError(t *testing.T) {
	ring, _, revs, v, now := offlineRig(t)
	ctx := context.Background()
	grand := func(edit func(*jwt.Claims)) string {
		return sign(t, ring, now, func(c *jwt.Claims) {
			c.Act = &jwt.Actor{Subject: "db", Act: &jwt.Actor{Subject: "res"}}
			c.Lineage = []string{"root", "child"}
			if edit != nil {
				edit(c)
			}
		})
	}
	good := grand(nil)
	h, p, s := split(good)
	other, err := tokens.OpenKeyRing(ctx, &tokens.MemoryKeyStore{}, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	foreign := func() string {
		tok, err := other.Sign(&jwt.Claims{Issuer: "https://m.example", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Audience: jwt.Audience{"https://api.example"},
			IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(time.Minute)), ID: "f"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	revs.Add("revoked-child")
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"garbage", "not-a-token", verifier.ErrMalformedToken},
		{"payload edited after signing", h + "." + b64(`{"iss":"https://m.example","scope":"*"}`) + "." + s, verifier.ErrInvalidSignature},
		{"alg none", b64(`{"alg":"none","typ":"at+jwt"}`) + "." + p + ".", verifier.ErrInvalidSignature},
		{"HS256", b64(`{"alg":"HS256","typ":"at+jwt","kid":"`+ring.CurrentKeyID()+`"}`) + "." + p + "." + s, verifier.ErrInvalidSignature},
		{"a key the verifier does not know", foreign, verifier.ErrInvalidSignature},
		{"wrong audience", grand(func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://tools.example"} }), verifier.ErrWrongAudience},
		{"wrong issuer", grand(func(c *jwt.Claims) { c.Issuer = "https://evil.example" }), verifier.ErrWrongIssuer},
		{"not yet valid", grand(func(c *jwt.Claims) { c.NotBefore = jwt.At(now.Add(time.Minute)) }), verifier.ErrNotYetValid},
		{"issued in the future", grand(func(c *jwt.Claims) { c.IssuedAt = jwt.At(now.Add(time.Minute)) }), verifier.ErrNotYetValid},
		{"expired beyond the leeway", grand(func(c *jwt.Claims) { c.Expiry = jwt.At(now.Add(-5 * time.Second)) }), verifier.ErrExpired},
		{"no exp", grand(func(c *jwt.Claims) { c.Expiry = 0 }), verifier.ErrMalformedToken},
		{"lineage with a duplicate", grand(func(c *jwt.Claims) { c.Lineage = []string{"root", "root"} }), verifier.ErrMalformedToken},
		{"lineage too deep", grand(func(c *jwt.Claims) {
			c.Lineage = make([]string, 40)
			for i := range c.Lineage {
				c.Lineage[i] = string(rune('a' + i))
			}
		}), verifier.ErrMalformedToken},
		{"act dropped", grand(func(c *jwt.Claims) { c.Act = nil }), verifier.ErrMalformedToken},
		{"act rewritten", grand(func(c *jwt.Claims) { c.Act.Subject = "orchestrator" }), verifier.ErrMalformedToken},
		{"malformed scope", grand(func(c *jwt.Claims) { c.Scope = "db:read:orders  x" }), verifier.ErrMalformedToken},
		{"sender-constrained", grand(func(c *jwt.Claims) { c.Cnf = &jwt.Confirmation{JKT: "abc"} }), verifier.ErrSenderConstrained},
		{"revoked itself", grand(func(c *jwt.Claims) { c.ID = "revoked-child" }), verifier.ErrRevoked},
		{"a revoked ancestor", grand(func(c *jwt.Claims) { c.Lineage = []string{"root", "revoked-child"} }), verifier.ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Verify(ctx, tt.token); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatalf("the good token: %v", err)
	}
}

// TestACachedTokenStillExpires: expiry is checked on every use, cached or not.
func TestACachedTokenStillExpires(t *testing.T) {
	ring, keys, _, _, now := offlineRig(t)
	clock := now
	v, err := verifier.New(verifier.Config{Issuer: "https://m.example", Audience: "https://api.example", Now: func() time.Time { return clock }},
		keys, verifier.NewRevocationSet())
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, ring, now, nil) // lives a minute
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(time.Minute + 4*time.Second) // within the 5 s leeway
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	clock = now.Add(time.Minute + 5*time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, verifier.ErrExpired) || verifier.CacheLen(v) != 1 {
		t.Fatalf("cached token past exp: %v", err)
	}
}

// TestAVerifierIsNotForMandatesOwnAudience: Mandate's issuer is the
// audience of identity tokens, which grant nothing; a verifier configured
// with it (by mistake, for want of a name) would take them for access.
func TestAVerifierIsNotForMandatesOwnAudience(t *testing.T) {
	revs := verifier.NewRevocationSet()
	for _, aud := range []string{"https://m.example", "https://m.example/"} {
		_, err := verifier.New(verifier.Config{Issuer: "https://m.example", Audience: aud}, &keySet{}, revs)
		if err == nil || !strings.Contains(err.Error(), "is Mandate's own issuer") {
			t.Errorf("New with Audience %q: %v", aud, err)
		}
		_, err = verifier.Discover(context.Background(), verifier.Config{Issuer: "https://m.example", Audience: aud, ClientID: "rs", ClientSecret: "s"})
		if err == nil || !strings.Contains(err.Error(), "is Mandate's own issuer") {
			t.Errorf("Discover with Audience %q: %v", aud, err)
		}
	}
}
