package delegationtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

// Platform is a workload platform (a Kubernetes API server, an enterprise
// IdP) with its own Ed25519 key, for tests of the JWT bearer grant: JWKS is
// what a config's jwks_file holds, Sign makes its tokens.
type Platform struct {
	Issuer string
	KID    string
	priv   ed25519.PrivateKey
	JWKS   []byte
}

// NewPlatform makes a platform issuing as issuer.
func NewPlatform(t testing.TB, issuer string) *Platform {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &Platform{Issuer: issuer, KID: "platform-1", priv: priv}
	p.JWKS, _ = json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": p.KID, "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	return p
}

// Sign signs claims (EdDSA, the platform's kid) under header typ ("" for none).
func (p *Platform) Sign(t testing.TB, typ string, claims map[string]any) string {
	t.Helper()
	hdr := map[string]any{"alg": "EdDSA", "kid": p.KID}
	if typ != "" {
		hdr["typ"] = typ
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return JWS(hdr, base64.RawURLEncoding.EncodeToString(payload), func(in []byte) []byte { return ed25519.Sign(p.priv, in) })
}

// ServiceAccountToken is a Kubernetes projected service-account token of
// namespace/name for audience, issued at iat for an hour, with jti.
func (p *Platform) ServiceAccountToken(t testing.TB, audience, namespace, name, jti string, iat time.Time) string {
	t.Helper()
	return p.Sign(t, "", map[string]any{
		"iss": p.Issuer, "aud": []string{audience}, "sub": "system:serviceaccount:" + namespace + ":" + name,
		"iat": iat.Unix(), "nbf": iat.Unix(), "exp": iat.Add(time.Hour).Unix(), "jti": jti,
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"pod":            map[string]any{"name": name + "-7d9f8-abcde", "uid": "0b8c7d6e"},
			"serviceaccount": map[string]any{"name": name, "uid": "1c2d3e4f"},
		},
	})
}
