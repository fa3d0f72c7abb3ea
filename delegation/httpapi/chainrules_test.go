package httpapi_test

import (
	"net/url"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestEmptyParentGrantsBoundTheChild: a parent with no scope (an identity
// token) or no audience bounds its child to nothing; it is not a root.
func TestEmptyParentGrantsBoundTheChild(t *testing.T) {
	env := dt.New(t, dt.Options{})
	blank := env.Mint(t, "blank", nil) // scope "" and aud []
	dbID := env.Identity(t, "db-agent")
	noAud := env.Mint(t, "no-aud", nil) // scope db:read:*, aud []
	tests := []struct {
		name    string
		client  string
		subject string
		actor   string
		extra   url.Values
		code    string
	}{
		{"identity token delegated, default scope", "blank", blank, dbID, nil, oauth.CodeInvalidScope},
		{"identity token delegated, explicit scope", "blank", blank, dbID, url.Values{"scope": {"db:read:orders"}}, oauth.CodeInvalidScope},
		{"identity token down-scoped", "blank", blank, "", url.Values{"scope": {"db:read:orders"}}, oauth.CodeInvalidScope},
		{"audience-less token delegated, default audience", "no-aud", noAud, dbID, nil, oauth.CodeInvalidTarget},
		{"audience-less token delegated, explicit audience", "no-aud", noAud, dbID, url.Values{"audience": {"https://db.example"}}, oauth.CodeInvalidTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectError(t, env.Exchange(t, tt.client, tt.subject, tt.actor, tt.extra), 400, tt.code)
		})
	}
}

// TestSignedButIllFormedChainsAreRefused: even a correctly signed token is
// refused, at the token endpoint and by introspection, when its act chain or
// lineage breaks the chain invariants (as a key compromise or a bug could
// produce). The signature check alone would not catch these.
func TestSignedButIllFormedChainsAreRefused(t *testing.T) {
	env := dt.New(t, dt.Options{MaxDepth: 3})
	_, child, grand := chainOf(t, env)
	forge := func(base string, edit func(*jwt.Claims)) string { return env.Forge(t, base, edit) }
	tests := []struct {
		name   string
		holder string
		token  string
	}{
		{"act dropped", "db-agent", forge(grand, func(c *jwt.Claims) { c.Act = nil })},
		{"act names another holder", "db-agent", forge(grand, func(c *jwt.Claims) { c.Act.Subject = "researcher" })},
		{"more actors than ancestors", "researcher", forge(child, func(c *jwt.Claims) {
			c.Act = &jwt.Actor{Subject: "researcher", Act: &jwt.Actor{Subject: "x", Act: &jwt.Actor{Subject: "y"}}}
		})},
		{"lineage repeats a jti", "db-agent", forge(grand, func(c *jwt.Claims) { c.Lineage = []string{c.Lineage[0], c.Lineage[0]} })},
		{"lineage beyond max_depth", "db-agent", forge(grand, func(c *jwt.Claims) { c.Lineage = []string{"a", "b", "c", "d"} })},
		{"lineage contains itself", "db-agent", forge(grand, func(c *jwt.Claims) { c.Lineage = append(c.Lineage, c.ID) })},
		{"foreign issuer", "db-agent", forge(grand, func(c *jwt.Claims) { c.Issuer = "https://evil.example" })},
		{"not valid yet", "db-agent", forge(grand, func(c *jwt.Claims) { c.NotBefore = jwt.At(dt.Start.Add(time.Hour)) })},
		{"issued in the future", "db-agent", forge(grand, func(c *jwt.Claims) { c.IssuedAt = jwt.At(dt.Start.Add(time.Hour)) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectError(t, env.Exchange(t, tt.holder, tt.token, "", nil), 400, oauth.CodeInvalidRequest)
			if active(t, env, tt.token) {
				t.Error("introspection calls it active")
			}
		})
	}
}

func TestActorTokenRules(t *testing.T) {
	env, p := externalEnv(t)
	root := env.Mint(t, "orchestrator", nil)
	revokedID := env.Identity(t, "researcher")
	if r := revoke(t, env, "researcher", revokedID); r.Status != 200 {
		t.Fatal(r.Status)
	}
	ghost, err := env.Keys.Sign(&jwt.Claims{Issuer: env.URL, Subject: "ghost", ClientID: "ghost",
		IssuedAt: jwt.At(dt.Start), NotBefore: jwt.At(dt.Start), Expiry: jwt.At(dt.Start.Add(time.Hour)), ID: "ghost-1"})
	if err != nil {
		t.Fatal(err)
	}
	external := p.sign(t, userToken(dt.Start.Add(time.Hour), func(c map[string]any) { c["sub"] = "researcher" }))
	tests := []struct {
		name  string
		actor string
		extra url.Values
	}{
		{"revoked actor token", revokedID, nil},
		{"actor no longer registered", ghost, nil},
		{"actor token from a trusted external issuer", external, nil},
		{"unsupported actor_token_type", env.Mint(t, "researcher", nil), url.Values{"actor_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectError(t, env.Exchange(t, "orchestrator", root, tt.actor, tt.extra), 400, oauth.CodeInvalidRequest)
		})
	}
}

func TestARevokedTokenItselfCannotBeExchanged(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root := env.Mint(t, "orchestrator", nil)
	if r := revoke(t, env, "orchestrator", root); r.Status != 200 {
		t.Fatal(r.Status)
	}
	r := env.Exchange(t, "orchestrator", root, "", nil)
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if r.String("error_description") != "subject_token has been revoked" {
		t.Errorf("description = %q", r.String("error_description"))
	}
}
