package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// The attack suite of the resource-server side (issue 7): every row is a
// token a resource server might be shown and the typed error Verify must
// answer with. Tokens are crafted as in the token endpoint's suite: raw edits
// keeping the original signature, an attacker's key or an HMAC secret, and
// env.Forge (Mandate's own key over claims Mandate would never issue).
//
// A row with a gap is a defence this verifier does not have: a mismatch
// skips the row, saying why, instead of failing.

// atkRevoke revokes tok as client and waits until the verifier has it from the feed.
func atkRevoke(t *testing.T, r *rig, client, tok string) string {
	t.Helper()
	if resp := r.env.Post(t, "revocation_endpoint", client, url.Values{"token": {tok}}); resp.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.Status, resp.Raw)
	}
	jti := r.env.Claims(t, tok).ID
	r.until(t, 5*time.Second, func() bool { return r.v.Revoked(jti) })
	return jti
}

// TestAttackVerifier: every crafted token a resource server may be shown is
// refused by Verify with the typed error that says why.
func TestAttackVerifier(t *testing.T) {
	const verifierDepth = 3 // Mandate allows 4 here; the resource server asks for less
	r := newRig(t, func(c *verifier.Config) { c.MaxDepth = verifierDepth })
	env := r.env
	// Task A: orchestrator → researcher → db-agent (db:read:orders, https://db.example).
	root, child, grand := chainOf(t, env)
	depth4 := env.Delegate(t, "db-agent", env.Delegate(t, "db-agent", grand, "", nil), "", nil)
	// Task B, whose root is revoked; task C, whose middle link is.
	rootB, childB, grandB := chainOf(t, env)
	_, childC, grandC := chainOf(t, env)
	rootBID := atkRevoke(t, r, "orchestrator", rootB)
	childCID := atkRevoke(t, r, "researcher", childC)
	rc, cc, ccB := env.Claims(t, root), env.Claims(t, child), env.Claims(t, childB)

	kid := env.Keys.CurrentKeyID()
	pk, _ := env.Keys.ResolveKey(kid)
	pub := pk.Key.(ed25519.PublicKey)
	evil := dt.NewKeyHost(t)
	h, p, s := split(grand)
	now := dt.Start
	forge := func(base string, edit func(*jwt.Claims)) string { return env.Forge(t, base, edit) }
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	hs256 := func(secret []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, secret); m.Write(in); return m.Sum(nil) }
	}
	nested := func(n int) *jwt.Actor {
		a := &jwt.Actor{Subject: "db-agent"}
		for i := 1; i < n; i++ {
			a = &jwt.Actor{Subject: fmt.Sprint("a", i), Act: a}
		}
		a.Subject = "db-agent"
		return a
	}
	const (
		badAlg  = "invalid token signature: signature algorithm not allowed"
		noKey   = "invalid token signature: unknown signing key"
		badTree = "malformed token: malformed delegation chain"
		badScp  = "malformed token: malformed scope"
	)

	tests := []struct {
		name  string
		token string
		want  error
		frag  string
		gap   string
	}{
		// --- signature, algorithm and key confusion ---
		{name: "alg none, empty signature", token: dt.JWS(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, p, nil),
			want: verifier.ErrInvalidSignature, frag: badAlg + `: "none"`},
		{name: "alg none keeping the original signature", token: b64(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`) + "." + p + "." + s,
			want: verifier.ErrInvalidSignature, frag: badAlg + `: "none"`},
		{name: "HS256 keyed with the raw public key", token: dt.JWS(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, p, hs256(pub)),
			want: verifier.ErrInvalidSignature, frag: badAlg + `: "HS256"`},
		{name: "HS256 keyed with the public key's base64url", token: dt.JWS(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, p,
			hs256([]byte(base64.RawURLEncoding.EncodeToString(pub)))),
			want: verifier.ErrInvalidSignature, frag: badAlg + `: "HS256"`},
		{name: "ES256 claimed for the EdDSA key", token: dt.JWS(map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: "is for EdDSA, token says ES256"},
		{name: "typ JWT, signed with Mandate's key", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}, p, dt.Ed25519Signer(env.SigningKey(t))),
			want: chain.ErrMalformedToken, frag: `typ "JWT", want "at+jwt"`},
		{name: "crit extension, signed with Mandate's key", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": []string{"x"}, "x": 1}, p, dt.Ed25519Signer(env.SigningKey(t))),
			want: chain.ErrMalformedToken, frag: "crit"},
		{name: "unknown kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "no-such-key"}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: noKey + `: kid "no-such-key"`},
		{name: "no kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt"}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: noKey + ": no kid in header"},
		{name: "jku to the attacker's JWKS, attacker's kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
			"jku": evil.URL + "/jwks.json"}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: noKey + `: kid "attacker-key"`},
		{name: "jku to the attacker's JWKS, Mandate's kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid,
			"jku": evil.URL + "/jwks.json"}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: "invalid token signature: invalid signature"},
		{name: "x5u to the attacker's certificate", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
			"x5u": evil.URL + "/cert.pem"}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: noKey + `: kid "attacker-key"`},
		{name: "jwk header with the attacker's key and kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
			"jwk": evil.JWK}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: noKey + `: kid "attacker-key"`},
		{name: "jwk header with the attacker's key under Mandate's kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid,
			"jwk": evil.JWK}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: "invalid token signature: invalid signature"},
		{name: "jwk header with the attacker's key and no kid", token: dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt",
			"jwk": evil.JWK}, p, dt.Ed25519Signer(evil.Priv)),
			want: verifier.ErrInvalidSignature, frag: noKey + ": no kid in header"},
		{name: "payload changed after signing", token: dt.Tamper(t, grand, func(c map[string]any) { c["scope"] = "db:*" }),
			want: verifier.ErrInvalidSignature, frag: "invalid token signature: invalid signature"},
		{name: "signature stripped", token: h + "." + p + ".",
			want: verifier.ErrInvalidSignature, frag: "invalid token signature: invalid signature"},
		{name: "signature with non-canonical base64", token: dt.NonCanonical(grand),
			want: chain.ErrMalformedToken, frag: "signature is not base64url"},
		{name: "signature with base64 padding", token: grand + "==",
			want: chain.ErrMalformedToken, frag: "signature is not base64url"},
		{name: "JWS JSON serialization", token: `{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`,
			want: chain.ErrMalformedToken, frag: "not a JWS compact serialization"},
		{name: "four segments", token: grand + "." + s,
			want: chain.ErrMalformedToken, frag: "not a JWS compact serialization"},

		// --- lineage and act: tampered (original signature) ---
		{name: "lineage edited, original signature", token: dt.Tamper(t, grand, func(c map[string]any) { c["lineage"] = []string{rc.ID, "x"} }),
			want: verifier.ErrInvalidSignature},
		{name: "lineage truncated, original signature", token: dt.Tamper(t, grandB, func(c map[string]any) { c["lineage"] = []string{ccB.ID} }),
			want: verifier.ErrInvalidSignature},
		{name: "lineage reordered, original signature", token: dt.Tamper(t, grand, func(c map[string]any) { c["lineage"] = []string{cc.ID, rc.ID} }),
			want: verifier.ErrInvalidSignature},
		{name: "lineage grafted from another task, original signature", token: dt.Tamper(t, grandB, func(c map[string]any) { c["lineage"] = []string{rc.ID, cc.ID} }),
			want: verifier.ErrInvalidSignature},
		{name: "act edited, original signature", token: dt.Tamper(t, grand, func(c map[string]any) {
			c["act"] = map[string]any{"sub": "db-agent", "act": map[string]any{"sub": "orchestrator"}}
		}), want: verifier.ErrInvalidSignature},
		{name: "act truncated, original signature", token: dt.Tamper(t, grand, func(c map[string]any) { c["act"] = map[string]any{"sub": "db-agent"} }),
			want: verifier.ErrInvalidSignature},
		{name: "act reordered, original signature", token: dt.Tamper(t, grand, func(c map[string]any) {
			c["act"] = map[string]any{"sub": "researcher", "act": map[string]any{"sub": "db-agent"}}
		}), want: verifier.ErrInvalidSignature},
		{name: "act dropped, original signature", token: dt.Tamper(t, grand, func(c map[string]any) { delete(c, "act") }),
			want: verifier.ErrInvalidSignature},

		// --- lineage and act: correctly signed but inconsistent (Forge) ---
		{name: "forged: lineage repeats a jti", token: forge(grand, func(c *jwt.Claims) { c.Lineage = []string{rc.ID, rc.ID} }),
			want: chain.ErrMalformedToken, frag: badTree + ": jti repeated in lineage"},
		{name: "forged: lineage names the token itself", token: forge(grand, func(c *jwt.Claims) { c.Lineage = append(c.Lineage, c.ID) }),
			want: chain.ErrMalformedToken, frag: badTree + ": jti repeated in lineage"},
		{name: "forged: lineage with an empty jti", token: forge(grand, func(c *jwt.Claims) { c.Lineage = []string{rc.ID, ""} }),
			want: chain.ErrMalformedToken, frag: badTree + ": empty jti in lineage"},
		{name: "forged: act dropped", token: forge(grand, func(c *jwt.Claims) { c.Act = nil }),
			want: chain.ErrMalformedToken, frag: badTree + `: no act claim but holder "db-agent" is not the subject`},
		{name: "forged: act names another holder", token: forge(grand, func(c *jwt.Claims) { c.Act.Subject = "orchestrator" }),
			want: chain.ErrMalformedToken, frag: badTree + `: current actor "orchestrator" is not the holder "db-agent"`},
		{name: "forged: act reordered", token: forge(grand, func(c *jwt.Claims) {
			c.Act = &jwt.Actor{Subject: "researcher", Act: &jwt.Actor{Subject: "db-agent"}}
		}), want: chain.ErrMalformedToken, frag: badTree + ": current actor"},
		{name: "forged: more actors than ancestors", token: forge(grand, func(c *jwt.Claims) { c.Act = nested(4) }),
			want: chain.ErrMalformedToken, frag: badTree + ": 4 actors for 2 ancestors"},
		{name: "forged: act nested 300 deep", token: forge(grand, func(c *jwt.Claims) { c.Act = nested(300) }),
			want: chain.ErrMalformedToken, frag: "JSON nested deeper than 64"},
		{name: "forged: actor without sub", token: forge(grand, func(c *jwt.Claims) { c.Act.Act = &jwt.Actor{} }),
			want: chain.ErrMalformedToken, frag: badTree + ": actor without sub"},
		{name: "forged: holder missing", token: forge(grand, func(c *jwt.Claims) { c.ClientID, c.Act = "", nil }),
			want: chain.ErrMalformedToken, frag: badTree + ": jti, sub and client_id are required"},
		{name: "forged: sub_iss dropped (whose subject?)", token: forge(grand, func(c *jwt.Claims) { c.SubjectIssuer = "" }),
			want: chain.ErrMalformedToken, frag: badTree + ": sub_iss is required"},
		{name: "forged: grafted onto a revoked task", token: forge(grand, func(c *jwt.Claims) { c.Lineage = []string{rootBID, cc.ID} }),
			want: verifier.ErrRevoked, frag: "ancestor " + rootBID + " is revoked"},
		{name: "forged: lineage truncated to escape a revoked root", token: forge(grandB, func(c *jwt.Claims) { c.Lineage = []string{ccB.ID} }),
			want: verifier.ErrRevoked,
			gap: "NOT CHECKABLE LOCALLY (docs/decisions.md, Verifier: lineage order is not checked locally): a token signed with " +
				"Mandate's key that leaves a revoked ancestor out of its lineage is accepted, since feed entries name only the " +
				"revoked token, never its descendants"},

		// --- depth ---
		{name: "depth beyond the verifier's MaxDepth", token: depth4,
			want: chain.ErrMalformedToken, frag: badTree + ": lineage of 4 exceeds max depth 3"},
		{name: "forged: lineage of 40", token: forge(grand, func(c *jwt.Claims) { c.Lineage = many(40, func(i int) string { return fmt.Sprint("j", i) }) }),
			want: chain.ErrMalformedToken, frag: badTree + ": lineage of 40 exceeds max depth 3"},

		// --- time, issuer, audience ---
		{name: "expired beyond the 5 s leeway", token: forge(grand, func(c *jwt.Claims) { c.Expiry = jwt.At(now.Add(-5 * time.Second)) }),
			want: chain.ErrExpired},
		{name: "expired an hour ago", token: forge(grand, func(c *jwt.Claims) { c.Expiry = jwt.At(now.Add(-time.Hour)) }),
			want: chain.ErrExpired},
		{name: "not valid yet (nbf beyond the leeway)", token: forge(grand, func(c *jwt.Claims) { c.NotBefore = jwt.At(now.Add(6 * time.Second)) }),
			want: chain.ErrNotYetValid},
		{name: "issued in the future (iat beyond the leeway)", token: forge(grand, func(c *jwt.Claims) { c.IssuedAt = jwt.At(now.Add(time.Hour)) }),
			want: chain.ErrNotYetValid},
		{name: "wrong iss", token: forge(grand, func(c *jwt.Claims) { c.Issuer = "https://evil.example" }),
			want: chain.ErrWrongIssuer, frag: `iss "https://evil.example"`},
		{name: "iss with a trailing slash", token: forge(grand, func(c *jwt.Claims) { c.Issuer = env.URL + "/" }),
			want: chain.ErrWrongIssuer},
		{name: "iss in upper case", token: forge(grand, func(c *jwt.Claims) { c.Issuer = strings.ToUpper(env.URL) }),
			want: chain.ErrWrongIssuer},
		{name: "iss missing", token: forge(grand, func(c *jwt.Claims) { c.Issuer = "" }),
			want: chain.ErrWrongIssuer},
		{name: "wrong aud", token: env.Mint(t, "researcher", url.Values{"audience": {"https://tools.example"}}),
			want: chain.ErrWrongAudience, frag: `aud does not include "https://db.example"`},
		{name: "an identity token (its only audience is Mandate's issuer)", token: env.Identity(t, "db-agent"),
			want: chain.ErrWrongAudience, frag: `aud does not include "https://db.example"`},
		{name: "aud with a trailing slash", token: forge(grand, func(c *jwt.Claims) { c.Audience = jwt.Audience{dbAudience + "/"} }),
			want: chain.ErrWrongAudience},
		{name: "aud in upper case", token: forge(grand, func(c *jwt.Claims) { c.Audience = jwt.Audience{strings.ToUpper(dbAudience)} }),
			want: chain.ErrWrongAudience},
		{name: "aud with a Cyrillic look-alike", token: forge(grand, func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://db.\u0435xample"} }),
			want: chain.ErrWrongAudience},
		{name: "aud as a suffix domain", token: forge(grand, func(c *jwt.Claims) { c.Audience = jwt.Audience{dbAudience + ".evil.example"} }),
			want: chain.ErrWrongAudience},
		{name: "aud empty", token: forge(grand, func(c *jwt.Claims) { c.Audience = nil }),
			want: chain.ErrWrongAudience},

		// --- scope spelled to look wider or to slip past parsers ---
		{name: "forged: scope with a tab", token: forge(grand, func(c *jwt.Claims) { c.Scope = "db:read:orders\tdb:write:orders" }),
			want: chain.ErrMalformedToken, frag: badScp},
		{name: "forged: scope with a double space", token: forge(grand, func(c *jwt.Claims) { c.Scope = "db:read:orders  db:read:users" }),
			want: chain.ErrMalformedToken, frag: badScp + ": empty scope token"},
		{name: "forged: scope with a leading space", token: forge(grand, func(c *jwt.Claims) { c.Scope = " db:read:orders" }),
			want: chain.ErrMalformedToken, frag: badScp + ": empty scope token"},
		{name: "forged: scope with a Cyrillic look-alike", token: forge(grand, func(c *jwt.Claims) { c.Scope = "db:r\u0435ad:orders" }),
			want: chain.ErrMalformedToken, frag: "outside RFC 6749"},
		{name: "forged: scope with a NUL byte", token: forge(grand, func(c *jwt.Claims) { c.Scope = "db:read:orders\x00" }),
			want: chain.ErrMalformedToken, frag: "outside RFC 6749"},
		{name: "forged: more than 64 scopes", token: forge(grand, func(c *jwt.Claims) {
			c.Scope = strings.Join(many(65, func(i int) string { return fmt.Sprint("db:read:t", i) }), " ")
		}), want: chain.ErrMalformedToken, frag: badScp + ": more than 64 scopes"},
		{name: "forged: one scope longer than 256 bytes", token: forge(grand, func(c *jwt.Claims) { c.Scope = "db:read:" + strings.Repeat("o", 249) }),
			want: chain.ErrMalformedToken, frag: "is longer than 256 bytes"},
		{name: "forged: a scope string longer than 4 KiB", token: forge(grand, func(c *jwt.Claims) {
			c.Scope = strings.Join(many(40, func(i int) string { return fmt.Sprintf("db:read:%03d%s", i, strings.Repeat("x", 100)) }), " ")
		}), want: chain.ErrMalformedToken, frag: badScp + ": longer than 4096 bytes"},

		// --- revocation, after the feed has synced ---
		{name: "the revoked root itself", token: rootB, want: verifier.ErrRevoked, frag: "token has been revoked"},
		{name: "child of a revoked root", token: childB, want: verifier.ErrRevoked, frag: "ancestor " + rootBID + " is revoked"},
		{name: "grandchild of a revoked root", token: grandB, want: verifier.ErrRevoked, frag: "ancestor " + rootBID + " is revoked"},
		{name: "grandchild of a revoked middle link", token: grandC, want: verifier.ErrRevoked, frag: "ancestor " + childCID + " is revoked"},

		// --- sizes ---
		{name: "token of 16 KiB + 1", token: h + "." + p + "." + s + strings.Repeat("A", tokens.MaxTokenSize+1-len(grand)),
			want: chain.ErrMalformedToken, frag: "longer than 16384 bytes"},
		{name: "token of 1 MiB", token: h + "." + strings.Repeat("A", 1<<20) + "." + s,
			want: chain.ErrMalformedToken, frag: "longer than 16384 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := r.v.Verify(context.Background(), tt.token)
			miss := ""
			switch {
			case !errors.Is(err, tt.want):
				miss = fmt.Sprintf("err = %v, want %v", err, tt.want)
			case tt.frag != "" && !strings.Contains(err.Error(), tt.frag):
				miss = fmt.Sprintf("err %q lacks %q", err, tt.frag)
			case c != nil:
				miss = "a refused token came with a chain"
			}
			if miss != "" {
				if tt.gap != "" {
					t.Skipf("%s; observed: %s", tt.gap, miss)
				}
				t.Fatal(miss)
			}
			if len(err.Error()) > 512 {
				t.Errorf("error of %d bytes: a refusal must not echo its input", len(err.Error()))
			}
		})
	}

	t.Run("a genuine token with jku, x5u and jwk headers is verified by kid", func(t *testing.T) {
		tok := dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid,
			"jku": evil.URL + "/jwks.json", "x5u": evil.URL + "/cert.pem", "jwk": evil.JWK}, p, dt.Ed25519Signer(env.SigningKey(t)))
		if _, err := r.v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("genuine claims and signature under extra key headers: %v", err)
		}
	})
	t.Run("headers pointing at keys are never fetched", func(t *testing.T) {
		if n := evil.Hits.Load(); n != 0 {
			t.Fatalf("the attacker's key host got %d requests", n)
		}
	})
	t.Run("the other tasks are untouched", func(t *testing.T) {
		for _, tok := range []string{root, child, grand} {
			if _, err := r.v.Verify(context.Background(), tok); err != nil {
				t.Errorf("task A: %v", err)
			}
		}
	})
}

// TestAttackHugeTokensCostNothing: a token far beyond the 16 KiB bound is
// refused before any decoding, with allocations that do not grow with it.
func TestAttackHugeTokensCostNothing(t *testing.T) {
	r := newRig(t, nil)
	_, _, grand := chainOf(t, r.env)
	h, p, s := split(grand)
	huge := h + "." + p + strings.Repeat("A", 4<<20) + "." + s
	ctx := context.Background()
	if _, err := r.v.Verify(ctx, huge); !errors.Is(err, chain.ErrMalformedToken) {
		t.Fatalf("4 MiB token: %v", err)
	}
	const n = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		_, _ = r.v.Verify(ctx, huge)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 64<<10 {
		t.Errorf("refusing a 4 MiB token allocates %d bytes per call", per)
	}
}

// TestAttackMiddlewareHeaders: oversized and repeated Authorization headers
// at a protected API (net/http and echo).
func TestAttackMiddlewareHeaders(t *testing.T) {
	r := newRig(t, nil)
	_, _, grand := chainOf(t, r.env)
	h, p, s := split(grand)
	bigToken := h + "." + p + strings.Repeat("A", 512<<10) + "." + s
	for name, u := range protectedServers(t, r.v) {
		t.Run(name+": 512 KiB bearer token", func(t *testing.T) {
			a := get(t, u, "Bearer "+bigToken)
			if a.status != http.StatusUnauthorized || !strings.Contains(a.authn, `error="invalid_token"`) ||
				!strings.Contains(a.body, "longer than 16384 bytes") {
				t.Fatalf("got %d %q %.200s", a.status, a.authn, a.body)
			}
			if len(a.authn)+len(a.body) > 2048 {
				t.Errorf("the refusal is %d bytes: it must not echo the token", len(a.authn)+len(a.body))
			}
		})
		t.Run(name+": two Authorization headers", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Add("Authorization", "Bearer "+grand)
			req.Header.Add("Authorization", "Bearer not-a-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// RFC 9110 §5.3 allows one; a proxy or log reading the last one
			// would see another token than the API does.
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("two Authorization field lines: %d, want 400", resp.StatusCode)
			}
		})
	}
}
