package delegation_test

import (
	"context"
	"testing"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
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

// BenchmarkWorkloadRoot is the JWT bearer grant as a pod without a secret
// makes it: its platform token verified (signature, claims, mapping rule)
// on every request, then a root minted and committed. Compare with
// BenchmarkClientCredentials (a secret, checked once and cached).
func BenchmarkWorkloadRoot(b *testing.B) {
	k8s := dt.NewPlatform(b, "https://k8s.example")
	env := dt.New(b, dt.Options{Configure: func(cfg *server.Config, write func(string, []byte) string) {
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{{Issuer: k8s.Issuer, KeySource: server.KeySource{JWKSFile: write("k8s.json", k8s.JWKS)},
			Rules: []server.WorkloadRuleConfig{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"},
				Agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}}}}}
	}})
	sa := k8s.ServiceAccountToken(b, env.URL, "agents", "researcher", "j1", env.Clock.Now())
	req := delegation.TokenRequest{GrantType: oauth.GrantJWTBearer, Assertion: sa}
	root := func() error {
		c, err := env.Svc.AuthenticateWorkload(context.Background(), sa, "", nil)
		if err != nil {
			return err
		}
		_, err = env.Svc.Token(context.Background(), c, req)
		return err
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := root(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := root(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
