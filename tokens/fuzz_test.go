package tokens_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens"
)

// FuzzVerify feeds arbitrary strings to verification: it must never panic, and
// anything it accepts must carry exactly the claims the ring signed (a
// different encoding of the same bytes is harmless; different claims are a
// forgery).
func FuzzVerify(f *testing.F) {
	r := openRing(f, f.TempDir(), tokens.AlgEdDSA)
	good, err := r.Sign(sampleClaims())
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(b64(`{"alg":"none"}`) + "." + parts[1] + ".")
	f.Add(b64(`{"alg":"HS256","kid":"`+r.CurrentKeyID()+`"}`) + "." + parts[1] + "." + parts[2])
	f.Add(`{"payload":"e30","signatures":[{"protected":"e30","signature":""}]}`)
	f.Add("..")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := r.Verify(token)
		if err == nil && !reflect.DeepEqual(c, sampleClaims()) {
			t.Fatalf("accepted a token the ring did not sign: %q → %+v", token, c)
		}
	})
}

// FuzzVerifyDPoP feeds arbitrary strings to both self-signed verifiers (a
// resource server's DPoP proof, an ephemeral agent's actor token): they must
// never panic, refusals must be typed, and anything accepted must have been
// signed by one of the seed keys — the fuzzer cannot sign, so an accepted
// proof with another key is a signature bypass.
func FuzzVerifyDPoP(f *testing.F) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	check := tokens.DPoPCheck{Method: "GET", URL: "https://api.example/orders", AccessToken: "tok", Now: now}
	// Fixed keys: fuzz workers are separate processes and must agree on them.
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, priv := range []crypto.Signer{ed25519.NewKeyFromSeed(seed), ec} {
		k, err := tokens.DPoPKeyFromSigner(priv)
		if err != nil {
			f.Fatal(err)
		}
		known[k.JKT()] = true
		p, err := k.Proof("GET", check.URL, "tok", "", now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
		parts := strings.Split(p, ".")
		f.Add(b64(`{"typ":"dpop+jwt","alg":"none"}`) + "." + parts[1] + ".")
		f.Add(b64(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}`) + "." + parts[1] + "." + parts[2])
		a, err := k.SignJWT("agent+jwt", map[string]any{"iss": "o", "sub": "o/a"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(a)
	}
	f.Add(b64(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA","d":"AAAA"}}`) + ".e30.AAAA")
	f.Add("..")
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := tokens.VerifyDPoP(proof, check, tokens.NewReplayCache(4))
		switch {
		case err != nil && !errors.Is(err, tokens.ErrDPoP):
			t.Fatalf("untyped refusal: %v", err)
		case err == nil && !known[p.JKT]:
			t.Fatalf("accepted a proof no seed key signed: %q", proof)
		}
		if _, jkt, err := tokens.VerifySelfSigned(proof, "agent+jwt"); err == nil && !known[jkt] {
			t.Fatalf("accepted a self-signed token no seed key signed: %q", proof)
		}
	})
}
