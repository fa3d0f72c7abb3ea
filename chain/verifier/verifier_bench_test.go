package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

// BenchmarkRawEd25519Verify is the crypto bound the verifier is measured
// against: one ed25519.Verify over a message the size of a token's signing input.
func BenchmarkRawEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 560)
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkVerify measures Verifier.Verify on a depth-2 token: cold (cache
// disabled: signature, claims, structure and revocation every time) and
// cached (revocation, expiry and staleness only).
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cold", -1}, {"cached", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRig(b, func(c *verifier.Config) { c.CacheSize = tc.cache })
			_, _, grand := chainOf(b, r.env)
			ctx := context.Background()
			for b.Loop() {
				if _, err := r.v.Verify(ctx, grand); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevocationPropagation revokes one task per iteration through the
// real revocation endpoint while the verifier holds (and has cached) a token
// delegated from it, and measures the time from the revoke call returning to
// Verify refusing that token (run with -benchtime 1000x or more). It reports
// p50, p99 and max in milliseconds.
func BenchmarkRevocationPropagation(b *testing.B) {
	r := newRig(b, nil)
	orch, _ := r.env.Svc.Registration("orchestrator")
	ctx := context.Background()
	var lat []time.Duration
	for b.Loop() {
		root, err := r.env.Svc.Token(ctx, orch, delegation.TokenRequest{GrantType: oauth.GrantClientCredentials})
		if err != nil {
			b.Fatal(err)
		}
		child, err := r.env.Svc.Token(ctx, orch, delegation.TokenRequest{GrantType: oauth.GrantTokenExchange,
			SubjectToken: root.AccessToken, SubjectTokenType: oauth.TokenTypeAccessToken, Scope: "db:read:orders"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.v.Verify(ctx, child.AccessToken); err != nil {
			b.Fatal(err)
		}
		if rr := r.env.Post(b, "revocation_endpoint", "orchestrator", url.Values{"token": {root.AccessToken}}); rr.Status != 200 {
			b.Fatal(rr.Status)
		}
		start := time.Now()
		r.until(b, 5*time.Second, func() bool {
			_, err := r.v.Verify(ctx, child.AccessToken)
			return errors.Is(err, verifier.ErrRevoked)
		})
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkVerifyDPoP measures a DPoP-protected call's verification (a fresh
// proof each time: its signature, claims and replay entry; the token from the
// cache) next to the same token's bearer counterpart in the same run.
func BenchmarkVerifyDPoP(b *testing.B) {
	r := newRig(b, func(c *verifier.Config) { c.DPoPReplayCacheSize = 1 << 22 })
	grand, key := boundChain(b, r.env)
	bearer := r.env.Mint(b, "db-agent", url.Values{"audience": {dbAudience}})
	ctx := context.Background()
	const u = "https://db.example/orders"
	b.Run("bearer-cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.v.Verify(ctx, bearer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dpop", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			p, err := key.Proof("GET", u, grand, "", r.env.Clock.Now())
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := r.v.VerifyDPoP(ctx, grand, p, "GET", u); err != nil {
				b.Fatal(err)
			}
		}
	})
}
