package httpapi_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// The attack suite of the token endpoint (issue 7): one row per attack, each
// with the exact refusal it must get. Tokens are crafted three ways:
//   - raw edits that keep the original signature (tampering by anyone);
//   - tokens signed by an attacker's key or an HMAC secret (algorithm and key
//     confusion);
//   - env.Forge, which re-signs edited claims with Mandate's own key: a token
//     Mandate would never issue, to test the checks that do not rest on the
//     signature (as a key compromise or a bug could produce).
//
// A row with a gap describes a defence that is missing today: when the
// refusal is not the one wanted, the row is skipped with "MISSING: ...",
// naming what was observed instead, so the suite stays green and the gap
// stays visible in -v output.

type attackRow struct {
	name   string
	do     func(t *testing.T) dt.Response
	status int
	code   string
	frag   string // a distinctive part of error_description
	gap    string // non-empty: a known missing defence (skip on mismatch)
}

// atkMismatch says how r differs from the refusal a row wants ("" when it matches).
func atkMismatch(r dt.Response, tt attackRow) string {
	desc := r.String("error_description")
	switch {
	case r.Status != tt.status || r.Error() != tt.code:
		if r.Status == http.StatusOK {
			return fmt.Sprintf("got 200 (a token was issued), want %d %q", tt.status, tt.code)
		}
		return fmt.Sprintf("got %d %q (%.200s), want %d %q", r.Status, r.Error(), r.Raw, tt.status, tt.code)
	case tt.code != "" && desc == "":
		return "refusal without an error_description"
	case tt.frag != "" && !strings.Contains(desc, tt.frag):
		return fmt.Sprintf("error_description %q lacks %q", desc, tt.frag)
	case tt.code != "" && r.Header.Get("Cache-Control") != "no-store":
		return "refusal without Cache-Control: no-store"
	}
	return ""
}

func runAttacks(t *testing.T, env *dt.Env, rows []attackRow) {
	t.Helper()
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := env.Bolt.Stats(env.Clock.Now())
			r := tt.do(t)
			if m := atkMismatch(r, tt); m != "" {
				if tt.gap != "" {
					t.Skipf("MISSING: %s; observed: %s", tt.gap, m)
				}
				t.Fatal(m)
			}
			if after, _ := env.Bolt.Stats(env.Clock.Now()); after.Tokens != before.Tokens {
				t.Errorf("a refused request stored a token")
			}
			if strings.Contains(string(r.Raw), "secret-for-") {
				t.Errorf("the refusal echoes a secret: %s", r.Raw)
			}
		})
	}
}

// atkExchange is a row action: a token exchange by client.
func atkExchange(env *dt.Env, client, subject, actor string, extra url.Values) func(*testing.T) dt.Response {
	return func(t *testing.T) dt.Response { return env.Exchange(t, client, subject, actor, extra) }
}

// atkRaw posts a raw body to the token endpoint as client (no credentials
// when client is empty), after mutate has had its way with the request.
func atkRaw(env *dt.Env, client string, body io.Reader, mutate func(*http.Request)) func(*testing.T) dt.Response {
	return func(t *testing.T) dt.Response {
		req, err := http.NewRequest(http.MethodPost, env.Endpoint(t, "token_endpoint"), body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if client != "" {
			req.Header.Set("Authorization", dt.BasicAuth(client, dt.Secret(client)))
		}
		if mutate != nil {
			mutate(req)
		}
		return env.Do(t, req)
	}
}

// atkAgent delegates root, as the orchestrator, to an ephemeral agent named sub.
func atkAgent(env *dt.Env, root, sub string) func(*testing.T) dt.Response {
	return func(t *testing.T) dt.Response {
		f := dt.ExchangeForm(root, "", url.Values{"scope": {"db:read:orders"}})
		f.Set("actor_token", agentToken(t, env, newKey(t), func(c map[string]any) { c["sub"] = sub }))
		f.Set("actor_token_type", oauth.TokenTypeJWT)
		return env.Post(t, "token_endpoint", "orchestrator", f)
	}
}

func atkHMAC(h func() hash.Hash, secret []byte) func([]byte) []byte {
	return func(in []byte) []byte { m := hmac.New(h, secret); m.Write(in); return m.Sum(nil) }
}

// atkPayload is the encoded payload of a token.
func atkPayload(tok string) string { return strings.Split(tok, ".")[1] }

// TestAttackTokenEndpoint: every way of getting more out of the token
// endpoint than a token grants is refused with the code docs/design.md names.
func TestAttackTokenEndpoint(t *testing.T) {
	const maxDepth = 3
	env := dt.New(t, dt.Options{MaxDepth: maxDepth})
	// Task A: orchestrator → researcher (db:read:* tools:search, db+tools) → db-agent (db:read:orders, db).
	root, child, grand := chainOf(t, env)
	depth3 := env.Delegate(t, "db-agent", grand, "", nil) // max_depth reached
	// Task B: the same chain, with its root revoked.
	rootB, childB, grandB := chainOf(t, env)
	if r := revoke(t, env, "orchestrator", rootB); r.Status != http.StatusOK {
		t.Fatalf("revoke task B: %d %s", r.Status, r.Raw)
	}
	rc, cc := env.Claims(t, root), env.Claims(t, child)
	rcB, ccB := env.Claims(t, rootB), env.Claims(t, childB)
	researcherID, outsiderID := env.Identity(t, "researcher"), env.Identity(t, "outsider")
	outsiderRoot := env.Mint(t, "outsider", nil)

	kid := env.Keys.CurrentKeyID()
	pk, _ := env.Keys.ResolveKey(kid)
	pub := pk.Key.(ed25519.PublicKey)
	jwks := env.Get(t, env.Endpoint(t, "jwks_uri")).Raw
	evil := dt.NewKeyHost(t)
	p := atkPayload(grand) // db-agent's genuine claims, under forged headers
	now := dt.Start

	forge := func(base string, edit func(*jwt.Claims)) string { return env.Forge(t, base, edit) }
	asDB := func(tok string) func(*testing.T) dt.Response { return atkExchange(env, "db-agent", tok, "", nil) }
	asResearcher := func(extra url.Values) func(*testing.T) dt.Response {
		return atkExchange(env, "researcher", child, "", extra)
	}
	scope := func(s string) url.Values { return url.Values{"scope": {s}} }
	aud := func(a ...string) url.Values { return url.Values{"audience": a} }
	form := func(s string) io.Reader { return strings.NewReader(s) }
	exchangeBody := func(extra string) io.Reader {
		return form(dt.ExchangeForm(child, "", nil).Encode() + extra)
	}
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	const (
		badReq  = oauth.CodeInvalidRequest
		badScp  = oauth.CodeInvalidScope
		badTgt  = oauth.CodeInvalidTarget
		badSig  = "subject_token is not a valid Mandate token: invalid signature"
		badAlg  = "subject_token is not a valid Mandate token: signature algorithm not allowed"
		noKey   = "subject_token is not a valid Mandate token: unknown signing key"
		badTree = "subject_token has a malformed delegation chain"
		notHeld = "subject_token is held by another client; only its holder may exchange it"
		notCov  = "is not covered by the subject_token's scope"
		notAud  = "is not within the subject_token's audience"
		badChar = "outside RFC 6749"
		emptyTk = "empty scope token"
	)
	rows := []attackRow{
		// --- signature, algorithm and key confusion ---
		{name: "alg none, empty signature", do: asDB(dt.JWS(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, p, nil)),
			status: 400, code: badReq, frag: badAlg + `: "none"`},
		{name: "alg none keeping the original signature", do: asDB(dt.JWS(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, p,
			func([]byte) []byte {
				s, _ := base64.RawURLEncoding.DecodeString(strings.Split(grand, ".")[2])
				return s
			})),
			status: 400, code: badReq, frag: badAlg + `: "none"`},
		{name: "alg None in another case", do: asDB(dt.JWS(map[string]any{"alg": "None", "typ": "at+jwt", "kid": kid}, p, nil)),
			status: 400, code: badReq, frag: badAlg + `: "None"`},
		{name: "HS256 keyed with the raw public key", do: asDB(dt.JWS(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, p, atkHMAC(sha256.New, pub))),
			status: 400, code: badReq, frag: badAlg + `: "HS256"`},
		{name: "HS256 keyed with the published JWKS", do: asDB(dt.JWS(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, p, atkHMAC(sha256.New, jwks))),
			status: 400, code: badReq, frag: badAlg + `: "HS256"`},
		{name: "HS512 keyed with the public key's base64url", do: asDB(dt.JWS(map[string]any{"alg": "HS512", "typ": "at+jwt", "kid": kid}, p,
			atkHMAC(sha512.New, []byte(base64.RawURLEncoding.EncodeToString(pub))))),
			status: 400, code: badReq, frag: badAlg + `: "HS512"`},
		{name: "ES256 claimed for the EdDSA key", do: asDB(dt.JWS(map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: "is for EdDSA, token says ES256"},
		{name: "typ JWT, signed with Mandate's key", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}, p, dt.Ed25519Signer(env.SigningKey(t)))),
			status: 400, code: badReq, frag: `typ "JWT", want "at+jwt"`},
		{name: "crit extension, signed with Mandate's key", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": []string{"x"}, "x": 1}, p, dt.Ed25519Signer(env.SigningKey(t)))),
			status: 400, code: badReq, frag: "crit"},
		{name: "unknown kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "no-such-key"}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: noKey + `: kid "no-such-key"`},
		{name: "no kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt"}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: noKey + ": no kid in header"},
		{name: "jku to the attacker's JWKS, attacker's kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
			"jku": evil.URL + "/jwks.json"}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: noKey + `: kid "attacker-key"`},
		{name: "jku to the attacker's JWKS, Mandate's kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid,
			"jku": evil.URL + "/jwks.json"}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: badSig},
		{name: "x5u to the attacker's certificate", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
			"x5u": evil.URL + "/cert.pem"}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: noKey + `: kid "attacker-key"`},
		{name: "jwk header with the attacker's key and kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
			"jwk": evil.JWK}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: noKey + `: kid "attacker-key"`},
		{name: "jwk header with the attacker's key under Mandate's kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid,
			"jwk": evil.JWK}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: badSig},
		{name: "jwk header with the attacker's key and no kid", do: asDB(dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt",
			"jwk": evil.JWK}, p, dt.Ed25519Signer(evil.Priv))),
			status: 400, code: badReq, frag: noKey + ": no kid in header"},
		{name: "payload changed after signing", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["scope"] = "db:*" })),
			status: 400, code: badReq, frag: badSig},
		{name: "signature with non-canonical base64", do: asDB(dt.NonCanonical(grand)),
			status: 400, code: badReq, frag: "signature is not base64url"},
		{name: "signature stripped", do: asDB(strings.Join(strings.Split(grand, ".")[:2], ".") + "."),
			status: 400, code: badReq, frag: badSig},
		{name: "JWS JSON serialization", do: asDB(`{"payload":"` + p + `","signatures":[]}`),
			status: 400, code: badReq, frag: "subject_token is malformed: not a JWS compact serialization"},

		// --- lineage and act: tampered (original signature) ---
		{name: "lineage edited, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["lineage"] = []string{rcB.ID, cc.ID} })),
			status: 400, code: badReq, frag: badSig},
		{name: "lineage truncated, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["lineage"] = []string{cc.ID} })),
			status: 400, code: badReq, frag: badSig},
		{name: "lineage reordered, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["lineage"] = []string{cc.ID, rc.ID} })),
			status: 400, code: badReq, frag: badSig},
		{name: "act edited, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) {
			c["act"] = map[string]any{"sub": "db-agent", "act": map[string]any{"sub": "orchestrator"}}
		})), status: 400, code: badReq, frag: badSig},
		{name: "act truncated, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["act"] = map[string]any{"sub": "db-agent"} })),
			status: 400, code: badReq, frag: badSig},
		{name: "act reordered, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) {
			c["act"] = map[string]any{"sub": "researcher", "act": map[string]any{"sub": "db-agent"}}
		})), status: 400, code: badReq, frag: badSig},
		{name: "act dropped, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { delete(c, "act") })),
			status: 400, code: badReq, frag: badSig},
		{name: "lineage grafted from another task, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["lineage"] = []string{rcB.ID, ccB.ID} })),
			status: 400, code: badReq, frag: badSig},

		// --- lineage and act: correctly signed but inconsistent (Forge) ---
		{name: "forged: lineage repeats a jti", do: asDB(forge(grand, func(c *jwt.Claims) { c.Lineage = []string{rc.ID, rc.ID} })),
			status: 400, code: badReq, frag: badTree + ": jti repeated in lineage"},
		{name: "forged: lineage names the token itself", do: asDB(forge(grand, func(c *jwt.Claims) { c.Lineage = append(c.Lineage, c.ID) })),
			status: 400, code: badReq, frag: badTree + ": jti repeated in lineage"},
		{name: "forged: lineage with an empty jti", do: asDB(forge(grand, func(c *jwt.Claims) { c.Lineage = []string{rc.ID, ""} })),
			status: 400, code: badReq, frag: badTree + ": empty jti in lineage"},
		{name: "forged: lineage beyond max_depth", do: asDB(forge(grand, func(c *jwt.Claims) { c.Lineage = many(maxDepth+1, func(i int) string { return fmt.Sprint("j", i) }) })),
			status: 400, code: badReq, frag: badTree + ": lineage of 4 exceeds max depth 3"},
		{name: "forged: act dropped", do: asDB(forge(grand, func(c *jwt.Claims) { c.Act = nil })),
			status: 400, code: badReq, frag: badTree + `: no act claim but holder "db-agent" is not the subject`},
		{name: "forged: act names another holder", do: asDB(forge(grand, func(c *jwt.Claims) { c.Act.Subject = "researcher" })),
			status: 400, code: badReq, frag: badTree + `: current actor "researcher" is not the holder "db-agent"`},
		{name: "forged: act reordered", do: asDB(forge(grand, func(c *jwt.Claims) {
			c.Act = &jwt.Actor{Subject: "researcher", Act: &jwt.Actor{Subject: "db-agent"}}
		})), status: 400, code: badReq, frag: badTree + ": current actor"},
		{name: "forged: more actors than ancestors", do: asDB(forge(grand, func(c *jwt.Claims) {
			c.Act = &jwt.Actor{Subject: "db-agent", Act: &jwt.Actor{Subject: "a", Act: &jwt.Actor{Subject: "b", Act: &jwt.Actor{Subject: "c"}}}}
		})), status: 400, code: badReq, frag: badTree + ": 4 actors for 2 ancestors"},
		{name: "forged: actor without sub", do: asDB(forge(grand, func(c *jwt.Claims) { c.Act.Act = &jwt.Actor{} })),
			status: 400, code: badReq, frag: badTree + ": actor without sub"},
		{name: "forged: grafted onto a revoked task", do: asDB(forge(grand, func(c *jwt.Claims) { c.Lineage = []string{rcB.ID, cc.ID} })),
			status: 400, code: badReq, frag: "subject_token descends from revoked token " + rcB.ID},
		{name: "forged: act truncated to hide an actor", do: asDB(forge(grand, func(c *jwt.Claims) { c.Act.Act = nil })),
			status: 400, code: badReq, frag: "subject_token does not match the record of its issuance (act differs)"},
		{name: "forged: lineage reordered", do: asDB(forge(grand, func(c *jwt.Claims) { c.Lineage = []string{cc.ID, rc.ID} })),
			status: 400, code: badReq, frag: "subject_token does not match the record of its issuance (lineage differs)"},
		{name: "forged: sub_iss dropped", do: asDB(forge(grand, func(c *jwt.Claims) { c.SubjectIssuer = "" })),
			status: 400, code: badReq, frag: badTree + ": sub_iss is required"},
		{name: "forged: sub_iss of an identity provider on a client's task", do: asDB(forge(grand, func(c *jwt.Claims) { c.SubjectIssuer = "https://idp.example" })),
			status: 400, code: badReq, frag: "subject_token does not match the record of its issuance (sub_iss differs)"},
		{name: "forged: lineage truncated to escape a revoked root", do: asDB(forge(grandB, func(c *jwt.Claims) { c.Lineage = []string{ccB.ID} })),
			status: 400, code: badReq, frag: "subject_token does not match the record of its issuance (lineage differs)"},
		{name: "forged: revoked task grafted onto a live one", do: asDB(forge(grandB, func(c *jwt.Claims) { c.Lineage = []string{rc.ID, ccB.ID} })),
			status: 400, code: badReq, frag: "subject_token does not match the record of its issuance (lineage differs)"},
		{name: "forged: may_act naming another actor", do: atkExchange(env, "orchestrator",
			forge(root, func(c *jwt.Claims) { c.MayAct = &jwt.Actor{Subject: "outsider"} }), researcherID, nil),
			status: 400, code: badReq, frag: `the subject_token's may_act does not allow "researcher" to act for its subject`},
		{name: "forged: a jti Mandate never issued", do: asDB(forge(grand, func(c *jwt.Claims) { c.ID = "never-issued-0000000000" })),
			status: 400, code: badReq, frag: "subject_token was not issued by this server"},

		// --- time and issuer ---
		{name: "expired", do: asDB(forge(grand, func(c *jwt.Claims) { c.Expiry = jwt.At(now.Add(-time.Second)) })),
			status: 400, code: badReq, frag: "subject_token has expired"},
		{name: "expiring this very second", do: asDB(forge(grand, func(c *jwt.Claims) { c.Expiry = jwt.At(now) })),
			status: 400, code: badReq, frag: "subject_token has expired"},
		{name: "not valid yet (nbf in the future)", do: asDB(forge(grand, func(c *jwt.Claims) { c.NotBefore = jwt.At(now.Add(time.Hour)) })),
			status: 400, code: badReq, frag: "subject_token is not valid yet"},
		{name: "nbf just beyond the 5 s leeway", do: asDB(forge(grand, func(c *jwt.Claims) { c.NotBefore = jwt.At(now.Add(6 * time.Second)) })),
			status: 400, code: badReq, frag: "subject_token is not valid yet"},
		{name: "issued in the future (iat)", do: asDB(forge(grand, func(c *jwt.Claims) { c.IssuedAt = jwt.At(now.Add(time.Hour)) })),
			status: 400, code: badReq, frag: "subject_token is not valid yet"},
		{name: "wrong iss", do: asDB(forge(grand, func(c *jwt.Claims) { c.Issuer = "https://evil.example" })),
			status: 400, code: badReq, frag: `subject_token issuer "https://evil.example" is neither Mandate nor a trusted issuer`},
		{name: "iss with a trailing slash", do: asDB(forge(grand, func(c *jwt.Claims) { c.Issuer = env.URL + "/" })),
			status: 400, code: badReq, frag: "is neither Mandate nor a trusted issuer"},
		{name: "iss in upper case", do: asDB(forge(grand, func(c *jwt.Claims) { c.Issuer = strings.ToUpper(env.URL) })),
			status: 400, code: badReq, frag: "is neither Mandate nor a trusted issuer"},
		{name: "iss missing", do: asDB(forge(grand, func(c *jwt.Claims) { c.Issuer = "" })),
			status: 400, code: badReq, frag: `subject_token is malformed: no "iss" claim`},
		{name: "exp extended, original signature", do: asDB(dt.Tamper(t, grand, func(c map[string]any) { c["exp"] = now.Add(24 * time.Hour).Unix() })),
			status: 400, code: badReq, frag: badSig},

		// --- scope widening (the researcher holds db:read:* tools:search) ---
		{name: "wildcard db:* from db:read:*", do: asResearcher(scope("db:*")), status: 400, code: badScp, frag: `scope "db:*" ` + notCov},
		{name: "wildcard * from db:read:*", do: asResearcher(scope("*")), status: 400, code: badScp, frag: `scope "*" ` + notCov},
		{name: "sibling wildcard db:write:*", do: asResearcher(scope("db:write:*")), status: 400, code: badScp, frag: `scope "db:write:*" ` + notCov},
		{name: "parent segment without wildcard db:read", do: asResearcher(scope("db:read")), status: 400, code: badScp, frag: `scope "db:read" ` + notCov},
		{name: "inner wildcard db:*:orders", do: asResearcher(scope("db:*:orders")), status: 400, code: badScp, frag: `scope "db:*:orders" ` + notCov},
		{name: "wildcard on a literal tools:search:*", do: asResearcher(scope("tools:search:*")), status: 400, code: badScp, frag: `scope "tools:search:*" ` + notCov},
		{name: "widening hidden after a covered scope", do: asResearcher(scope("db:read:orders db:write:orders")), status: 400, code: badScp, frag: `scope "db:write:orders" ` + notCov},
		{name: "case DB:READ:orders", do: asResearcher(scope("DB:READ:orders")), status: 400, code: badScp, frag: `scope "DB:READ:orders" ` + notCov},
		{name: "case Tools:Search", do: asResearcher(scope("Tools:Search")), status: 400, code: badScp, frag: `scope "Tools:Search" ` + notCov},
		{name: "tab as separator", do: asResearcher(scope("db:read:orders\ttools:search")), status: 400, code: badScp, frag: badChar},
		{name: "newline as separator", do: asResearcher(scope("db:read:orders\ntools:search")), status: 400, code: badScp, frag: badChar},
		{name: "double space", do: asResearcher(scope("db:read:orders  tools:search")), status: 400, code: badScp, frag: emptyTk},
		{name: "leading space", do: asResearcher(scope(" db:read:orders")), status: 400, code: badScp, frag: emptyTk},
		{name: "trailing space", do: asResearcher(scope("db:read:orders ")), status: 400, code: badScp, frag: emptyTk},
		{name: "no-break space", do: asResearcher(scope("db:read:orders\u00a0tools:search")), status: 400, code: badScp, frag: badChar},
		{name: "zero-width space", do: asResearcher(scope("db:read:orders\u200b")), status: 400, code: badScp, frag: badChar},
		{name: "NUL byte", do: asResearcher(scope("db:read:orders\x00")), status: 400, code: badScp, frag: badChar},
		{name: "Cyrillic е look-alike", do: asResearcher(scope("db:r\u0435ad:orders")), status: 400, code: badScp, frag: badChar},
		{name: "Cyrillic о look-alikes in tools", do: asResearcher(scope("t\u043e\u043els:search")), status: 400, code: badScp, frag: badChar},
		{name: "fullwidth colon look-alike", do: asResearcher(scope("db\uff1aread:orders")), status: 400, code: badScp, frag: badChar},
		{name: "fullwidth asterisk look-alike", do: asResearcher(scope("db:\uff0a")), status: 400, code: badScp, frag: badChar},
		{name: "more than 64 scopes", do: asResearcher(scope(strings.Join(many(65, func(i int) string { return fmt.Sprint("db:read:t", i) }), " "))),
			status: 400, code: badScp, frag: "more than 64 scopes"},
		{name: "one scope of 257 bytes under a wildcard", do: asResearcher(scope("db:read:" + strings.Repeat("x", 249))),
			status: 400, code: badScp, frag: "is longer than 256 bytes"},
		{name: "64 scopes of 1,000 bytes under a wildcard (the 86 KB token)", do: asResearcher(scope(strings.Join(many(64, func(i int) string {
			return fmt.Sprintf("db:read:%03d%s", i, strings.Repeat("x", 989))
		}), " "))), status: 400, code: badScp, frag: "longer than 4096 bytes"},
		{name: "repeated scope parameter", do: atkRaw(env, "researcher", exchangeBody("&scope=db:read:orders&scope=db:*"), nil),
			status: 400, code: badReq, frag: `parameter "scope" appears more than once`},
		{name: "repeated scope parameter, first one empty", do: atkRaw(env, "researcher", exchangeBody("&scope=&scope=db:*"), nil),
			status: 400, code: badReq, frag: `parameter "scope" appears more than once`},
		{name: "repeated identical scope parameter", do: atkRaw(env, "researcher", exchangeBody("&scope=db:read:orders&scope=db:read:orders"), nil),
			status: 400, code: badReq, frag: `parameter "scope" appears more than once`},
		{name: "repeated actor_token", do: atkRaw(env, "researcher", exchangeBody("&actor_token="+outsiderID+"&actor_token="+researcherID+"&actor_token_type="+url.QueryEscape(oauth.TokenTypeAccessToken)), nil),
			status: 400, code: badReq, frag: `parameter "actor_token" appears more than once`},
		{name: "repeated actor_token_type", do: atkRaw(env, "researcher", exchangeBody("&actor_token="+outsiderID+"&actor_token_type=a&actor_token_type=b"), nil),
			status: 400, code: badReq, frag: `parameter "actor_token_type" appears more than once`},
		{name: "repeated subject_token_type", do: atkRaw(env, "researcher", exchangeBody("&subject_token_type="+url.QueryEscape(oauth.TokenTypeJWT)), nil),
			status: 400, code: badReq, frag: `parameter "subject_token_type" appears more than once`},
		{name: "repeated requested_token_type", do: atkRaw(env, "researcher", exchangeBody("&requested_token_type=a&requested_token_type=b"), nil),
			status: 400, code: badReq, frag: `parameter "requested_token_type" appears more than once`},
		{name: "repeated grant_type", do: atkRaw(env, "researcher", exchangeBody("&grant_type=client_credentials"), nil),
			status: 400, code: badReq, frag: `parameter "grant_type" appears more than once`},
		{name: "scope beyond the new holder's registration", do: atkExchange(env, "orchestrator", root, env.Identity(t, "db-agent"), scope("tools:search")),
			status: 400, code: badScp, frag: `scope "tools:search" is beyond client "db-agent"'s registered scopes`},

		// --- audience widening (the researcher holds https://db.example and https://tools.example) ---
		{name: "foreign audience", do: asResearcher(aud("https://mail.example")), status: 400, code: badTgt, frag: `audience "https://mail.example" ` + notAud},
		{name: "foreign resource", do: asResearcher(url.Values{"resource": {"https://mail.example"}}), status: 400, code: badTgt, frag: `audience "https://mail.example" ` + notAud},
		{name: "foreign audience next to a granted one", do: asResearcher(aud("https://db.example", "https://mail.example")), status: 400, code: badTgt, frag: notAud},
		{name: "audience in upper case", do: asResearcher(aud("HTTPS://DB.EXAMPLE")), status: 400, code: badTgt, frag: notAud},
		{name: "audience with a trailing slash", do: asResearcher(aud("https://db.example/")), status: 400, code: badTgt, frag: notAud},
		{name: "audience with a path", do: asResearcher(aud("https://db.example/admin")), status: 400, code: badTgt, frag: notAud},
		{name: "audience with a Cyrillic look-alike", do: asResearcher(aud("https://db.\u0435xample")), status: 400, code: badTgt, frag: notAud},
		{name: "audience as a suffix domain", do: asResearcher(aud("https://db.example.evil.example")), status: 400, code: badTgt, frag: notAud},
		{name: "more than 64 audiences", do: asResearcher(aud(many(65, func(i int) string { return "https://db.example" })...)),
			status: 400, code: badTgt, frag: "more than 64 audiences requested"},
		{name: "audience beyond the new holder's registration", do: atkExchange(env, "orchestrator", root, env.Identity(t, "db-agent"), aud("https://tools.example")),
			status: 400, code: badTgt, frag: `audience "https://tools.example" is beyond client "db-agent"'s registered audiences`},

		// --- holders, depth and revocation ---
		{name: "another agent's token", do: atkExchange(env, "outsider", child, "", nil), status: 400, code: badReq, frag: notHeld},
		{name: "another agent's token, delegated to the thief", do: atkExchange(env, "outsider", child, outsiderID, nil), status: 400, code: badReq, frag: notHeld},
		{name: "another agent's token, delegated to its rightful holder", do: atkExchange(env, "outsider", child, researcherID, nil), status: 400, code: badReq, frag: notHeld},
		{name: "a child given away, by the parent's holder", do: atkExchange(env, "orchestrator", child, "", nil), status: 400, code: badReq, frag: notHeld},
		{name: "a stolen delegated token as actor_token", do: atkExchange(env, "outsider", outsiderRoot, child, nil),
			status: 400, code: badReq, frag: "actor_token must be the new actor's own token"},
		{name: "the subject_token as its own actor_token", do: atkExchange(env, "db-agent", grand, grand, nil),
			status: 400, code: badReq, frag: "actor_token must be the new actor's own token"},
		{name: "the actor's scoped bearer root as actor_token (its powers handed to the giver)", do: atkExchange(env, "orchestrator", root, env.Mint(t, "researcher", nil), nil),
			status: 400, code: badReq, frag: "actor_token must be the actor's identity token"},
		{name: "the actor's root for one API with one scope as actor_token", do: atkExchange(env, "orchestrator", root,
			env.Mint(t, "researcher", url.Values{"audience": {"https://db.example"}, "scope": {"db:read:x"}}), nil),
			status: 400, code: badReq, frag: "actor_token must be the actor's identity token"},
		{name: "an identity token as subject_token (it has nothing to delegate)", do: atkExchange(env, "researcher", env.Identity(t, "researcher"), env.Identity(t, "db-agent"), nil),
			status: 400, code: badScp, frag: "subject_token carries no scope, so there is nothing to delegate"},
		{name: "an identity token with a scope", do: func(t *testing.T) dt.Response {
			return env.Post(t, "token_endpoint", "researcher", url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {env.URL}, "scope": {"db:read:x"}})
		}, status: 400, code: badScp, frag: "carries no scope"},
		{name: "depth overflow", do: asDB(depth3), status: 400, code: badReq, frag: "delegation depth 4 would exceed max_depth 3"},
		// --- ephemeral agents named so a path, a Cedar id or a log reads them otherwise ---
		{name: "an ephemeral agent named ..", do: atkAgent(env, root, "orchestrator/.."), status: 400, code: badReq, frag: "is outside client"},
		{name: "an ephemeral agent named .", do: atkAgent(env, root, "orchestrator/."), status: 400, code: badReq, frag: "is outside client"},
		{name: "an ephemeral agent named like a flag", do: atkAgent(env, root, "orchestrator/--all"), status: 400, code: badReq, frag: "is outside client"},
		{name: "an ephemeral agent named ~", do: atkAgent(env, root, "orchestrator/~"), status: 400, code: badReq, frag: "is outside client"},
		{name: "depth overflow, delegating to another agent", do: atkExchange(env, "db-agent", depth3, researcherID, nil),
			status: 400, code: badReq, frag: "delegation depth 4 would exceed max_depth 3"},
		{name: "the revoked root itself", do: atkExchange(env, "orchestrator", rootB, "", nil), status: 400, code: badReq, frag: "subject_token has been revoked"},
		{name: "child of a revoked root", do: atkExchange(env, "researcher", childB, "", nil),
			status: 400, code: badReq, frag: "subject_token descends from revoked token " + rcB.ID},
		{name: "grandchild of a revoked root", do: asDB(grandB), status: 400, code: badReq, frag: "subject_token descends from revoked token " + rcB.ID},
		{name: "grandchild of a revoked root, delegated onwards", do: atkExchange(env, "db-agent", grandB, researcherID, nil),
			status: 400, code: badReq, frag: "subject_token descends from revoked token " + rcB.ID},

		// --- sizes ---
		{name: "oversized body", do: atkRaw(env, "researcher", form("grant_type=client_credentials&pad="+strings.Repeat("a", 64<<10)), nil),
			status: 413, code: badReq, frag: "request body larger than 65536 bytes"},
		{name: "oversized body without credentials", do: atkRaw(env, "", form("pad="+strings.Repeat("a", 1<<20)), nil),
			status: 413, code: badReq, frag: "request body larger than 65536 bytes"},
		{name: "oversized chunked body", do: atkRaw(env, "researcher", io.MultiReader(form("grant_type=client_credentials&pad="), strings.NewReader(strings.Repeat("a", 80<<10))), nil),
			status: 413, code: badReq, frag: "request body larger than 65536 bytes"},
		{name: "oversized subject_token", do: asDB(grand[:strings.LastIndexByte(grand, '.')] + "." + strings.Repeat("A", tokens.MaxTokenSize)),
			status: 400, code: badReq, frag: "subject_token is malformed: longer than 16384 bytes"},
		{name: "oversized actor_token", do: atkExchange(env, "db-agent", grand, researcherID+strings.Repeat("A", tokens.MaxTokenSize), nil),
			status: 400, code: badReq, frag: "actor_token is not a valid Mandate token: malformed token: longer than 16384 bytes"},
		{name: "thousands of audience parameters", do: atkRaw(env, "researcher", exchangeBody(strings.Repeat("&audience=x", 5000)), nil),
			status: 400, code: badTgt, frag: "more than 64 audiences requested"},
		{name: "oversized DPoP header", do: atkRaw(env, "researcher", exchangeBody(""), func(r *http.Request) { r.Header.Set("DPoP", strings.Repeat("A", 9<<10)) }),
			status: 400, code: oauth.CodeInvalidDPoPProof, frag: "not a compact JWS"},
		{name: "two DPoP headers", do: atkRaw(env, "researcher", exchangeBody(""), func(r *http.Request) { r.Header.Add("DPoP", "a.b.c"); r.Header.Add("DPoP", "d.e.f") }),
			status: 400, code: oauth.CodeInvalidDPoPProof, frag: "more than one DPoP header"},
		{name: "oversized header (40 KiB, over the 32 KiB of decisions.md)", do: atkRaw(env, "researcher", exchangeBody(""), func(r *http.Request) {
			r.Header.Set("X-Padding", strings.Repeat("a", 40<<10))
		}), status: http.StatusRequestHeaderFieldsTooLarge, code: "",
		// the harness serves with httpapi.MaxHeaderBytes, as serve does
		},
		{name: "two Authorization headers", do: atkRaw(env, "researcher", exchangeBody(""), func(r *http.Request) {
			r.Header.Add("Authorization", dt.BasicAuth("outsider", dt.Secret("outsider")))
		}), status: 400, code: badReq,
			frag: "more than one Authorization header"},
	}
	runAttacks(t, env, rows)

	t.Run("headers pointing at keys are never fetched", func(t *testing.T) {
		if n := evil.Hits.Load(); n != 0 {
			t.Fatalf("the attacker's key host got %d requests", n)
		}
	})
}

// TestAttackHeadersNamingKeysAreIgnored: a token genuinely signed by Mandate
// whose header also names jku, x5u and jwk (an attacker's key) is verified
// with Mandate's own key by kid, and nothing named in it is ever fetched.
func TestAttackHeadersNamingKeysAreIgnored(t *testing.T) {
	env := dt.New(t, dt.Options{})
	_, _, grand := chainOf(t, env)
	evil := dt.NewKeyHost(t)
	tok := dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": env.Keys.CurrentKeyID(),
		"jku": evil.URL + "/jwks.json", "x5u": evil.URL + "/cert.pem", "jwk": evil.JWK}, atkPayload(grand), dt.Ed25519Signer(env.SigningKey(t)))
	r := env.Exchange(t, "db-agent", tok, "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("a genuine token with extra key headers: %d %s", r.Status, r.Raw)
	}
	// The same header over an attacker's signature is refused (the key is Mandate's, by kid).
	forged := dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": env.Keys.CurrentKeyID(),
		"jku": evil.URL + "/jwks.json", "x5u": evil.URL + "/cert.pem", "jwk": evil.JWK}, atkPayload(grand), dt.Ed25519Signer(evil.Priv))
	expectError(t, env.Exchange(t, "db-agent", forged, "", nil), 400, oauth.CodeInvalidRequest)
	if n := evil.Hits.Load(); n != 0 {
		t.Fatalf("the key host named in the header got %d requests", n)
	}
}

// TestAttackLifetimeExtensionIsClamped: docs/design.md's contract is exp =
// min(now + delegated_ttl, parent exp): a child asking to outlive its parent
// is clamped, not refused, whatever it sends (RFC 8693 has no lifetime
// parameter; unknown parameters are ignored).
func TestAttackLifetimeExtensionIsClamped(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: 10 * time.Minute, DelegatedTTL: 5 * time.Minute})
	root := env.Mint(t, "orchestrator", nil)
	rootExp := env.Claims(t, root).Expiry
	env.Clock.Advance(8 * time.Minute) // 2 minutes left on the root
	ask := url.Values{"expires_in": {"86400"}, "exp": {"9999999999"}, "lifetime": {"86400"}, "ttl": {"1d"}}
	r := env.Exchange(t, "orchestrator", root, env.Identity(t, "researcher"), ask)
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.Status, r.Raw)
	}
	child := r.String("access_token")
	if c := env.Claims(t, child); c.Expiry != rootExp || r.JSON["expires_in"] != float64(120) {
		t.Errorf("child exp %d (expires_in %v), want the parent's %d (120 s)", c.Expiry, r.JSON["expires_in"], rootExp)
	}
	env.Clock.Advance(time.Minute)
	r = env.Exchange(t, "researcher", child, "", ask)
	if r.Status != http.StatusOK {
		t.Fatalf("grandchild: %d %s", r.Status, r.Raw)
	}
	if c := env.Claims(t, r.String("access_token")); c.Expiry != rootExp || r.JSON["expires_in"] != float64(60) {
		t.Errorf("grandchild exp %d (expires_in %v), want the root's %d (60 s)", c.Expiry, r.JSON["expires_in"], rootExp)
	}
	env.Clock.Advance(time.Minute)
	r = env.Exchange(t, "researcher", child, "", ask)
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "subject_token has expired") {
		t.Errorf("description = %q", r.String("error_description"))
	}
}

// TestAttackReExchangeKeepsTheActChain: no exchange can drop or reset the
// act chain: naming oneself, handing the token back to its subject, or
// down-scoping, the result always carries every earlier actor and extends the
// lineage by its parent.
func TestAttackReExchangeKeepsTheActChain(t *testing.T) {
	env := dt.New(t, dt.Options{})
	_, child, grand := chainOf(t, env)
	act := func(names ...string) *jwt.Actor {
		var a *jwt.Actor
		for i := len(names) - 1; i >= 0; i-- {
			a = &jwt.Actor{Subject: names[i], Act: a}
		}
		return a
	}
	backToSubject := ""
	tests := []struct {
		name    string
		client  string
		subject func() string
		actor   func() string
		holder  string
		wantAct *jwt.Actor
	}{
		{"naming itself as actor", "researcher", func() string { return child }, func() string { return env.Mint(t, "researcher", nil) },
			"researcher", act("researcher")},
		{"down-scoping without an actor", "db-agent", func() string { return grand }, func() string { return "" },
			"db-agent", act("db-agent", "researcher")},
		{"naming itself as actor, two links deep", "db-agent", func() string { return grand }, func() string { return env.Mint(t, "db-agent", nil) },
			"db-agent", act("db-agent", "researcher")},
		{"handing the token back to its subject", "researcher", func() string { return child }, func() string { return env.Identity(t, "orchestrator") },
			"orchestrator", act("orchestrator", "researcher")},
		{"the subject re-exchanging what was handed back", "orchestrator", func() string { return backToSubject }, func() string { return "" },
			"orchestrator", act("orchestrator", "researcher")},
		{"the subject naming itself on what was handed back", "orchestrator", func() string { return backToSubject }, func() string { return env.Mint(t, "orchestrator", nil) },
			"orchestrator", act("orchestrator", "researcher")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := tt.subject()
			r := env.Exchange(t, tt.client, subject, tt.actor(), url.Values{"scope": {"db:read:orders"}})
			if r.Status != http.StatusOK {
				t.Fatalf("%d %s", r.Status, r.Raw)
			}
			tok := r.String("access_token")
			if backToSubject == "" && tt.holder == "orchestrator" {
				backToSubject = tok
			}
			p, c := env.Claims(t, subject), env.Claims(t, tok)
			if !reflect.DeepEqual(c.Act, tt.wantAct) {
				t.Errorf("act = %v, want %v", c.Act.Path(), tt.wantAct.Path())
			}
			if c.ClientID != tt.holder || c.Subject != "orchestrator" {
				t.Errorf("holder %q subject %q", c.ClientID, c.Subject)
			}
			if want := append(append([]string{}, p.Lineage...), p.ID); !reflect.DeepEqual(c.Lineage, want) {
				t.Errorf("lineage = %v, want %v", c.Lineage, want)
			}
		})
	}
}
