package tokens_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

var now = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func openRing(t testing.TB, dir, alg string) *tokens.KeyRing {
	t.Helper()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := tokens.OpenKeyRing(t.Context(), db, tokens.KeyRingOptions{Alg: alg, Overlap: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sampleClaims() *jwt.Claims {
	return &jwt.Claims{
		Issuer: "https://mandate.example", Subject: "orchestrator", ClientID: "researcher",
		Audience: jwt.Audience{"https://db.example"}, Scope: "db:read:*",
		IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(time.Minute)), ID: "jti-1",
		Act: &jwt.Actor{Subject: "researcher"}, Lineage: []string{"root"},
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			r := openRing(t, t.TempDir(), alg)
			tok, err := r.Sign(sampleClaims())
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, sampleClaims()) {
				t.Errorf("round trip changed claims: %+v", got)
			}
			if r.CurrentAlg() != alg {
				t.Errorf("alg = %s", r.CurrentAlg())
			}
		})
	}
}

func TestKeysPersistAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	first := openRing(t, dir, tokens.AlgEdDSA)
	tok, _ := first.Sign(sampleClaims())
	second := openRing(t, dir, tokens.AlgEdDSA)
	if first.CurrentKeyID() != second.CurrentKeyID() {
		t.Fatalf("restart generated a new key: %s → %s", first.CurrentKeyID(), second.CurrentKeyID())
	}
	if _, err := second.Verify(tok); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	// Switching algorithm publishes an ES256 key that signs after the
	// activation delay; until then the old key signs.
	third := openRing(t, dir, tokens.AlgES256)
	if third.CurrentKeyID() != first.CurrentKeyID() {
		t.Fatal("an alg change made the new key sign at once")
	}
	if again := openRing(t, dir, tokens.AlgES256); len(again.Keys()) != 2 {
		t.Fatal("a second restart generated yet another key")
	}
	later := func() time.Time { return now.Add(tokens.KeyActivationDelay) }
	db, _ := bolt.Open(dir, bolt.Options{})
	fourth, err := tokens.OpenKeyRing(t.Context(), db, tokens.KeyRingOptions{Alg: tokens.AlgES256, Overlap: time.Hour, Now: later})
	db.Close()
	if err != nil || fourth.CurrentAlg() != tokens.AlgES256 {
		t.Fatalf("after the delay the ES256 key signs: %v %v", fourth.CurrentAlg(), err)
	}
	if _, err := fourth.Verify(tok); err != nil {
		t.Fatalf("old key dropped: %v", err)
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(fourth.JWKS(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks = %s", fourth.JWKS())
	}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatal("JWKS holds private key material")
		}
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRefusesForgeries(t *testing.T) {
	r := openRing(t, t.TempDir(), tokens.AlgEdDSA)
	good, _ := r.Sign(sampleClaims())
	parts := strings.Split(good, ".")
	kid := r.CurrentKeyID()
	payload := parts[1]

	var jwks struct{ Keys []map[string]any }
	_ = json.Unmarshal(r.JWKS(), &jwks)
	pubBytes, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0]["x"].(string))

	hs256, _ := jws.Sign([]byte(`{"iss":"x"}`), jws.WithKey(jwa.HS256, pubBytes, jws.WithProtectedHeaders(headers(t, kid, "at+jwt"))))
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	selfSigned, _ := jws.Sign(mustB64Decode(payload), jws.WithKey(jwa.EdDSA, attacker, jws.WithProtectedHeaders(headers(t, kid, "at+jwt"))))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256, _ := jws.Sign(mustB64Decode(payload), jws.WithKey(jwa.ES256, ecKey, jws.WithProtectedHeaders(headers(t, kid, "at+jwt"))))

	// A header pointing at keys elsewhere must never be fetched.
	var fetched atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fetched.Add(1) }))
	defer evil.Close()
	attackerJWK, _ := jwk.FromRaw(attacker.Public())
	jku := headers(t, "attacker-kid", "at+jwt")
	_ = jku.Set(jws.JWKSetURLKey, evil.URL)
	_ = jku.Set(jws.X509URLKey, evil.URL)
	withJKU, _ := jws.Sign(mustB64Decode(payload), jws.WithKey(jwa.EdDSA, attacker, jws.WithProtectedHeaders(jku)))
	embedded := headers(t, kid, "at+jwt")
	_ = embedded.Set(jws.JWKKey, attackerJWK)
	withJWK, _ := jws.Sign(mustB64Decode(payload), jws.WithKey(jwa.EdDSA, attacker, jws.WithProtectedHeaders(embedded)))
	crit := headers(t, kid, "at+jwt")
	_ = crit.Set(jws.CriticalKey, []string{"exp"})
	_ = crit.Set("exp", 1)
	withCrit, _ := jws.Sign(mustB64Decode(payload), jws.WithKey(jwa.EdDSA, signerOf(t, r, good), jws.WithProtectedHeaders(crit)))

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", b64(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`) + "." + payload + ".", tokens.ErrAlgorithm},
		{"alg none without kid", b64(`{"alg":"none"}`) + "." + payload + ".", tokens.ErrAlgorithm},
		{"HS256 keyed with the public key", string(hs256), tokens.ErrAlgorithm},
		{"ES256 claimed for an EdDSA key", string(es256), tokens.ErrAlgorithm},
		{"unknown kid", b64(`{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}`) + "." + payload + "." + parts[2], tokens.ErrUnknownKey},
		{"no kid", b64(`{"alg":"EdDSA","typ":"at+jwt"}`) + "." + payload + "." + parts[2], tokens.ErrUnknownKey},
		{"payload changed after signing", parts[0] + "." + b64(`{"iss":"x","scope":"*"}`) + "." + parts[2], tokens.ErrSignature},
		{"signature changed", parts[0] + "." + payload + "." + b64(strings.Repeat("x", 64)), tokens.ErrSignature},
		{"signed by an attacker under our kid", string(selfSigned), tokens.ErrSignature},
		{"jku and x5u to an attacker's keys", string(withJKU), tokens.ErrUnknownKey},
		{"embedded jwk header", string(withJWK), tokens.ErrSignature},
		{"crit extension", string(withCrit), tokens.ErrType},
		{"two segments", parts[0] + "." + payload, tokens.ErrMalformed},
		{"JSON serialization", `{"payload":"` + payload + `","signatures":[]}`, tokens.ErrMalformed},
		{"oversized", strings.Repeat("a", tokens.MaxTokenSize+1), tokens.ErrMalformed},
		{"header not base64", "!!!." + payload + "." + parts[2], tokens.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if fetched.Load() != 0 {
		t.Fatal("verification fetched a URL named by the token")
	}
}

func TestVerifyChecksType(t *testing.T) {
	r := openRing(t, t.TempDir(), tokens.AlgEdDSA)
	good, _ := r.Sign(sampleClaims())
	signer := signerOf(t, r, good)
	payload := mustB64Decode(strings.Split(good, ".")[1])
	for typ, want := range map[string]error{"JWT": tokens.ErrType, "": tokens.ErrType, "application/at+jwt": nil, "AT+JWT": nil} {
		tok, _ := jws.Sign(payload, jws.WithKey(jwa.EdDSA, signer, jws.WithProtectedHeaders(headers(t, r.CurrentKeyID(), typ))))
		if _, err := r.Verify(string(tok)); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("typ %q: err = %v, want %v", typ, err, want)
		}
	}
	notJSON, _ := jws.Sign([]byte("hello"), jws.WithKey(jwa.EdDSA, signer, jws.WithProtectedHeaders(headers(t, r.CurrentKeyID(), "at+jwt"))))
	if _, err := r.Verify(string(notJSON)); !errors.Is(err, tokens.ErrMalformed) {
		t.Errorf("non-JSON payload: %v", err)
	}
}

func TestSetResolverSkipsUnusableKeys(t *testing.T) {
	if _, err := tokens.NewSetResolver([]byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`)); !errors.Is(err, tokens.ErrNoUsableKeys) {
		t.Errorf("symmetric-only JWKS: %v", err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, _ := jwk.FromRaw(ec.Public())
	_ = k.Set(jwk.KeyIDKey, "e")
	_ = k.Set(jwk.KeyUsageKey, "enc")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	raw, _ := json.Marshal(set)
	if _, err := tokens.NewSetResolver(raw); !errors.Is(err, tokens.ErrNoUsableKeys) {
		t.Errorf("encryption-only JWKS: %v", err)
	}
	_ = k.Set(jwk.KeyUsageKey, "sig")
	raw, _ = json.Marshal(set)
	res, err := tokens.NewSetResolver(raw)
	if err != nil {
		t.Fatal(err)
	}
	if pk, ok := res.ResolveKey("e"); !ok || pk.Alg != "" {
		t.Errorf("key without alg: %+v %v", pk, ok)
	}
}

func TestAudienceAcceptsStringOrArray(t *testing.T) {
	var c jwt.Claims
	if err := json.Unmarshal([]byte(`{"aud":"a"}`), &c); err != nil || !reflect.DeepEqual(c.Audience, jwt.Audience{"a"}) {
		t.Errorf("string aud: %v %v", c.Audience, err)
	}
	if err := json.Unmarshal([]byte(`{"aud":["a","b"]}`), &c); err != nil || len(c.Audience) != 2 {
		t.Errorf("array aud: %v %v", c.Audience, err)
	}
	if err := json.Unmarshal([]byte(`{"aud":5}`), &c); err == nil {
		t.Error("numeric aud accepted")
	}
	out, _ := json.Marshal(jwt.Claims{})
	if !strings.Contains(string(out), `"aud":[]`) || !strings.Contains(string(out), `"lineage":[]`) {
		t.Errorf("empty claims encode as %s", out)
	}
}

func headers(t *testing.T, kid, typ string) jws.Headers {
	t.Helper()
	h := jws.NewHeaders()
	if kid != "" {
		_ = h.Set(jws.KeyIDKey, kid)
	}
	if typ != "" {
		_ = h.Set(jws.TypeKey, typ)
	}
	return h
}

func mustB64Decode(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// signerOf returns the ring's private key, for tests that must sign malformed
// tokens with the real key.
func signerOf(t *testing.T, r *tokens.KeyRing, _ string) any {
	t.Helper()
	k, ok := tokens.ExportSigningKeyForTest(r)
	if !ok {
		t.Fatal("no signing key")
	}
	return k
}

func TestSetResolverRefusesMalformedAndWeakKeys(t *testing.T) {
	for name, doc := range map[string]string{
		"short ed25519":   `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"AAAAAAA"}]}`,
		"ec off curve":    `{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AQ","y":"AQ"}]}`,
		"rsa 512":         `{"keys":[{"kty":"RSA","kid":"k","n":"` + b64(strings.Repeat("\xff", 64)) + `","e":"AQAB"}]}`,
		"alg not for key": `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"ES256","x":"` + b64(strings.Repeat("a", 32)) + `"}]}`,
	} {
		if _, err := tokens.NewSetResolver([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSetResolverWithdrawn(t *testing.T) {
	one := `{"kty":"OKP","crv":"Ed25519","kid":"a","x":"` + b64(strings.Repeat("a", 32)) + `"}`
	two := `{"kty":"OKP","crv":"Ed25519","kid":"b","x":"` + b64(strings.Repeat("b", 32)) + `"}`
	ab, _ := tokens.NewSetResolver([]byte(`{"keys":[` + one + `,` + two + `]}`))
	b, _ := tokens.NewSetResolver([]byte(`{"keys":[` + two + `]}`))
	if !ab.Withdrawn(b) || b.Withdrawn(ab) {
		t.Error("Withdrawn wrong")
	}
}

// TestRotationWithOverlap: a rotated-in key is published at once, signs after
// KeyActivationDelay, and the key it replaces stays published for the
// overlap (until its tokens have expired), then leaves the JWKS.
func TestRotationWithOverlap(t *testing.T) {
	clock := now
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := tokens.OpenKeyRing(t.Context(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: 16 * time.Minute, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	old := r.CurrentKeyID()
	oldTok, _ := r.Sign(sampleClaims())
	published := func() []string {
		var set struct{ Keys []struct{ Kid string } }
		_ = json.Unmarshal(r.JWKS(), &set)
		var kids []string
		for _, k := range set.Keys {
			kids = append(kids, k.Kid)
		}
		return kids
	}
	status := func() map[string]string {
		m := map[string]string{}
		for _, k := range r.Keys() {
			m[k.ID] = k.Status
		}
		return m
	}
	nk, err := r.Rotate(t.Context(), db, tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	if got := published(); len(got) != 2 || got[0] != nk.ID {
		t.Fatalf("after rotate, published %v (the new key must be published before it signs)", got)
	}
	if r.CurrentKeyID() != old || status()[nk.ID] != "pending" {
		t.Fatalf("the new key signs before its activation: %v", status())
	}
	clock = clock.Add(tokens.KeyActivationDelay)
	if r.CurrentKeyID() != nk.ID || status()[old] != "retiring" {
		t.Fatalf("at activation: current %s, %v", r.CurrentKeyID(), status())
	}
	if _, err := r.Verify(oldTok); err != nil {
		t.Fatalf("token of the retiring key: %v", err)
	}
	clock = clock.Add(16*time.Minute - time.Second)
	if got := published(); len(got) != 2 {
		t.Fatalf("retiring key left early: %v", got)
	}
	clock = clock.Add(time.Second)
	if got := published(); len(got) != 1 || got[0] != nk.ID || status()[old] != "retired" {
		t.Fatalf("after the overlap: published %v, %v", got, status())
	}
	if _, err := r.Verify(oldTok); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Errorf("a token of the withdrawn key: %v, want ErrUnknownKey", err)
	}
	// A restart keeps the schedule.
	r2, err := tokens.OpenKeyRing(t.Context(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: 16 * time.Minute, Now: func() time.Time { return clock }})
	if err != nil || r2.CurrentKeyID() != nk.ID || len(r2.Keys()) != 2 {
		t.Fatalf("reopened: %v %v", r2.CurrentKeyID(), err)
	}
}

// TestLoweringTheLifetimeDoesNotWithdrawKeysEarly: a key keeps the overlap in
// force when it was made, so a restart with a shorter root_ttl cannot take it
// out of the JWKS while tokens it signed under the longer one are live.
func TestLoweringTheLifetimeDoesNotWithdrawKeysEarly(t *testing.T) {
	clock := now
	at := func() time.Time { return clock }
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, _ := tokens.OpenKeyRing(t.Context(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Hour, Now: at})
	old := r.CurrentKeyID()
	if _, err := r.Rotate(t.Context(), db, ""); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(tokens.KeyActivationDelay + 30*time.Minute)
	short, _ := tokens.OpenKeyRing(t.Context(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Minute, Now: at})
	if !strings.Contains(string(short.JWKS()), old) {
		t.Fatal("the retiring key left the JWKS when the lifetime was lowered")
	}
	clock = clock.Add(30 * time.Minute)
	if strings.Contains(string(short.JWKS()), old) {
		t.Fatal("the retiring key outstayed its own overlap")
	}
}

// TestConcurrentSigning: tokens are issued concurrently; under -race this
// catches shared mutable state in the signing path (jws.Sign once wrote
// into the key's shared header object on every call).
func TestConcurrentSigning(t *testing.T) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		r := openRing(t, t.TempDir(), alg)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 8 {
			wg.Go(func() {
				for range 8 {
					tok, err := r.Sign(sampleClaims())
					if err == nil {
						_, err = r.Verify(tok)
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", alg, err)
		}
	}
}

// TestRetiredKeysAreDestroyedAndCompromisedOnesWithdrawnAtOnce: a key that
// left the JWKS keeps no private part in the store (Prune); an emergency
// rotation signs with the new key at once and withdraws the old one at once,
// for good, across a restart.
func TestRetiredKeysAreDestroyedAndCompromisedOnesWithdrawnAtOnce(t *testing.T) {
	clock := now
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	opts := tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: 16 * time.Minute, Now: func() time.Time { return clock }}
	r, err := tokens.OpenKeyRing(t.Context(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	first := r.CurrentKeyID()
	if _, err := r.Rotate(t.Context(), db, ""); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(tokens.KeyActivationDelay)
	if done, _ := r.Prune(t.Context(), db); len(done) != 0 {
		t.Fatalf("pruned a key still published: %v", done)
	}
	clock = clock.Add(16 * time.Minute)
	if done, err := r.Prune(t.Context(), db); err != nil || len(done) != 1 || done[0] != first {
		t.Fatalf("prune after the overlap: %v %v", done, err)
	}
	stored, _ := db.SigningKeys(t.Context())
	for _, k := range stored {
		if k.ID == first && !k.Destroyed() {
			t.Error("a retired key's private part is still stored")
		}
	}

	second := r.CurrentKeyID()
	tok, _ := r.Sign(sampleClaims())
	nk, gone, err := r.RotateCompromised(t.Context(), db, "", "")
	if err != nil || gone != second {
		t.Fatalf("emergency rotation: %v (withdrew %s)", err, gone)
	}
	if r.CurrentKeyID() != nk.ID {
		t.Error("the new key does not sign at once")
	}
	if _, err := r.Verify(tok); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Errorf("a token of the compromised key: %v", err)
	}
	if got := r.CompromisedKeys(); len(got) != 1 || got[0] != second {
		t.Errorf("compromised keys = %v", got)
	}
	r2, err := tokens.OpenKeyRing(t.Context(), db, opts)
	if err != nil || r2.CurrentKeyID() != nk.ID {
		t.Fatalf("reopened: %v %v", r2.CurrentKeyID(), err)
	}
	if _, err := r2.Verify(tok); !errors.Is(err, tokens.ErrUnknownKey) || len(r2.CompromisedKeys()) != 1 {
		t.Errorf("after a restart the compromised key is back: %v", err)
	}
	// A leaked key can sign tokens with any exp: the compromise is announced
	// for ever, so a verifier starting late behind a stale JWKS still learns it.
	clock = clock.Add(365 * 24 * time.Hour)
	if got := r2.CompromisedKeys(); len(got) != 1 || got[0] != second {
		t.Errorf("a compromise stopped being announced: %v", got)
	}
	// Withdrawing it again (a retry after a failure part way) changes nothing
	// and keeps the first compromise time.
	if _, again, err := r2.RotateCompromised(t.Context(), db, "", second); err != nil || again != second {
		t.Errorf("retrying the withdrawal of %s: %v %v", second, again, err)
	}
	if _, _, err := r2.RotateCompromised(t.Context(), db, "", "no-such-kid"); err == nil {
		t.Error("withdrew a key that does not exist")
	}
}
