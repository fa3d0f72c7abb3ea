package tokens_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/tokens"
)

const api = "https://api.example/orders"

func TestDPoPProofChecks(t *testing.T) {
	key, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	other, _ := tokens.NewDPoPKey(tokens.AlgES256)
	check := tokens.DPoPCheck{Method: "GET", URL: api, AccessToken: "tok", Now: now}
	good, _ := key.Proof("GET", api+"?page=2", "tok", "", now)
	p, err := tokens.VerifyDPoP(good, check, nil)
	if err != nil || p.JKT != key.JKT() {
		t.Fatalf("good proof: %+v %v", p, err)
	}
	sign := func(k *tokens.DPoPKey, typ string, claims map[string]any) string {
		s, err := k.SignJWT(typ, claims)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"jti": "j1", "htm": "GET", "htu": api, "iat": now.Unix(), "ath": tokens.AccessTokenHash("tok")}
		if edit != nil {
			edit(c)
		}
		return c
	}
	// A proof carrying the private key, and one signed with a key other than its jwk.
	priv, _ := jwk.FromRaw(mustPrivate(t))
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, tokens.TypeDPoP)
	_ = hdr.Set(jws.JWKKey, priv)
	raw, _ := json.Marshal(claims(nil))
	withPrivate, _ := jws.Sign(raw, jws.WithKey(jwa.EdDSA, mustPrivate(t), jws.WithProtectedHeaders(hdr)))
	parts := strings.Split(sign(key, tokens.TypeDPoP, claims(nil)), ".")
	foreignSig := strings.Split(sign(other, tokens.TypeDPoP, claims(nil)), ".")[2]

	tests := []struct {
		name  string
		proof string
		check func(*tokens.DPoPCheck)
		want  string
	}{
		{"wrong typ", sign(key, "JWT", claims(nil)), nil, "typ"},
		{"crit", b64(`{"typ":"dpop+jwt","alg":"EdDSA","crit":["x"],"x":1}`) + "." + parts[1] + "." + parts[2], nil, "crit"},
		{"a 9000-bit RSA key", b64(`{"typ":"dpop+jwt","alg":"RS256","jwk":{"kty":"RSA","e":"AQAB","n":"`+b64("\xc1"+strings.Repeat("\x01", 1124))+`"}}`) + "." + parts[1] + "." + parts[2], nil, "not a usable key"},
		{"another key than the token's", sign(other, tokens.TypeDPoP, claims(nil)), func(c *tokens.DPoPCheck) { c.JKT = key.JKT() }, "not made with the key"},
		{"alg none", b64(`{"typ":"dpop+jwt","alg":"none"}`) + "." + parts[1] + ".", nil, "not allowed"},
		{"private key in the header", string(withPrivate), nil, "public"},
		{"signature by another key", parts[0] + "." + parts[1] + "." + foreignSig, nil, "signature"},
		{"another method", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["htm"] = "POST" })), nil, "htm"},
		{"another URL", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["htu"] = "https://api.example/users" })), nil, "htu"},
		{"another host", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["htu"] = "https://evil.example/orders" })), nil, "htu"},
		{"too old", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["iat"] = now.Add(-2 * time.Minute).Unix() })), nil, "too old"},
		{"from the future", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })), nil, "future"},
		{"for another token", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["ath"] = tokens.AccessTokenHash("other") })), nil, "ath"},
		{"without ath", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { delete(c, "ath") })), nil, "ath"},
		{"without jti", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { delete(c, "jti") })), nil, "jti"},
		{"without the nonce", sign(key, tokens.TypeDPoP, claims(nil)), func(c *tokens.DPoPCheck) { c.Nonce = "n1" }, "nonce"},
		{"with an old nonce", sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["nonce"] = "n0" })), func(c *tokens.DPoPCheck) { c.Nonce = "n1" }, "nonce"},
		{"JSON serialization", `{"payload":"` + parts[1] + `"}`, nil, "compact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := check
			if tt.check != nil {
				tt.check(&c)
			}
			_, err := tokens.VerifyDPoP(tt.proof, c, nil)
			if !errors.Is(err, tokens.ErrDPoP) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrDPoP mentioning %q", err, tt.want)
			}
		})
	}
	t.Run("default ports and case", func(t *testing.T) {
		p := sign(key, tokens.TypeDPoP, claims(func(c map[string]any) { c["htu"] = "HTTPS://API.example:443/orders" }))
		if _, err := tokens.VerifyDPoP(p, check, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDPoPReplay(t *testing.T) {
	key, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	cache := tokens.NewReplayCache(2)
	check := tokens.DPoPCheck{Method: "POST", URL: api, Now: now}
	p1, _ := key.Proof("POST", api, "", "", now)
	if _, err := tokens.VerifyDPoP(p1, check, cache); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.VerifyDPoP(p1, check, cache); !errors.Is(err, tokens.ErrDPoP) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: %v", err)
	}
	p2, _ := key.Proof("POST", api, "", "", now)
	p3, _ := key.Proof("POST", api, "", "", now)
	if _, err := tokens.VerifyDPoP(p2, check, cache); err != nil {
		t.Fatal(err)
	}
	// Full of live entries: fail closed rather than forget.
	if _, err := tokens.VerifyDPoP(p3, check, cache); !errors.Is(err, tokens.ErrDPoP) {
		t.Fatalf("full cache accepted a proof: %v", err)
	}
	// Proofs by a key other than the token's are refused before they are
	// recorded, so they cannot fill the cache for everyone else.
	thief, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	bound := check
	bound.JKT = key.JKT()
	cache2 := tokens.NewReplayCache(1)
	for range 3 {
		tp, _ := thief.Proof("POST", api, "", "", now)
		if _, err := tokens.VerifyDPoP(tp, bound, cache2); err == nil || cache2.Len() != 0 {
			t.Fatalf("another key's proof: %v, %d entries", err, cache2.Len())
		}
	}
	if _, err := tokens.VerifyDPoP(p3, bound, cache2); err != nil {
		t.Fatalf("the holder after the thief's proofs: %v", err)
	}
	// Once the first entries are past their window, room comes back.
	later := check
	later.Now = now.Add(2 * time.Minute)
	p4, _ := key.Proof("POST", api, "", "", later.Now)
	if _, err := tokens.VerifyDPoP(p4, later, cache); err != nil || cache.Len() != 1 {
		t.Fatalf("after expiry: %v, %d entries", err, cache.Len())
	}
}

func TestSelfSignedActorToken(t *testing.T) {
	key, _ := tokens.NewDPoPKey(tokens.AlgES256)
	tok, _ := key.SignJWT("agent+jwt", map[string]any{"sub": "orchestrator/x"})
	payload, jkt, err := tokens.VerifySelfSigned(tok, "agent+jwt")
	if err != nil || jkt != key.JKT() || !strings.Contains(string(payload), "orchestrator/x") {
		t.Fatalf("%s %s %v", payload, jkt, err)
	}
	if _, _, err := tokens.VerifySelfSigned(tok, "at+jwt"); !errors.Is(err, tokens.ErrType) {
		t.Errorf("wrong typ: %v", err)
	}
	parts := strings.Split(tok, ".")
	other, _ := tokens.NewDPoPKey(tokens.AlgES256)
	otherSig := strings.Split(mustSign(t, other), ".")[2]
	if _, _, err := tokens.VerifySelfSigned(parts[0]+"."+parts[1]+"."+otherSig, "agent+jwt"); !errors.Is(err, tokens.ErrSignature) {
		t.Errorf("foreign signature: %v", err)
	}
}

func mustSign(t *testing.T, k *tokens.DPoPKey) string {
	t.Helper()
	s, err := k.SignJWT("agent+jwt", map[string]any{"sub": "orchestrator/x"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPrivate(t *testing.T) any {
	t.Helper()
	k, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	return tokens.ExportDPoPPrivateForTest(k)
}

// TestDPoPKeyFromSigner: an agent's own key is usable as long as it is one
// proofs can be verified with; anything else is refused with a reason.
func TestDPoPKeyFromSigner(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(nil)
	k, err := tokens.DPoPKeyFromSigner(ed)
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.Proof("GET", "https://api.example/x", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tokens.VerifyDPoP(p, tokens.DPoPCheck{Method: "GET", URL: "https://api.example/x", Now: time.Now()}, nil); err != nil || got.JKT != k.JKT() {
		t.Fatalf("proof with a wrapped key: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, priv := range map[string]crypto.Signer{"P-384": p384, "RSA": rsaKey} {
		if _, err := tokens.DPoPKeyFromSigner(priv); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
}
