package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestIdentityTokens: client_credentials with audience = the issuer gives
// any registered client, whatever its grants, a token that names it and
// grants nothing: no scope, Mandate's audience alone, at most 5 minutes.
func TestIdentityTokens(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: time.Hour})
	for _, client := range []string{"researcher", "no-grants-rs", "ops", "blank"} {
		r := env.Post(t, "token_endpoint", client, url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {env.URL}})
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", client, r.Status, r.Raw)
		}
		c := env.Claims(t, r.String("access_token"))
		if c.Scope != "" || !equalAud(c.Audience, env.URL) || c.Subject != client || c.ClientID != client || c.SubjectIssuer != env.URL ||
			c.Expiry != jwt.At(dt.Start.Add(5*time.Minute)) || r.String("scope") != "" || r.JSON["expires_in"] != float64(300) {
			t.Errorf("%s's identity token: %+v (%s)", client, c, r.Raw)
		}
	}
	short := dt.New(t, dt.Options{RootTTL: time.Minute})
	if c := short.Claims(t, short.Identity(t, "researcher")); c.Expiry != jwt.At(dt.Start.Add(time.Minute)) {
		t.Errorf("identity token outlives root_ttl: %v", c.Expiry.Time())
	}
	for _, tt := range []struct {
		name string
		form url.Values
		code string
		frag string
	}{
		{"with a scope", url.Values{"audience": {env.URL}, "scope": {"db:read:orders"}}, oauth.CodeInvalidScope, "carries no scope"},
		{"with another audience too", url.Values{"audience": {env.URL, "https://db.example"}}, oauth.CodeInvalidTarget, "only audience is Mandate's issuer"},
	} {
		tt.form.Set("grant_type", oauth.GrantClientCredentials)
		r := env.Post(t, "token_endpoint", "researcher", tt.form)
		expectError(t, r, 400, tt.code)
		if !strings.Contains(r.String("error_description"), tt.frag) {
			t.Errorf("%s: %s", tt.name, r.Raw)
		}
	}
	// A client that may not use client_credentials gets nothing else.
	r := env.Post(t, "token_endpoint", "no-grants-rs", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	expectError(t, r, 400, oauth.CodeUnauthorizedClient)
	// An identity token delegates nothing: it has no scope to narrow.
	expectError(t, env.Exchange(t, "researcher", env.Identity(t, "researcher"), "", nil), 400, oauth.CodeInvalidScope)
}

// TestOnlyTokensUselessElsewhereNameAnActor: an identity token, a token
// bound to the actor's key, or an ephemeral agent's token names the new
// holder; a scoped bearer token of the actor is refused, since whoever
// delegates would hold the actor's powers.
func TestOnlyTokensUselessElsewhereNameAnActor(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root := env.Mint(t, "orchestrator", nil)
	if r := env.Exchange(t, "orchestrator", root, env.Identity(t, "researcher"), url.Values{"scope": {"db:read:*"}}); r.Status != 200 {
		t.Fatalf("identity token: %d %s", r.Status, r.Raw)
	}
	key := newKey(t)
	bound := mintBound(t, env, "researcher", key, nil)
	r := env.PostDPoP(t, "token_endpoint", "orchestrator", dt.ExchangeForm(root, bound, url.Values{"scope": {"db:read:*"}}), "")
	if r.Status != 200 || env.Claims(t, r.String("access_token")).JKT() == "" {
		t.Fatalf("a bound token of the actor: %d %s", r.Status, r.Raw)
	}
	for name, actor := range map[string]string{
		"its client_credentials root":  env.Mint(t, "researcher", nil),
		"a root narrowed to one scope": env.Mint(t, "researcher", url.Values{"scope": {"tools:search"}}),
		"a root for one API, no scope": env.Mint(t, "no-aud", url.Values{"scope": {"db:read:x"}}),
	} {
		r := env.Exchange(t, "orchestrator", root, actor, url.Values{"scope": {"db:read:*"}})
		expectError(t, r, 400, oauth.CodeInvalidRequest)
		if !strings.Contains(r.String("error_description"), "actor_token must be the actor's identity token") {
			t.Errorf("%s: %s", name, r.Raw)
		}
	}
	// Naming oneself needs no such token: nothing is handed to anyone.
	if r := env.Exchange(t, "orchestrator", root, env.Mint(t, "orchestrator", nil), url.Values{"scope": {"db:read:*"}}); r.Status != 200 {
		t.Errorf("naming itself with its own root: %d %s", r.Status, r.Raw)
	}
}

func equalAud(a jwt.Audience, want ...string) bool {
	if len(a) != len(want) {
		return false
	}
	for i := range a {
		if a[i] != want[i] {
			return false
		}
	}
	return true
}

// TestAnIdentityTokenIsInactiveToAResourceServer: introspected by a
// resource server, an identity token is inactive (it grants nothing there,
// and a server that looks only at "active" must not take it for access); an
// admin sees it as it is.
func TestAnIdentityTokenIsInactiveToAResourceServer(t *testing.T) {
	env := dt.New(t, dt.Options{})
	id := env.Identity(t, "researcher")
	if r := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {id}}); r.Status != 200 || r.JSON["active"] != false || len(r.JSON) != 1 {
		t.Errorf("a resource server introspects an identity token: %d %s", r.Status, r.Raw)
	}
	if r := env.Post(t, "introspection_endpoint", "ops", url.Values{"token": {id}}); r.JSON["active"] != true || r.String("sub") != "researcher" {
		t.Errorf("an admin introspects an identity token: %d %s", r.Status, r.Raw)
	}
	// A scoped root of the same client is active to both.
	root := env.Mint(t, "researcher", nil)
	if r := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {root}}); r.JSON["active"] != true {
		t.Errorf("a resource server introspects a root: %s", r.Raw)
	}
}
