package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation/client"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// An orchestrator mints a root token for a task, hands a researcher a
// narrower child, and finds that the child cannot be widened again. A real
// Mandate serves the example on a loopback port, started as `mandate serve`
// starts it.
func ExampleClient_Exchange() {
	stop := startMandate()
	defer stop()
	ctx := context.Background()

	orch, err := client.New(ctx, issuer, "orchestrator", "orchestrator-secret")
	if err != nil {
		panic(err)
	}
	res, err := client.New(ctx, issuer, "researcher", "researcher-secret")
	if err != nil {
		panic(err)
	}
	root, err := orch.Mint(ctx, "db:read:* tools:*")
	if err != nil {
		panic(err)
	}
	// The researcher's identity token names it as the new holder: no
	// scope, Mandate's audience alone, so the orchestrator holding it can do
	// nothing as the researcher.
	id, err := res.Identity(ctx)
	if err != nil {
		panic(err)
	}
	child, err := orch.Exchange(ctx, root, client.ExchangeOptions{Actor: id.Value, Scope: "db:read:orders"})
	if err != nil {
		panic(err)
	}
	c, _ := jwt.Unverified(child.Value)
	fmt.Println("holder:", c.ClientID, "for:", c.Subject, "scope:", c.Scope, "act:", c.Act.Path(), "depth:", c.Depth())

	_, err = res.Exchange(ctx, res.Adopt(child.Value), client.ExchangeOptions{Scope: "db:read:*"})
	fmt.Println(errors.Is(err, oauth.ErrInvalidScope), err)
	// Output:
	// holder: researcher for: orchestrator scope: db:read:orders act: [researcher] depth: 1
	// true invalid_scope: scope "db:read:*" is not covered by the subject_token's scope
}

var issuer string

// startMandate runs a Mandate with two agents on a throw-away store.
func startMandate() (stop func()) {
	dir, err := os.MkdirTemp("", "mandate-example-")
	if err != nil {
		panic(err)
	}
	hash := func(s string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		return string(h)
	}
	both := []string{"client_credentials", "token_exchange"}
	srv, err := server.Start(&server.Config{
		Listen: "127.0.0.1:0", DataDir: dir,
		Signing: server.SigningConfig{Alg: "EdDSA"},
		Tokens:  server.TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: 4, Retention: time.Hour},
		Audit:   server.AuditConfig{Retention: 24 * time.Hour},
		Clients: []server.ClientConfig{
			{ID: "orchestrator", SecretHash: hash("orchestrator-secret"), Grants: both, Scopes: []string{"db:read:*", "tools:*"}, Audiences: []string{"https://orders.example"}},
			{ID: "researcher", SecretHash: hash("researcher-secret"), Grants: both, Scopes: []string{"db:read:*"}, Audiences: []string{"https://orders.example"}},
		},
	}, server.Options{})
	if err != nil {
		panic(err)
	}
	issuer = srv.URL
	return func() {
		_ = srv.Shutdown(context.Background())
		_ = os.RemoveAll(dir)
	}
}
