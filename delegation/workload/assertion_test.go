package workload_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/tokens"
)

var b64 = base64.RawURLEncoding

// platform is a workload issuer's signing key: RS256 as Kubernetes signs,
// or EdDSA.
type platform struct {
	kid string
	rsa *rsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newPlatform(t *testing.T, kid string, useRSA bool) *platform {
	p := &platform{kid: kid}
	var err error
	if useRSA {
		p.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		_, p.ed, err = ed25519.GenerateKey(nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *platform) jwk() string {
	if p.rsa != nil {
		return fmt.Sprintf(`{"kty":"RSA","alg":"RS256","kid":%q,"n":%q,"e":%q}`, p.kid,
			b64.EncodeToString(p.rsa.N.Bytes()), b64.EncodeToString(big.NewInt(int64(p.rsa.E)).Bytes()))
	}
	return fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":%q,"x":%q}`, p.kid, b64.EncodeToString(p.ed.Public().(ed25519.PublicKey)))
}

func (p *platform) sign(t *testing.T, header, payload string) string {
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	var sig []byte
	if p.rsa != nil {
		h := sha256.Sum256([]byte(in))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, p.rsa, crypto.SHA256, h[:]); err != nil {
			t.Fatal(err)
		}
	} else {
		sig = ed25519.Sign(p.ed, []byte(in))
	}
	return in + "." + b64.EncodeToString(sig)
}

func (p *platform) header() string {
	alg := "EdDSA"
	if p.rsa != nil {
		alg = "RS256"
	}
	return fmt.Sprintf(`{"alg":%q,"kid":%q}`, alg, p.kid)
}

func keysOf(t *testing.T, ps ...*platform) tokens.KeyResolver {
	var jwks []string
	for _, p := range ps {
		jwks = append(jwks, p.jwk())
	}
	r, err := tokens.NewSetResolver([]byte(`{"keys":[` + strings.Join(jwks, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var now = time.Unix(1795770000, 0)

func TestAWorkloadTokenMapsToItsIdentity(t *testing.T) {
	k8s := newPlatform(t, "sa-key-1", true)
	is := &workload.Issuer{Issuer: "https://kubernetes.default.svc.cluster.local", Audience: "https://mandate.example", MaxLifetime: time.Hour,
		Keys: keysOf(t, k8s), Rules: []workload.Rule{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"},
			Agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*"}}}}
	a, err := is.Verify(k8s.sign(t, k8s.header(), k8sToken), now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Identity.Agent != "k8s/agents/researcher" || a.Subject != "system:serviceaccount:agents:researcher" || a.JTI == "" ||
		a.Claims["kubernetes.io"].(map[string]any)["namespace"] != "agents" {
		t.Errorf("assertion %+v", a)
	}
}

// TestEveryConfusedAssertionIsRefused: each refusal wraps ErrAssertion (the
// grant's invalid_grant) and says why.
func TestEveryConfusedAssertionIsRefused(t *testing.T) {
	k8s, stranger := newPlatform(t, "sa-key-1", true), newPlatform(t, "sa-key-1", true)
	base := func() *workload.Issuer {
		return &workload.Issuer{Issuer: "https://kubernetes.default.svc.cluster.local", Audience: "https://mandate.example", MaxLifetime: time.Hour,
			Keys: keysOf(t, k8s), Rules: []workload.Rule{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"}, Client: "researcher"}}}
	}
	payload := func(edit func(string) string) string { return edit(k8sToken) }
	for _, tt := range []struct {
		name  string
		is    *workload.Issuer
		token string
		want  string
	}{
		{"signed by another key", base(), stranger.sign(t, k8s.header(), k8sToken), "verification against the keys"},
		{"unsigned (alg none)", base(), b64.EncodeToString([]byte(`{"alg":"none","kid":"sa-key-1"}`)) + "." + b64.EncodeToString([]byte(k8sToken)) + ".", "verification against the keys"},
		{"an unknown kid", base(), k8s.sign(t, `{"alg":"RS256","kid":"other"}`, k8sToken), "verification against the keys"},
		{"another issuer", func() *workload.Issuer { i := base(); i.Issuer = "https://other.example"; return i }(), k8s.sign(t, k8s.header(), k8sToken), "issuer"},
		{"another audience", func() *workload.Issuer { i := base(); i.Audience = "https://other-mandate.example"; return i }(), k8s.sign(t, k8s.header(), k8sToken), "audience"},
		{"expired", base(), k8s.sign(t, k8s.header(), payload(func(s string) string { return strings.Replace(s, `"exp": 1795773600`, `"exp": 1795769999`, 1) })), "expired"},
		{"issued in the future", base(), k8s.sign(t, k8s.header(), payload(func(s string) string {
			return strings.Replace(strings.Replace(s, `"iat": 1795770000`, `"iat": 1795770100`, 1), `"exp": 1795773600`, `"exp": 1795770200`, 1)
		})), "not valid yet"},
		{"too long-lived", func() *workload.Issuer { i := base(); i.MaxLifetime = 10 * time.Minute; return i }(), k8s.sign(t, k8s.header(), k8sToken), "max_lifetime"},
		{"an access token's typ", base(), k8s.sign(t, `{"alg":"RS256","kid":"sa-key-1","typ":"at+jwt"}`, k8sToken), "typ"},
		{"an ID-JAG's typ", base(), k8s.sign(t, `{"alg":"RS256","kid":"sa-key-1","typ":"oauth-id-jag+jwt"}`, k8sToken), "typ"},
		{"a claim twice", base(), k8s.sign(t, k8s.header(), payload(func(s string) string {
			return strings.Replace(s, `"sub": "system:serviceaccount:agents:researcher"`, `"sub": "system:serviceaccount:agents:researcher", "sub": "system:serviceaccount:ops:admin"`, 1)
		})), "ambiguous"},
		{"no rule matches", base(), k8s.sign(t, k8s.header(), payload(func(s string) string { return strings.Replace(s, ":agents:researcher", ":ops:admin", 1) })), "matches no rule"},
		{"single-use without jti", func() *workload.Issuer { i := base(); i.SingleUse = true; return i }(), k8s.sign(t, k8s.header(), payload(func(s string) string {
			return strings.Replace(s, `"jti": "6c4f9a1e-0b7d-4c1e-9d3a-5e2b8f1a7c90",`, ``, 1)
		})), "jti"},
		{"not JSON claims", base(), k8s.sign(t, k8s.header(), `["sub"]`), "not a JSON object"},
		{"no exp", base(), k8s.sign(t, k8s.header(), payload(func(s string) string { return strings.Replace(s, `"exp": 1795773600,`, ``, 1) })), "exp"},
	} {
		_, err := tt.is.Verify(tt.token, now)
		if !errors.Is(err, workload.ErrAssertion) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrAssertion naming %q", tt.name, err, tt.want)
		}
	}
}

func TestSPIFFETrustDomains(t *testing.T) {
	spire := newPlatform(t, "bundle-1", false)
	is := &workload.Issuer{TrustDomain: "example.org", Audience: "https://mandate.example", Keys: keysOf(t, spire),
		Rules: []workload.Rule{{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Client: "summarizer"}}}
	if a, err := is.Verify(spire.sign(t, spire.header(), svid), now); err != nil || a.Identity.Client != "summarizer" {
		t.Fatalf("a JWT-SVID without iss: %+v %v", a, err)
	}
	other := strings.Replace(svid, "spiffe://example.org/", "spiffe://example.org.evil.com/", 1)
	if _, err := is.Verify(spire.sign(t, spire.header(), other), now); !errors.Is(err, workload.ErrAssertion) || !strings.Contains(err.Error(), "trust domain") {
		t.Errorf("another trust domain: %v", err)
	}
}
