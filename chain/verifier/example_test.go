package verifier_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// A resource server verifies a delegated token locally, then asks whether
// the chain grants what the call needs. New is the offline constructor: the
// key set here is a ring standing in for Mandate's published keys (a
// resource server would use Discover, which follows the JWKS and the
// revocation feed), and the revocation source a set the caller fills.
func ExampleNew() {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ring, err := tokens.OpenKeyRing(ctx, &tokens.MemoryKeyStore{}, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	// The grandchild of a task: orchestrator → researcher → db-agent.
	token, err := ring.Sign(&jwt.Claims{
		Issuer: "https://mandate.example", Subject: "orchestrator", SubjectIssuer: "https://m.example", ClientID: "db-agent",
		Audience: jwt.Audience{"https://orders.example"}, Scope: "db:read:orders",
		IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(5 * time.Minute)), ID: "grand",
		Act:     &jwt.Actor{Subject: "db-agent", Act: &jwt.Actor{Subject: "researcher"}},
		Lineage: []string{"root", "child"},
	})
	if err != nil {
		panic(err)
	}

	revoked := verifier.NewRevocationSet()
	v, err := verifier.New(verifier.Config{
		Issuer: "https://mandate.example", Audience: "https://orders.example",
		Now: func() time.Time { return now },
	}, ring, revoked)
	if err != nil {
		panic(err)
	}
	c, err := v.Verify(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Holder, "acts for", c.Subject, "through", c.Actors, "at depth", c.Depth, "of task", c.Root)
	fmt.Println("may read orders:", c.HasScope("db:read:orders"), "may write:", c.HasScope("db:write:orders"))

	revoked.Add("root") // the orchestrator ends the task
	_, err = v.Verify(ctx, token)
	fmt.Println(errors.Is(err, verifier.ErrRevoked), err)
	// Output:
	// db-agent acts for orchestrator through [db-agent researcher] at depth 2 of task root
	// may read orders: true may write: false
	// true token has been revoked: ancestor root is revoked
}
