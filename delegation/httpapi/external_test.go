package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

const idpIssuer = "https://idp.example"

// idp is an external identity provider with its own ES256 key.
type idp struct {
	key  *ecdsa.PrivateKey
	kid  string
	jwks []byte
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(key.Public())
	_ = pub.Set(jwk.KeyIDKey, "idp-1")
	_ = pub.Set(jwk.AlgorithmKey, jwa.ES256)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	raw, _ := json.Marshal(set)
	return &idp{key: key, kid: "idp-1", jwks: raw}
}

func (p *idp) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, p.kid)
	_ = h.Set(jws.TypeKey, "JWT")
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, p.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func externalEnv(t *testing.T) (*dt.Env, *idp) {
	t.Helper()
	p := newIdP(t)
	env := dt.New(t, dt.Options{TrustedIssuers: []dt.TrustedIssuer{
		{Issuer: idpIssuer, Audience: "mandate", JWKS: p.jwks},
	}})
	return env, p
}

func userToken(exp time.Time, mutate func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": idpIssuer, "sub": "alice@example.com", "aud": "mandate",
		"iat": dt.Start.Unix(), "exp": exp.Unix(), "scope": "openid profile",
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestExternalSubjectBecomesARoot(t *testing.T) {
	env, p := externalEnv(t)
	ext := p.sign(t, userToken(dt.Start.Add(time.Hour), nil))
	r := env.Exchange(t, "orchestrator", ext, "", url.Values{"subject_token_type": {oauth.TokenTypeJWT}, "scope": {"db:read:*"}})
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	root := r.String("access_token")
	c := env.Claims(t, root)
	if c.Subject != "alice@example.com" || c.ClientID != "orchestrator" || len(c.Lineage) != 0 ||
		!reflect.DeepEqual(c.Act, &jwt.Actor{Subject: "orchestrator"}) || c.Scope != "db:read:*" {
		t.Errorf("external root = %+v act %+v", c, c.Act)
	}
	if c.Expiry != jwt.At(dt.Start.Add(15*time.Minute)) {
		t.Errorf("exp = %d, want now + root_ttl", c.Expiry)
	}
	// It delegates like any root, and the subject stays alice.
	child := env.Claims(t, env.Delegate(t, "orchestrator", root, "researcher", nil))
	if child.Subject != "alice@example.com" || !reflect.DeepEqual(child.Act, &jwt.Actor{Subject: "researcher", Act: &jwt.Actor{Subject: "orchestrator"}}) {
		t.Errorf("child of external root: sub %q act %+v", child.Subject, child.Act)
	}
	// With no scope requested the client's registration applies; the IdP's scope plays no part.
	r = env.Exchange(t, "researcher", ext, "", nil)
	if c := env.Claims(t, r.String("access_token")); c.Scope != "db:read:* tools:search" || c.ClientID != "researcher" {
		t.Errorf("default external root scope %q", c.Scope)
	}
}

func TestExternalRootNeverOutlivesTheExternalToken(t *testing.T) {
	env, p := externalEnv(t)
	ext := p.sign(t, userToken(dt.Start.Add(3*time.Minute), nil))
	r := env.Exchange(t, "orchestrator", ext, "", nil)
	if c := env.Claims(t, r.String("access_token")); c.Expiry != jwt.At(dt.Start.Add(3*time.Minute)) {
		t.Errorf("exp = %d, want the external token's", c.Expiry)
	}
}

func TestExternalSubjectRefusals(t *testing.T) {
	env, p := externalEnv(t)
	other := newIdP(t) // same kid, different key
	researcherID := env.Identity(t, "researcher")
	good := func(m func(map[string]any)) string { return p.sign(t, userToken(dt.Start.Add(time.Hour), m)) }
	payload := strings.Split(good(nil), ".")[1]
	hmacWith := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, key); m.Write(in); return m.Sum(nil) }
	}
	tests := []struct {
		name    string
		subject string
		actor   string
		extra   url.Values
		code    string
	}{
		{"alg none", dt.JWS(map[string]any{"alg": "none", "kid": p.kid}, payload, nil), "", nil, oauth.CodeInvalidRequest},
		{"HS256 keyed with the IdP's JWKS", dt.JWS(map[string]any{"alg": "HS256", "kid": p.kid}, payload, hmacWith(p.jwks)), "", nil, oauth.CodeInvalidRequest},
		{"a kid the trusted issuer does not publish", dt.JWS(map[string]any{"alg": "ES256", "kid": "idp-2"}, payload, nil), "", nil, oauth.CodeInvalidRequest},
		{"signed by another key", other.sign(t, userToken(dt.Start.Add(time.Hour), nil)), "", nil, oauth.CodeInvalidRequest},
		{"expired", p.sign(t, userToken(dt.Start.Add(-time.Second), nil)), "", nil, oauth.CodeInvalidRequest},
		{"wrong audience", good(func(c map[string]any) { c["aud"] = []string{"someone-else"} }), "", nil, oauth.CodeInvalidRequest},
		{"no exp", good(func(c map[string]any) { delete(c, "exp") }), "", nil, oauth.CodeInvalidRequest},
		{"no sub", good(func(c map[string]any) { delete(c, "sub") }), "", nil, oauth.CodeInvalidRequest},
		{"not yet valid", good(func(c map[string]any) { c["nbf"] = dt.Start.Add(10 * time.Minute).Unix() }), "", nil, oauth.CodeInvalidRequest},
		{"issued in the future", good(func(c map[string]any) { c["iat"] = dt.Start.Add(10 * time.Minute).Unix() }), "", nil, oauth.CodeInvalidRequest},
		{"with an actor token", good(nil), researcherID, nil, oauth.CodeInvalidRequest},
		{"may_act names another agent", good(func(c map[string]any) { c["may_act"] = map[string]any{"sub": "researcher"} }), "", nil, oauth.CodeInvalidRequest},
		{"may_act names another issuer's agent", good(func(c map[string]any) {
			c["may_act"] = map[string]any{"sub": "orchestrator", "iss": "https://elsewhere.example"}
		}), "", nil, oauth.CodeInvalidRequest},
		{"scope beyond the client", good(nil), "", url.Values{"scope": {"admin:*"}}, oauth.CodeInvalidScope},
		{"audience beyond the client", good(nil), "", url.Values{"audience": {"https://evil.example"}}, oauth.CodeInvalidTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectError(t, env.Exchange(t, "orchestrator", tt.subject, tt.actor, tt.extra), 400, tt.code)
		})
	}
	t.Run("may_act naming the client is honoured", func(t *testing.T) {
		ext := good(func(c map[string]any) { c["may_act"] = map[string]any{"sub": "orchestrator", "iss": env.URL} })
		if r := env.Exchange(t, "orchestrator", ext, "", nil); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
}

// TestAnExternalSubjectNamedLikeAClientIsNotThatClient: an identity
// provider's user called "orchestrator" gets roots whose sub_iss is the
// provider, so policy, verifiers and `revoke --subject` never mistake them
// for the orchestrator client's own tasks.
func TestAnExternalSubjectNamedLikeAClientIsNotThatClient(t *testing.T) {
	p := newIdP(t)
	env := dt.New(t, dt.Options{
		TrustedIssuers: []dt.TrustedIssuer{{Issuer: idpIssuer, Audience: "mandate", JWKS: p.jwks}},
		Policies: []policy.File{{Name: "p.cedar", Source: []byte(`
@id("all") permit (principal, action, resource);
@id("no-idp-writes") forbid (principal, action, resource)
  when { context.sub_iss == "https://idp.example" && context.scope_patterns.contains("db:write:*") };`)}},
	})
	own := env.Mint(t, "orchestrator", nil)
	r := env.Exchange(t, "orchestrator", p.sign(t, userToken(dt.Start.Add(time.Hour), func(c map[string]any) { c["sub"] = "orchestrator" })), "",
		url.Values{"scope": {"db:read:*"}})
	if r.Status != 200 {
		t.Fatalf("external root: %d %s", r.Status, r.Raw)
	}
	ext := r.String("access_token")
	if c := env.Claims(t, ext); c.Subject != "orchestrator" || c.SubjectIssuer != idpIssuer {
		t.Fatalf("external root: sub %q sub_iss %q", c.Subject, c.SubjectIssuer)
	}
	if c := env.Claims(t, own); c.SubjectIssuer != env.URL {
		t.Fatalf("client root: sub_iss %q", c.SubjectIssuer)
	}
	// Nor does the user's token name the orchestrator client as an actor.
	r = env.Exchange(t, "researcher", env.Mint(t, "researcher", nil), ext, url.Values{"scope": {"db:read:*"}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "actor_token must be the new actor's own token") {
		t.Errorf("a user's token as the actor token of the client named like the user: %s", r.Raw)
	}
	// Policy sees whose subject it is.
	r = env.Exchange(t, "orchestrator", p.sign(t, userToken(dt.Start.Add(time.Hour), func(c map[string]any) { c["sub"] = "orchestrator"; c["jti"] = "2" })), "",
		url.Values{"scope": {"db:write:x"}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "no-idp-writes") {
		t.Errorf("policy on sub_iss: %s", r.Raw)
	}
	// Revoking the client's subject leaves the user's task alone, and the
	// other way round.
	ops, _ := env.Svc.Registration("ops")
	if _, err := env.Svc.AdminRevoke(t.Context(), ops.ID, delegation.RevokeTarget{Subject: "orchestrator"}, "test"); err != nil {
		t.Fatal(err)
	}
	if active(t, env, own) || !active(t, env, ext) {
		t.Fatalf("revoke --subject orchestrator: own active %v, external active %v", active(t, env, own), active(t, env, ext))
	}
	if _, err := env.Svc.AdminRevoke(t.Context(), ops.ID, delegation.RevokeTarget{Subject: "orchestrator", SubjectIssuer: idpIssuer}, "test"); err != nil {
		t.Fatal(err)
	}
	if active(t, env, ext) {
		t.Fatal("revoke --subject orchestrator --subject-issuer idp left the user's task")
	}
	if i := introspect(t, env, own); i.String("sub_iss") != "" {
		t.Errorf("an inactive token says more than active:false: %s", i.Raw)
	}
}
