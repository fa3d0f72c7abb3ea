package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

func expectError(t *testing.T, r dt.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Error() != code {
		t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.Error(), r.Raw, status, code)
	}
	if r.String("error_description") == "" {
		t.Errorf("error without a description: %s", r.Raw)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("error response without Cache-Control: no-store")
	}
}

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestClientCredentialsMintsARoot(t *testing.T) {
	env := dt.New(t, dt.Options{})
	r := env.Post(t, "token_endpoint", "orchestrator", ccForm)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Pragma") != "no-cache" {
		t.Errorf("token response cacheable: %v", r.Header)
	}
	if r.String("token_type") != "Bearer" || r.JSON["expires_in"] != float64(900) || r.String("scope") != "db:read:* db:write:* tools:*" {
		t.Errorf("response = %s", r.Raw)
	}
	tok := r.String("access_token")
	h := header(t, tok)
	if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] != env.Keys.CurrentKeyID() {
		t.Errorf("header = %v", h)
	}
	c := env.Claims(t, tok)
	want := jwt.Claims{
		Issuer: env.URL, Subject: "orchestrator", SubjectIssuer: env.URL, ClientID: "orchestrator",
		Audience: jwt.Audience{"https://db.example", "https://tools.example", "https://mail.example"},
		Scope:    "db:read:* db:write:* tools:*", IssuedAt: jwt.At(dt.Start), NotBefore: jwt.At(dt.Start),
		Expiry: jwt.At(dt.Start.Add(15 * time.Minute)), ID: c.ID, Lineage: []string{},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("claims\n got %+v\nwant %+v", *c, want)
	}
	if len(c.ID) < 22 {
		t.Errorf("jti %q shorter than 128 bits", c.ID)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if !strings.Contains(string(payload), `"lineage":[]`) || strings.Contains(string(payload), `"act"`) {
		t.Errorf("a root has lineage [] and no act: %s", payload)
	}
	rec, err := env.DB.Token(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("record not durable before the response: %v", err)
	}
	if rec.Holder != "orchestrator" || rec.Parent != "" || rec.ExpiresAt.Unix() != int64(c.Expiry) {
		t.Errorf("record = %+v", rec)
	}
}

func TestClientCredentialsRules(t *testing.T) {
	env := dt.New(t, dt.Options{})
	tests := []struct {
		name      string
		client    string
		form      url.Values
		status    int
		code      string
		wantScope string
		wantAud   []string
	}{
		{"narrower scope", "orchestrator", url.Values{"scope": {"db:read:orders tools:search"}}, 200, "", "db:read:orders tools:search", nil},
		{"wildcard itself", "orchestrator", url.Values{"scope": {"db:read:*"}}, 200, "", "db:read:*", nil},
		{"duplicate scope tokens collapse", "orchestrator", url.Values{"scope": {"tools:x tools:x"}}, 200, "", "tools:x", nil},
		{"empty scope means registration", "researcher", url.Values{"scope": {""}}, 200, "", "db:read:* tools:search", nil},
		{"audience subset", "orchestrator", url.Values{"audience": {"https://db.example"}}, 200, "", "", []string{"https://db.example"}},
		{"resource counts as audience", "orchestrator", url.Values{"resource": {"https://tools.example"}, "audience": {"https://db.example"}}, 200, "", "", []string{"https://db.example", "https://tools.example"}},
		{"identity-only client", "idle", nil, 200, "", "", nil},
		{"scope beyond registration", "orchestrator", url.Values{"scope": {"admin:all"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"wildcard wider than registration", "researcher", url.Values{"scope": {"tools:*"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"star wider than everything", "orchestrator", url.Values{"scope": {"*"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"case changes the scope", "orchestrator", url.Values{"scope": {"DB:read:orders"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"tab is not a separator", "orchestrator", url.Values{"scope": {"tools:x\ttools:y"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"unicode look-alike colon", "orchestrator", url.Values{"scope": {"db\uff1aread:orders"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"double space", "orchestrator", url.Values{"scope": {"tools:x  tools:y"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"identity-only client asks for a scope", "idle", url.Values{"scope": {"tools:x"}}, 400, oauth.CodeInvalidScope, "", nil},
		{"foreign audience", "orchestrator", url.Values{"audience": {"https://evil.example"}}, 400, oauth.CodeInvalidTarget, "", nil},
		{"audience prefix is not a match", "orchestrator", url.Values{"audience": {"https://db.example/"}}, 400, oauth.CodeInvalidTarget, "", nil},
		{"foreign resource", "orchestrator", url.Values{"resource": {"https://evil.example"}}, 400, oauth.CodeInvalidTarget, "", nil},
		{"client without the grant", "no-grants-rs", nil, 400, oauth.CodeUnauthorizedClient, "", nil},
		{"admin without the grant", "ops", nil, 400, oauth.CodeUnauthorizedClient, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
			for k, v := range tt.form {
				form[k] = v
			}
			r := env.Post(t, "token_endpoint", tt.client, form)
			if tt.status != 200 {
				expectError(t, r, tt.status, tt.code)
				return
			}
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Raw)
			}
			c := env.Claims(t, r.String("access_token"))
			if tt.wantScope != "" && c.Scope != tt.wantScope {
				t.Errorf("scope = %q, want %q", c.Scope, tt.wantScope)
			}
			if tt.wantAud != nil && !reflect.DeepEqual([]string(c.Audience), tt.wantAud) {
				t.Errorf("aud = %v, want %v", c.Audience, tt.wantAud)
			}
		})
	}
}

// chainOf builds orchestrator → researcher → db-agent and returns the three tokens.
func chainOf(t *testing.T, env *dt.Env) (root, child, grandchild string) {
	t.Helper()
	root = env.Mint(t, "orchestrator", nil)
	child = env.Delegate(t, "orchestrator", root, "researcher", url.Values{"scope": {"db:read:* tools:search"}})
	grandchild = env.Delegate(t, "researcher", child, "db-agent", url.Values{"scope": {"db:read:orders"}, "audience": {"https://db.example"}})
	return root, child, grandchild
}

func TestDelegationChainClaims(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, child, grand := chainOf(t, env)
	rc, cc, gc := env.Claims(t, root), env.Claims(t, child), env.Claims(t, grand)

	if cc.Subject != "orchestrator" || gc.Subject != "orchestrator" {
		t.Errorf("sub must pass unchanged: %q, %q", cc.Subject, gc.Subject)
	}
	if cc.ClientID != "researcher" || gc.ClientID != "db-agent" {
		t.Errorf("holders = %q, %q", cc.ClientID, gc.ClientID)
	}
	if want := (&jwt.Actor{Subject: "researcher"}); !reflect.DeepEqual(cc.Act, want) {
		t.Errorf("child act = %+v (inner act omitted when the parent has none)", cc.Act)
	}
	if want := (&jwt.Actor{Subject: "db-agent", Act: &jwt.Actor{Subject: "researcher"}}); !reflect.DeepEqual(gc.Act, want) {
		t.Errorf("grandchild act = %+v", gc.Act)
	}
	if !reflect.DeepEqual(cc.Lineage, []string{rc.ID}) || !reflect.DeepEqual(gc.Lineage, []string{rc.ID, cc.ID}) {
		t.Errorf("lineage = %v, %v", cc.Lineage, gc.Lineage)
	}
	if gc.Scope != "db:read:orders" || !reflect.DeepEqual([]string(gc.Audience), []string{"https://db.example"}) {
		t.Errorf("grandchild scope %q aud %v", gc.Scope, gc.Audience)
	}
	// Default audience: the parent's narrowed to the researcher's registration.
	if !reflect.DeepEqual([]string(cc.Audience), []string{"https://db.example", "https://tools.example"}) {
		t.Errorf("child aud = %v", cc.Audience)
	}
	if cc.Expiry != jwt.At(dt.Start.Add(5*time.Minute)) {
		t.Errorf("child exp = %d, want now + delegated_ttl", cc.Expiry)
	}
	for _, c := range []*jwt.Claims{cc, gc} {
		if err := chain.CheckStructure(c, 4); err != nil {
			t.Errorf("issued an ill-formed chain: %v", err)
		}
	}
	children, err := env.DB.Children(t.Context(), rc.ID)
	if err != nil || !reflect.DeepEqual(children, []string{cc.ID}) {
		t.Errorf("children of root = %v, %v", children, err)
	}
	rec, err := env.DB.Token(t.Context(), gc.ID)
	if err != nil || rec.Parent != cc.ID || rec.Holder != "db-agent" || !reflect.DeepEqual(rec.Act, gc.Act) {
		t.Errorf("grandchild record = %+v, %v", rec, err)
	}
}

func TestExchangeResponse(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root := env.Mint(t, "orchestrator", nil)
	for _, tt := range []struct{ requested, issued string }{
		{"", oauth.TokenTypeAccessToken},
		{oauth.TokenTypeAccessToken, oauth.TokenTypeAccessToken},
		{oauth.TokenTypeJWT, oauth.TokenTypeJWT},
	} {
		extra := url.Values{}
		if tt.requested != "" {
			extra.Set("requested_token_type", tt.requested)
		}
		r := env.Exchange(t, "orchestrator", root, "", extra)
		if r.Status != 200 || r.String("issued_token_type") != tt.issued || r.String("token_type") != "Bearer" ||
			r.JSON["expires_in"] != float64(300) || r.String("scope") == "" {
			t.Errorf("requested %q: %d %s", tt.requested, r.Status, r.Raw)
		}
	}
}

func TestDownscopeKeepsHolderAndActButAddsLineage(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, child, _ := chainOf(t, env)
	// Down-scoping a client_credentials root: no act, holder == subject.
	d := env.Claims(t, env.Delegate(t, "orchestrator", root, "", url.Values{"scope": {"tools:search"}}))
	if d.Act != nil || d.ClientID != "orchestrator" || len(d.Lineage) != 1 || d.Scope != "tools:search" {
		t.Errorf("down-scoped root = %+v", d)
	}
	// An actor token naming the client itself is down-scoping too.
	self := env.Mint(t, "orchestrator", nil)
	r := env.Exchange(t, "orchestrator", root, self, url.Values{"scope": {"tools:x"}})
	if c := env.Claims(t, r.String("access_token")); c.Act != nil || c.ClientID != "orchestrator" {
		t.Errorf("self actor: %+v", c)
	}
	// Down-scoping a delegated token keeps its act chain unchanged.
	cc := env.Claims(t, child)
	d2 := env.Claims(t, env.Delegate(t, "researcher", child, "", url.Values{"scope": {"db:read:orders"}}))
	if !reflect.DeepEqual(d2.Act, cc.Act) || !reflect.DeepEqual(d2.Lineage, append(cc.Lineage, cc.ID)) {
		t.Errorf("down-scoped child act %+v lineage %v", d2.Act, d2.Lineage)
	}
}

func TestDefaultScopeIsParentNarrowedToHolder(t *testing.T) {
	env := dt.New(t, dt.Options{})
	// db:* is not registered for the orchestrator (only db:read:* and db:write:*).
	if r := env.Post(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"db:*"}}); r.Error() != oauth.CodeInvalidScope {
		t.Fatalf("db:* beyond registration: %s", r.Raw)
	}
	root := env.Mint(t, "orchestrator", url.Values{"scope": {"db:read:* tools:search tools:browse"}})
	c := env.Claims(t, env.Delegate(t, "orchestrator", root, "researcher", nil))
	// researcher is registered for db:read:* and tools:search.
	if c.Scope != "db:read:* tools:search" {
		t.Errorf("default scope = %q", c.Scope)
	}
	c = env.Claims(t, env.Delegate(t, "orchestrator", root, "db-agent", nil))
	if c.Scope != "db:read:*" || !reflect.DeepEqual([]string(c.Audience), []string{"https://db.example"}) {
		t.Errorf("db-agent default scope %q aud %v", c.Scope, c.Audience)
	}
}

func TestExchangeRefusals(t *testing.T) {
	env := dt.New(t, dt.Options{MaxDepth: 4})
	root, child, grand := chainOf(t, env)
	researcherID := env.Identity(t, "researcher")
	dbID := env.Identity(t, "db-agent")
	idleID := env.Identity(t, "idle")
	outsiderRoot := env.Mint(t, "outsider", nil)
	tampered := dt.Tamper(t, child, func(c map[string]any) { c["scope"] = "db:write:*" })
	withoutAct := dt.Tamper(t, grand, func(c map[string]any) { delete(c, "act") })

	tests := []struct {
		name    string
		client  string
		subject string
		actor   string
		extra   url.Values
		status  int
		code    string
	}{
		{"another agent's token", "outsider", child, "", nil, 400, oauth.CodeInvalidRequest},
		{"the parent holder re-exchanging a child it gave away", "orchestrator", child, "", nil, 400, oauth.CodeInvalidRequest},
		{"scope widening", "researcher", child, dbID, url.Values{"scope": {"db:write:orders"}}, 400, oauth.CodeInvalidScope},
		{"scope widening by wildcard", "researcher", child, "", url.Values{"scope": {"db:*"}}, 400, oauth.CodeInvalidScope},
		{"scope outside the new holder's registration", "orchestrator", root, dbID, url.Values{"scope": {"tools:search"}}, 400, oauth.CodeInvalidScope},
		{"scope by case change", "researcher", child, "", url.Values{"scope": {"DB:read:orders"}}, 400, oauth.CodeInvalidScope},
		{"nothing in common with the holder", "orchestrator", env.Mint(t, "orchestrator", url.Values{"scope": {"tools:x"}}), dbID, nil, 400, oauth.CodeInvalidScope},
		{"delegating to an identity-only agent", "orchestrator", root, idleID, nil, 400, oauth.CodeInvalidScope},
		{"foreign audience", "researcher", child, "", url.Values{"audience": {"https://mail.example"}}, 400, oauth.CodeInvalidTarget},
		{"audience outside the new holder", "orchestrator", root, dbID, url.Values{"audience": {"https://tools.example"}}, 400, oauth.CodeInvalidTarget},
		{"no common audience with the holder", "orchestrator", env.Mint(t, "orchestrator", url.Values{"audience": {"https://mail.example"}}), researcherID, nil, 400, oauth.CodeInvalidTarget},
		{"resource widening", "researcher", child, "", url.Values{"resource": {"https://mail.example"}}, 400, oauth.CodeInvalidTarget},
		{"delegated token as actor token", "orchestrator", root, child, nil, 400, oauth.CodeInvalidRequest},
		{"garbage actor token", "orchestrator", root, "a.b.c", nil, 400, oauth.CodeInvalidRequest},
		{"tampered subject token", "researcher", tampered, "", nil, 400, oauth.CodeInvalidRequest},
		{"act dropped from a subject token", "db-agent", withoutAct, "", nil, 400, oauth.CodeInvalidRequest},
		{"garbage subject token", "orchestrator", "not-a-token", "", nil, 400, oauth.CodeInvalidRequest},
		{"subject token from an untrusted issuer", "orchestrator", foreignToken(t), "", nil, 400, oauth.CodeInvalidRequest},
		{"unsupported requested_token_type", "orchestrator", root, "", url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, 400, oauth.CodeInvalidRequest},
		{"unsupported subject_token_type", "orchestrator", root, "", url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}, 400, oauth.CodeInvalidRequest},
		{"missing subject_token_type", "orchestrator", root, "", url.Values{"subject_token_type": {""}}, 400, oauth.CodeInvalidRequest},
		{"missing subject_token", "orchestrator", "", "", nil, 400, oauth.CodeInvalidRequest},
		{"actor_token without its type", "orchestrator", root, "", url.Values{"actor_token": {researcherID}}, 400, oauth.CodeInvalidRequest},
		{"actor_token_type without actor_token", "orchestrator", root, "", url.Values{"actor_token_type": {oauth.TokenTypeAccessToken}}, 400, oauth.CodeInvalidRequest},
		{"repeated subject_token", "orchestrator", root, "", url.Values{"subject_token": {root, outsiderRoot}}, 400, oauth.CodeInvalidRequest},
		{"client without the exchange grant", "idle", idleID, "", nil, 400, oauth.CodeUnauthorizedClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := env.Bolt.Stats(env.Clock.Now())
			r := env.Exchange(t, tt.client, tt.subject, tt.actor, tt.extra)
			expectError(t, r, tt.status, tt.code)
			if strings.Contains(r.String("error_description"), tt.subject) && tt.subject != "" {
				t.Errorf("description echoes the token")
			}
			if after, _ := env.Bolt.Stats(env.Clock.Now()); after.Tokens != before.Tokens {
				t.Errorf("a refused request stored a token")
			}
		})
	}
}

func TestLifetimeIsClampedToTheParent(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: 10 * time.Minute, DelegatedTTL: 5 * time.Minute})
	root := env.Mint(t, "orchestrator", nil)
	env.Clock.Advance(8 * time.Minute) // 2 minutes left on the root
	c := env.Claims(t, env.Delegate(t, "orchestrator", root, "researcher", nil))
	if rc := env.Claims(t, root); c.Expiry != rc.Expiry {
		t.Errorf("child exp %d outlives parent exp %d", c.Expiry, rc.Expiry)
	}
	r := env.Exchange(t, "orchestrator", root, "", nil)
	if r.JSON["expires_in"] != float64(120) {
		t.Errorf("expires_in = %v, want 120", r.JSON["expires_in"])
	}
	env.Clock.Advance(2 * time.Minute)
	expectError(t, env.Exchange(t, "orchestrator", root, "", nil), 400, oauth.CodeInvalidRequest)
}

func TestDepthIsBounded(t *testing.T) {
	const maxDepth = 3
	env := dt.New(t, dt.Options{MaxDepth: maxDepth})
	tok := env.Mint(t, "orchestrator", nil)
	for d := 1; d <= maxDepth; d++ {
		tok = env.Delegate(t, "orchestrator", tok, "", nil)
		if got := env.Claims(t, tok).Depth(); got != d {
			t.Fatalf("depth = %d, want %d", got, d)
		}
	}
	r := env.Exchange(t, "orchestrator", tok, "", nil)
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "max_depth") {
		t.Errorf("description should name the rule: %q", r.String("error_description"))
	}
}

func TestExpiredActorTokenIsRefused(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: 10 * time.Minute})
	actor := env.Identity(t, "researcher")
	env.Clock.Advance(5 * time.Minute)
	root := env.Mint(t, "orchestrator", nil)
	env.Clock.Advance(5 * time.Minute)
	expectError(t, env.Exchange(t, "orchestrator", root, actor, nil), 400, oauth.CodeInvalidRequest)
}

// foreignToken is a well-formed JWT from an issuer nobody trusts.
func foreignToken(t *testing.T) string {
	t.Helper()
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"x","typ":"at+jwt"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://evil.example","sub":"orchestrator","client_id":"orchestrator"}`))
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
}

// TestJTIsSortByIssuance: jtis are 30 characters (48 bits of time, 128
// random) of an order-preserving
// URL-safe alphabet (never a leading '-', never a '.'), unique, and sorted
// by issuance time, which keeps the store's writes on its last pages.
func TestJTIsSortByIssuance(t *testing.T) {
	env := dt.New(t, dt.Options{})
	var jtis []string
	for range 20 {
		jtis = append(jtis, env.Claims(t, env.Mint(t, "orchestrator", nil)).ID)
		env.Clock.Advance(time.Millisecond)
	}
	seen := map[string]bool{}
	for i, j := range jtis {
		if len(j) != 30 || strings.ContainsAny(j, "-.+/=") || seen[j] {
			t.Fatalf("jti %q", j)
		}
		seen[j] = true
		if i > 0 && jtis[i-1] >= j {
			t.Errorf("jti %q issued after %q sorts before it", j, jtis[i-1])
		}
	}
}
