package httpapi_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

// assertionKey is a client's private_key_jwt key and its published JWKS.
type assertionKey struct {
	kid  string
	priv crypto.Signer
	jwks []byte
}

func newAssertionKey(t *testing.T, kid string) assertionKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	set := jwk.NewSet()
	_ = set.AddKey(k)
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return assertionKey{kid: kid, priv: priv, jwks: raw}
}

// sign makes a client assertion with claims, signed by k under kid.
func (k assertionKey) sign(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, kid)
	_ = h.Set(jws.TypeKey, "JWT")
	out, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func keyedEnv(t *testing.T) (*dt.Env, assertionKey) {
	t.Helper()
	key := newAssertionKey(t, "k1")
	clients := append(dt.DefaultClients(), dt.Client{ID: "keyed", Grants: dt.Both, Scopes: []string{"db:read:*"},
		Audiences: []string{"https://db.example"}, JWKS: key.jwks})
	return dt.New(t, dt.Options{Clients: clients}), key
}

// TestPrivateKeyJWT: a client registered with keys authenticates with an
// assertion it signs (RFC 7523 §2.2); each assertion works once.
func TestPrivateKeyJWT(t *testing.T) {
	env, key := keyedEnv(t)
	now := env.Clock.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "keyed", "sub": "keyed", "aud": env.URL, "exp": now.Add(time.Minute).Unix(),
			"iat": now.Unix(), "jti": "a-" + strings.Repeat("x", 8)}
		if edit != nil {
			edit(c)
		}
		return c
	}
	mint := func(assertion string, extra url.Values) dt.Response {
		form := url.Values{"grant_type": {oauth.GrantClientCredentials},
			"client_assertion_type": {delegation.ClientAssertionType}, "client_assertion": {assertion}}
		for k, v := range extra {
			form[k] = v
		}
		return env.Post(t, "token_endpoint", "", form)
	}
	good := key.sign(t, "k1", claims(nil))
	r := mint(good, url.Values{"client_id": {"keyed"}})
	if r.Status != 200 || env.Claims(t, r.String("access_token")).ClientID != "keyed" {
		t.Fatalf("a good assertion: %d %s", r.Status, r.Raw)
	}
	own := r.String("access_token")
	// The token endpoint's URL is an accepted audience too, and so is the
	// revocation endpoint's at that endpoint.
	if r := mint(key.sign(t, "k1", claims(func(c map[string]any) { c["aud"], c["jti"] = env.Endpoint(t, "token_endpoint"), "a2" })), nil); r.Status != 200 {
		t.Errorf("aud = token endpoint: %d %s", r.Status, r.Raw)
	}
	revoke := url.Values{"token": {own}, "client_assertion_type": {delegation.ClientAssertionType},
		"client_assertion": {key.sign(t, "k1", claims(func(c map[string]any) { c["aud"], c["jti"] = env.Endpoint(t, "revocation_endpoint"), "a3" }))}}
	if r := env.Post(t, "revocation_endpoint", "", revoke); r.Status != 200 {
		t.Errorf("revocation with an assertion: %d %s", r.Status, r.Raw)
	}

	other := newAssertionKey(t, "k1")
	tests := []struct {
		name      string
		assertion string
		extra     url.Values
		status    int
		code      string
		fragment  string
	}{
		{"replayed", good, nil, 401, oauth.CodeInvalidClient, "already used"},
		{"signed by another key under the same kid", other.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "b1" })), nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"an unknown kid", key.sign(t, "k2", claims(func(c map[string]any) { c["jti"] = "b2" })), nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"an unknown client", key.sign(t, "k1", claims(func(c map[string]any) { c["iss"], c["sub"], c["jti"] = "nobody", "nobody", "b3" })), nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"a secret client", key.sign(t, "k1", claims(func(c map[string]any) { c["iss"], c["sub"], c["jti"] = "orchestrator", "orchestrator", "b4" })), nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"client_id disagrees", key.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "b5" })), url.Values{"client_id": {"orchestrator"}}, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"iss is not the client", key.sign(t, "k1", claims(func(c map[string]any) { c["iss"], c["jti"] = "orchestrator", "b6" })), nil, 401, oauth.CodeInvalidClient, "iss and sub"},
		{"for another server", key.sign(t, "k1", claims(func(c map[string]any) { c["aud"], c["jti"] = "https://elsewhere.example", "b7" })), nil, 401, oauth.CodeInvalidClient, "aud must name"},
		{"for another endpoint", key.sign(t, "k1", claims(func(c map[string]any) { c["aud"], c["jti"] = env.Endpoint(t, "revocation_endpoint"), "b8" })), nil, 401, oauth.CodeInvalidClient, "aud must name"},
		{"expired", key.sign(t, "k1", claims(func(c map[string]any) { c["exp"], c["jti"] = now.Unix(), "b9" })), nil, 401, oauth.CodeInvalidClient, "expired"},
		{"without exp", key.sign(t, "k1", claims(func(c map[string]any) { delete(c, "exp"); c["jti"] = "b10" })), nil, 401, oauth.CodeInvalidClient, "exp is required"},
		{"long-lived", key.sign(t, "k1", claims(func(c map[string]any) { c["exp"], c["jti"] = now.Add(time.Hour).Unix(), "b11" })), nil, 401, oauth.CodeInvalidClient, "ahead"},
		{"not valid yet", key.sign(t, "k1", claims(func(c map[string]any) { c["nbf"], c["jti"] = now.Add(time.Minute).Unix(), "b12" })), nil, 401, oauth.CodeInvalidClient, "not valid yet"},
		{"without jti", key.sign(t, "k1", claims(func(c map[string]any) { delete(c, "jti") })), nil, 401, oauth.CodeInvalidClient, "jti is required"},
		{"not a JWT", "not-a-jwt", nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"alg none", dt.JWS(map[string]any{"alg": "none", "kid": "k1"}, strings.Split(key.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "c1" })), ".")[1], nil),
			nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"HS256 keyed with the client's published JWKS", dt.JWS(map[string]any{"alg": "HS256", "kid": "k1"},
			strings.Split(key.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "c2" })), ".")[1],
			func(in []byte) []byte { m := hmac.New(sha256.New, key.jwks); m.Write(in); return m.Sum(nil) }),
			nil, 401, oauth.CodeInvalidClient, "client authentication failed"},
		{"a wrong assertion type", key.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "b13" })), url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}, 400, oauth.CodeInvalidRequest, "client_assertion_type must be"},
		{"and a secret too", key.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "b14" })), url.Values{"client_secret": {"x"}}, 400, oauth.CodeInvalidRequest, "one client authentication method"},
		{"two assertions", key.sign(t, "k1", claims(func(c map[string]any) { c["jti"] = "b15" })), url.Values{"client_assertion": {"a", "b"}}, 400, oauth.CodeInvalidRequest, "more than once"},
	}
	for _, tt := range tests {
		r := mint(tt.assertion, tt.extra)
		if r.Status != tt.status || r.Error() != tt.code || !strings.Contains(r.String("error_description"), tt.fragment) {
			t.Errorf("%s: %d %s", tt.name, r.Status, r.Raw)
		}
	}
	// A keyed client has no secret: Basic authentication fails like any other.
	r = env.Post(t, "token_endpoint", "keyed", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	expectError(t, r, 401, oauth.CodeInvalidClient)
}

// TestARateLimitedAssertionIsNotSpent: the rate limit is applied before an
// assertion's jti is recorded, so a 429 leaves it usable after Retry-After
// (and refused requests cannot fill the replay cache).
func TestARateLimitedAssertionIsNotSpent(t *testing.T) {
	key := newAssertionKey(t, "k1")
	clients := append(dt.DefaultClients(), dt.Client{ID: "keyed", Grants: dt.Both, Scopes: []string{"db:read:*"}, JWKS: key.jwks})
	env := dt.New(t, dt.Options{Clients: clients, RateLimit: httpapi.RateLimit{PerSecond: 1, Burst: 1}})
	now := env.Clock.Now()
	mint := func(jti string) dt.Response {
		a := key.sign(t, "k1", map[string]any{"iss": "keyed", "sub": "keyed", "aud": env.URL, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": jti})
		return env.Post(t, "token_endpoint", "", url.Values{"grant_type": {oauth.GrantClientCredentials},
			"client_assertion_type": {delegation.ClientAssertionType}, "client_assertion": {a}})
	}
	if r := mint("one"); r.Status != 200 {
		t.Fatalf("first: %d %s", r.Status, r.Raw)
	}
	if r := mint("two"); r.Status != 429 {
		t.Fatalf("second within the second: %d %s", r.Status, r.Raw)
	}
	env.Clock.Advance(time.Second)
	if r := mint("two"); r.Status != 200 {
		t.Errorf("the rate-limited assertion after Retry-After: %d %s", r.Status, r.Raw)
	}
}

// TestNothingMadeBeforeARestartIsTakenAfterIt: the replay caches start empty
// with the process, so an assertion or a DPoP proof that may have been used
// before a restart is refused after it, rather than taken twice.
func TestNothingMadeBeforeARestartIsTakenAfterIt(t *testing.T) {
	key := newAssertionKey(t, "k1")
	clients := append(dt.DefaultClients(), dt.Client{ID: "keyed", Grants: dt.Both, Scopes: []string{"db:read:*"}, JWKS: key.jwks})
	clock := dt.NewClock(dt.Start)
	env := dt.New(t, dt.Options{Clients: clients, Clock: clock})
	sign := func(claims map[string]any) string { return key.sign(t, "k1", claims) }
	post := func(env *dt.Env, a string) dt.Response {
		return env.Post(t, "token_endpoint", "", url.Values{"grant_type": {oauth.GrantClientCredentials},
			"client_assertion_type": {delegation.ClientAssertionType}, "client_assertion": {a}})
	}
	now := clock.Now()
	used := sign(map[string]any{"iss": "keyed", "sub": "keyed", "aud": env.URL, "iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(), "jti": "r1"})
	if r := post(env, used); r.Status != 200 {
		t.Fatalf("before the restart: %d %s", r.Status, r.Raw)
	}
	dkey := newKey(t)
	proof := env.Proof(t, dkey)
	if r := env.PostDPoP(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}}, proof); r.Status != 200 {
		t.Fatalf("a proof before the restart: %d %s", r.Status, r.Raw)
	}
	env.Stop(t)
	clock.Advance(30 * time.Second)
	env2 := dt.New(t, dt.Options{Clients: clients, Clock: clock, Dir: env.Dir})
	r := post(env2, sign(map[string]any{"iss": "keyed", "sub": "keyed", "aud": env2.URL, "iat": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(), "jti": "r1"}))
	expectError(t, r, 401, oauth.CodeInvalidClient)
	if !strings.Contains(r.String("error_description"), "issued before this server started") {
		t.Errorf("a replayed assertion after a restart: %s", r.Raw)
	}
	r = post(env2, sign(map[string]any{"iss": "keyed", "sub": "keyed", "aud": env2.URL, "exp": clock.Now().Add(time.Minute).Unix(), "jti": "r2"}))
	if r.Status != 401 || !strings.Contains(r.String("error_description"), "include iat") {
		t.Errorf("an assertion without iat just after a restart: %d %s", r.Status, r.Raw)
	}
	if r := post(env2, sign(map[string]any{"iss": "keyed", "sub": "keyed", "aud": env2.URL, "iat": clock.Now().Unix(), "exp": clock.Now().Add(time.Minute).Unix(), "jti": "r3"})); r.Status != 200 {
		t.Errorf("a fresh assertion after the restart: %d %s", r.Status, r.Raw)
	}
	// A proof for the new address, made 30 s before the restart: within
	// its 60 s window, but possibly used already.
	old, err := dkey.Proof(http.MethodPost, env2.Endpoint(t, "token_endpoint"), "", "", now)
	if err != nil {
		t.Fatal(err)
	}
	r = env2.PostDPoP(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}}, old)
	expectError(t, r, 400, oauth.CodeInvalidDPoPProof)
	if !strings.Contains(r.String("error_description"), "made before this server started") {
		t.Errorf("a proof made before the restart: %s", r.Raw)
	}
}
