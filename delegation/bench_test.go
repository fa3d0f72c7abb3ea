package delegation_test

import (
	"context"
	"testing"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

// The benchmarks call the core directly (no HTTP, no client authentication):
// sign, verify, check revocation and commit the record to a real bbolt file.
// Serial runs pay one group-commit window and fsync per token; parallel runs
// show group commit sharing them.

func benchEnv(b *testing.B) (*dt.Env, *delegation.Registration) {
	env := dt.New(b, dt.Options{})
	c, _ := env.Svc.Registration("orchestrator")
	return env, c
}

// benchToken runs one token request serially and at parallelism 32.
func benchToken(b *testing.B, svc *delegation.Service, c *delegation.Registration, req delegation.TokenRequest) {
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Token(context.Background(), c, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.Token(context.Background(), c, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkClientCredentials(b *testing.B) {
	env, c := benchEnv(b)
	benchToken(b, env.Svc, c, delegation.TokenRequest{GrantType: oauth.GrantClientCredentials})
}

func BenchmarkExchange(b *testing.B) {
	env, c := benchEnv(b)
	root := env.Mint(b, "orchestrator", nil)
	actor := env.Identity(b, "researcher")
	benchToken(b, env.Svc, c, delegation.TokenRequest{
		GrantType: oauth.GrantTokenExchange, SubjectToken: root, SubjectTokenType: oauth.TokenTypeAccessToken,
		ActorToken: actor, ActorTokenType: oauth.TokenTypeAccessToken, Scope: "db:read:orders",
	})
}

func BenchmarkIntrospect(b *testing.B) {
	env, _ := benchEnv(b)
	rs, _ := env.Svc.Registration("no-grants-rs")
	tok := env.Mint(b, "orchestrator", nil)
	for b.Loop() {
		if r, err := env.Svc.Introspect(context.Background(), rs, tok); err != nil || !r.Active {
			b.Fatal(err)
		}
	}
}
