package delegationtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Tools for forging tokens in attack tests, shared by the token endpoint's
// and the Verifier's suites.

// KeyHost is an attacker's web server: it serves a JWKS with the attacker's
// Ed25519 key at every path and counts the requests it gets, so a test can
// prove that headers pointing at it (jku, x5u) are never followed.
type KeyHost struct {
	URL  string
	Hits atomic.Int32
	Priv ed25519.PrivateKey
	JWK  map[string]any // the attacker's public key, kid "attacker-key"
}

// NewKeyHost starts a KeyHost and registers its shutdown with t.Cleanup.
func NewKeyHost(t testing.TB) *KeyHost {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &KeyHost{Priv: priv, JWK: map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": "attacker-key", "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{h.JWK}})
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

// JWS assembles a compact JWS from a header, an encoded payload and a signer
// of the signing input (nil: an empty signature).
func JWS(hdr map[string]any, payload string, sign func(input []byte) []byte) string {
	h, _ := json.Marshal(hdr)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + payload
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Ed25519Signer signs a JWS input with k.
func Ed25519Signer(k ed25519.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(k, in) }
}

// NonCanonical changes the unused low bits of a signature's last base64url
// character: lenient decoders read the same bytes, strict ones refuse it.
func NonCanonical(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i|1])
}

// Tamper edits a token's payload and keeps its original signature (Forge
// re-signs instead).
func Tamper(t testing.TB, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	raw, _ = json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// SigningKey is the server's current private key (an EdDSA ring), read from
// the store, to sign headers Mandate never writes over genuine claims.
func (e *Env) SigningKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	keys, err := e.KeyStore.SigningKeys(t.Context()) // unsealed when a KEK is set
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == e.Keys.CurrentKeyID() {
			priv, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
			if err != nil {
				t.Fatal(err)
			}
			return priv.(ed25519.PrivateKey)
		}
	}
	t.Fatal("current signing key not in the store")
	return nil
}
