package delegation

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

// TestOneClientCannotFillAnotherClientsProofCache: at the token endpoint,
// each client's DPoP proof jtis go into a share of its own, so a client
// flooding it with proofs of throwaway keys refuses only itself.
func TestOneClientCannotFillAnotherClientsProofCache(t *testing.T) {
	defer func(n int) { proofCacheSize = n }(proofCacheSize)
	proofCacheSize = 8
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	keys, err := tokens.OpenKeyRing(context.Background(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	both := []string{GrantNameClientCredentials, GrantNameTokenExchange}
	svc, err := New(Config{Issuer: "https://m.example", RootTTL: time.Minute, DelegatedTTL: time.Minute, MaxDepth: 2, Now: clock,
		Clients: []Registration{{ID: "flooder", Secret: NewPlainSecret("s"), Grants: both}, {ID: "victim", Secret: NewPlainSecret("s"), Grants: both}}},
		keys, db)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	const url = "https://m.example/oauth2/token"
	mint := func(who string) error {
		k, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
		if err != nil {
			t.Fatal(err)
		}
		p, err := k.Proof("POST", url, "", "", now)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := svc.Registration(who)
		_, err = svc.Token(context.Background(), c, TokenRequest{GrantType: oauth.GrantClientCredentials, DPoP: p, DPoPURL: url})
		return err
	}
	var refused error
	for range 3 * proofCacheSize {
		if err := mint("flooder"); err != nil {
			refused = err
		}
	}
	if refused == nil || !strings.Contains(refused.Error(), "replay") {
		t.Fatalf("the flooder's own share never filled: %v", refused)
	}
	if err := mint("victim"); err != nil {
		t.Fatalf("another client's proof was refused: %v", err)
	}
	// A proof with a request the client may not make is not recorded: it
	// stays usable.
	k, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	p, _ := k.Proof("POST", url, "", "", now)
	victim, _ := svc.Registration("victim")
	if _, err := svc.Token(context.Background(), victim, TokenRequest{GrantType: "urn:example:nothing", DPoP: p, DPoPURL: url}); err == nil {
		t.Fatal("an unsupported grant was served")
	}
	if _, err := svc.Token(context.Background(), victim, TokenRequest{GrantType: oauth.GrantClientCredentials, DPoP: p, DPoPURL: url}); err != nil {
		t.Fatalf("a proof first sent with a refused grant was spent: %v", err)
	}
}
