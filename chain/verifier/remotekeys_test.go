package verifier

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestAJWKSThatDropsAKeyEndsItsCachedVerifications: once a refetched JWKS no
// longer has a key, tokens verified under it earlier (and cached) are
// verified again, and refused.
func TestAJWKSThatDropsAKeyEndsItsCachedVerifications(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ring := func() *tokens.KeyRing {
		r, err := tokens.OpenKeyRing(context.Background(), &tokens.MemoryKeyStore{}, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	signer, other := ring(), ring()
	var served atomic.Pointer[tokens.KeyRing]
	served.Store(signer)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(served.Load().JWKS()) }))
	defer srv.Close()
	keys := &remoteKeys{uri: srv.URL, http: srv.Client(), now: clock, interval: 10 * time.Second, maxAge: time.Minute}
	if err := keys.fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{Issuer: "https://m.example", Audience: "a", Now: clock}, keys, NewRevocationSet())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Sign(&jwt.Claims{Issuer: "https://m.example", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Audience: jwt.Audience{"a"},
		IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(time.Minute)), ID: "j"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	served.Store(other) // the signer's key is withdrawn
	if err := keys.fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys.Withdrawals() != 1 {
		t.Fatalf("withdrawals = %d", keys.Withdrawals())
	}
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("a cached token of a withdrawn key: %v", err)
	}
}
