package delegation

import (
	"context"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestATokenIssuedDuringSuspensionIsRevoked: a request that passed the
// suspension check before its client was suspended must not leave with a live
// token (the deviation revoked what the client held before it was stored).
func TestATokenIssuedDuringSuspensionIsRevoked(t *testing.T) {
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	keys, err := tokens.OpenKeyRing(context.Background(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Issuer: "https://m.example", RootTTL: time.Minute, DelegatedTTL: time.Minute, MaxDepth: 2,
		Clients:   []Registration{{ID: "a", Secret: NewPlainSecret("s"), Grants: []string{GrantNameClientCredentials}}},
		Deviation: Deviation{MaxDenials: 1, Window: time.Minute}, Now: func() time.Time { return now }}, keys, db)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := svc.Registration("a")
	claims := &jwt.Claims{Issuer: "https://m.example", Subject: "a", ClientID: "a", IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(time.Minute))}
	svc.dev.record("a", now) // suspended while the request was in flight
	_, err = svc.issue(context.Background(), c, claims, "client_credentials", "", nil)
	if e := oauth.As(err); e.Code != oauth.CodeInvalidRequest {
		t.Fatalf("issue during suspension: %v", err)
	}
	if rev, _ := db.FirstRevoked(context.Background(), claims.ID); rev == nil {
		t.Fatal("the token stored during the suspension is not revoked")
	}
}
