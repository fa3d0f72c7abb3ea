package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// The audience exchange's cast (docs/design.md, "Token exchange"): an
// orchestrator hands a task to an agent, which calls two MCP servers; each
// MCP server serves its canonical URI and, instead of forwarding the
// agent's token, exchanges it for its own token to its downstream API.
const (
	mcpOrders = "https://mcp.orders.example/mcp"
	mcpMail   = "https://mcp.mail.example/mcp"
	ordersAPI = "https://orders-api.example"
	mailAPI   = "https://mail-api.example"
)

func mcpClients() []dt.Client {
	exchange := []string{delegation.GrantNameTokenExchange}
	return []dt.Client{
		{ID: "orchestrator", Grants: dt.Both, Scopes: []string{"orders:read:*", "orders:write:*", "tools:*", "mail:send"},
			Audiences: []string{mcpOrders, mcpMail}, Groups: []string{"orchestrators"}},
		{ID: "agent", Grants: dt.Both, Scopes: []string{"orders:read:*", "tools:*", "mail:send"},
			Audiences: []string{mcpOrders, mcpMail}, Groups: []string{"agents"}},
		{ID: "mcp-orders", Grants: exchange, Serves: []string{mcpOrders},
			Scopes: []string{"orders:read:*", "orders:write:*"}, Audiences: []string{ordersAPI}, Groups: []string{"mcp-servers"}},
		{ID: "mcp-mail", Grants: exchange, Serves: []string{mcpMail},
			Scopes: []string{"mail:send", "orders:read:*"}, Audiences: []string{mailAPI, ordersAPI}},
		{ID: "outsider", Grants: dt.Both, Scopes: []string{"orders:read:*"}, Audiences: []string{ordersAPI}},
		{ID: "no-grants-rs", Role: delegation.RoleResourceServer},
		{ID: "ops", Role: delegation.RoleAdmin},
	}
}

// agentTask mints the orchestrator's root for the task and delegates it to
// the agent: the token the agent sends to the MCP servers.
func agentTask(t *testing.T, env *dt.Env, extra url.Values) (root, agentTok string) {
	t.Helper()
	root = env.Mint(t, "orchestrator", url.Values{"scope": {"orders:read:* tools:* mail:send"}})
	return root, env.Delegate(t, "orchestrator", root, "agent", extra)
}

// downstream is a token-exchange form for an audience exchange of subject to aud.
func downstream(subject string, extra url.Values, aud ...string) url.Values {
	form := dt.ExchangeForm(subject, "", extra)
	for _, a := range aud {
		form.Add("audience", a)
	}
	return form
}

// downstreamAPI is the orders API's verifier, following env's feed as a
// resource server does.
func downstreamAPI(t *testing.T, env *dt.Env) *verifier.Verifier {
	t.Helper()
	v, err := verifier.Discover(context.Background(), verifier.Config{Issuer: env.URL, Audience: ordersAPI,
		ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"), Now: env.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// TestAudienceExchangeEndToEnd: orchestrator → agent (a delegation) → the
// MCP server exchanges the agent's token for its own to the orders API,
// whose verifier sees the subject unchanged, the actor chain with the MCP
// server outermost, and every ancestor in the lineage; revoking the
// agent's token (or the root) revokes the MCP server's.
func TestAudienceExchangeEndToEnd(t *testing.T) {
	env := dt.New(t, dt.Options{Clients: mcpClients()})
	root, agentTok := agentTask(t, env, nil)
	parent := env.Claims(t, agentTok)

	r := env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, url.Values{"scope": {"orders:read:orders"}}, ordersAPI))
	if r.Status != 200 {
		t.Fatalf("audience exchange: %d %s", r.Status, r.Raw)
	}
	if r.String("token_type") != "Bearer" || r.String("issued_token_type") != oauth.TokenTypeAccessToken || r.String("scope") != "orders:read:orders" {
		t.Errorf("response = %s", r.Raw)
	}
	child := r.String("access_token")
	c := env.Claims(t, child)
	want := jwt.Claims{Issuer: env.URL, Subject: "orchestrator", SubjectIssuer: env.URL, ClientID: "mcp-orders",
		Audience: jwt.Audience{ordersAPI}, Scope: "orders:read:orders",
		IssuedAt: jwt.At(dt.Start), NotBefore: jwt.At(dt.Start), Expiry: jwt.At(dt.Start.Add(5 * time.Minute)), ID: c.ID,
		Act:     &jwt.Actor{Subject: "mcp-orders", Act: &jwt.Actor{Subject: "agent"}},
		Lineage: []string{env.Claims(t, root).ID, parent.ID}}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("claims\n got %+v\nwant %+v", *c, want)
	}

	api := downstreamAPI(t, env)
	ch, err := api.Verify(context.Background(), child)
	if err != nil {
		t.Fatalf("the orders API refused the MCP server's token: %v", err)
	}
	if ch.Subject != "orchestrator" || ch.SubjectIssuer != env.URL || ch.Holder != "mcp-orders" ||
		!reflect.DeepEqual(ch.Actors, []string{"mcp-orders", "agent"}) || !reflect.DeepEqual(ch.Lineage, want.Lineage) ||
		ch.Depth != 2 || ch.Root != want.Lineage[0] {
		t.Errorf("the orders API sees %+v", ch)
	}
	// The agent's own token was never for the orders API: forwarding it
	// would not have worked (no passthrough).
	if _, err := api.Verify(context.Background(), agentTok); !errors.Is(err, verifier.ErrWrongAudience) {
		t.Errorf("the agent's token at the orders API: %v", err)
	}
	in := introspect(t, env, child)
	if in.JSON["active"] != true || in.String("client_id") != "mcp-orders" || !reflect.DeepEqual(in.JSON["lineage"], []any{want.Lineage[0], want.Lineage[1]}) {
		t.Errorf("introspection = %s", in.Raw)
	}
	rec, err := env.DB.Token(t.Context(), c.ID)
	if err != nil || rec.Parent != parent.ID || rec.Holder != "mcp-orders" {
		t.Fatalf("record = %+v, %v", rec, err)
	}

	// The agent revokes what it holds (RFC 7009); the MCP server's token,
	// delegated from it, goes with it, at Mandate and at the API.
	if r := revoke(t, env, "agent", agentTok); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if active(t, env, child) {
		t.Error("the MCP server's token is active after its parent was revoked")
	}
	for deadline := time.Now().Add(5 * time.Second); !api.Revoked(parent.ID); {
		if time.Now().After(deadline) {
			t.Fatal("the orders API did not learn of the revocation from the feed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := api.Verify(context.Background(), child); !errors.Is(err, verifier.ErrRevoked) {
		t.Errorf("the orders API after the revocation: %v", err)
	}
	// And the revoked parent can no longer be exchanged.
	r = env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, nil, ordersAPI))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if d := r.String("error_description"); d != "subject_token has been revoked" {
		t.Errorf("description = %q", d)
	}
}

// TestAudienceExchangeRules tries to break each rule of the audience
// exchange over HTTP, and checks the exact RFC 6749 / RFC 8693 code.
func TestAudienceExchangeRules(t *testing.T) {
	env := dt.New(t, dt.Options{Clients: mcpClients()})
	_, agentTok := agentTask(t, env, url.Values{"audience": {mcpOrders}})
	bothAuds := env.Delegate(t, "orchestrator", env.Mint(t, "orchestrator", nil), "agent", nil) // aud: both MCP servers
	const notHeld = "subject_token is held by another client; only its holder may exchange it"
	tests := []struct {
		name      string
		client    string
		form      url.Values
		code      string
		frag      string
		wantScope string
		wantAud   []string
	}{
		{name: "the MCP server, defaults narrowed to its registration", client: "mcp-orders", form: downstream(agentTok, nil, ordersAPI),
			wantScope: "orders:read:*", wantAud: []string{ordersAPI}},
		{name: "resource counts as audience", client: "mcp-orders",
			form: dt.ExchangeForm(agentTok, "", url.Values{"resource": {ordersAPI}, "scope": {"orders:read:x"}}), wantScope: "orders:read:x", wantAud: []string{ordersAPI}},
		{name: "a token for both MCP servers, by either", client: "mcp-mail", form: downstream(bothAuds, url.Values{"scope": {"mail:send"}}, mailAPI),
			wantScope: "mail:send", wantAud: []string{mailAPI}},

		{name: "a client that serves another audience", client: "mcp-mail", form: downstream(agentTok, nil, mailAPI),
			code: oauth.CodeInvalidRequest, frag: notHeld},
		{name: "asking for the audience it serves, not the token's", client: "mcp-mail", form: downstream(agentTok, nil, mcpMail),
			code: oauth.CodeInvalidRequest, frag: notHeld},
		{name: "a client that serves nothing", client: "outsider", form: downstream(agentTok, nil, ordersAPI),
			code: oauth.CodeInvalidRequest, frag: notHeld},
		{name: "an identity token as subject", client: "mcp-orders", form: downstream(env.Identity(t, "agent"), nil, ordersAPI),
			code: oauth.CodeInvalidRequest, frag: notHeld},
		{name: "a scope beyond the parent", client: "mcp-orders", form: downstream(agentTok, url.Values{"scope": {"orders:write:orders"}}, ordersAPI),
			code: oauth.CodeInvalidScope, frag: `scope "orders:write:orders" is not covered by the subject_token's scope`},
		{name: "a wildcard wider than the parent", client: "mcp-orders", form: downstream(agentTok, url.Values{"scope": {"orders:*"}}, ordersAPI),
			code: oauth.CodeInvalidScope, frag: "not covered by the subject_token's scope"},
		{name: "a scope beyond its registration", client: "mcp-orders", form: downstream(agentTok, url.Values{"scope": {"tools:search"}}, ordersAPI),
			code: oauth.CodeInvalidScope, frag: `scope "tools:search" is beyond client "mcp-orders"'s registered scopes`},
		{name: "no scope of the parent within its registration", client: "mcp-mail",
			form: downstream(env.Delegate(t, "orchestrator", env.Mint(t, "orchestrator", url.Values{"scope": {"tools:*"}}), "agent", nil), nil, mailAPI),
			code: oauth.CodeInvalidScope, frag: `no scope of the subject_token's scope is within client "mcp-mail"'s registered scopes`},
		{name: "an audience beyond its registration", client: "mcp-orders", form: downstream(agentTok, nil, mailAPI),
			code: oauth.CodeInvalidTarget, frag: `audience "https://mail-api.example" is beyond client "mcp-orders"'s registered audiences`},
		{name: "the parent's own audience", client: "mcp-orders", form: downstream(agentTok, nil, mcpOrders),
			code: oauth.CodeInvalidTarget, frag: `audience "https://mcp.orders.example/mcp" is beyond client "mcp-orders"'s registered audiences`},
		{name: "a granted audience next to another", client: "mcp-orders", form: downstream(agentTok, nil, ordersAPI, mailAPI),
			code: oauth.CodeInvalidTarget, frag: `audience "https://mail-api.example"`},
		{name: "no audience asked for", client: "mcp-orders", form: downstream(agentTok, nil),
			code: oauth.CodeInvalidRequest, frag: "an audience exchange needs audience (or resource)"},
		{name: "an actor token", client: "mcp-orders", form: dt.ExchangeForm(agentTok, env.Identity(t, "mcp-orders"), url.Values{"audience": {ordersAPI}}),
			code: oauth.CodeInvalidRequest, frag: "takes no actor_token"},
		{name: "an actor token naming another", client: "mcp-orders", form: dt.ExchangeForm(agentTok, env.Identity(t, "outsider"), url.Values{"audience": {ordersAPI}}),
			code: oauth.CodeInvalidRequest, frag: "takes no actor_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.Post(t, "token_endpoint", tt.client, tt.form)
			if tt.code != "" {
				expectError(t, r, 400, tt.code)
				if d := r.String("error_description"); !strings.Contains(d, tt.frag) {
					t.Errorf("description %q lacks %q", d, tt.frag)
				}
				return
			}
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Raw)
			}
			c := env.Claims(t, r.String("access_token"))
			if c.Scope != tt.wantScope || !reflect.DeepEqual([]string(c.Audience), tt.wantAud) || c.ClientID != tt.client || c.Act.Subject != tt.client {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

// TestAudienceExchangeNeverOutlivesItsParent: the child ends with its
// parent when the parent has less left than delegated_ttl, and a parent
// past its exp cannot be exchanged.
func TestAudienceExchangeNeverOutlivesItsParent(t *testing.T) {
	env := dt.New(t, dt.Options{Clients: mcpClients(), RootTTL: 10 * time.Minute, DelegatedTTL: 8 * time.Minute})
	_, agentTok := agentTask(t, env, nil)
	parentExp := env.Claims(t, agentTok).Expiry
	env.Clock.Advance(7 * time.Minute) // one minute left on the parent
	r := env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, nil, ordersAPI))
	if r.Status != 200 || r.JSON["expires_in"] != float64(60) {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if exp := env.Claims(t, r.String("access_token")).Expiry; exp != parentExp {
		t.Errorf("child exp %v, parent exp %v", exp, parentExp)
	}
	env.Clock.Advance(2 * time.Minute)
	r = env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, nil, ordersAPI))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "expired") {
		t.Errorf("description = %q", r.String("error_description"))
	}
}

// TestAudienceExchangeDepth: the exchange is a hop like any other, bounded
// by max_depth.
func TestAudienceExchangeDepth(t *testing.T) {
	env := dt.New(t, dt.Options{Clients: mcpClients(), MaxDepth: 1})
	_, agentTok := agentTask(t, env, nil) // depth 1
	r := env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, nil, ordersAPI))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if d := r.String("error_description"); d != "delegation depth 2 would exceed max_depth 1" {
		t.Errorf("description = %q", d)
	}
	// A root sent straight to the MCP server is one hop from it.
	root := env.Mint(t, "agent", url.Values{"audience": {mcpOrders}})
	if r := env.Post(t, "token_endpoint", "mcp-orders", downstream(root, nil, ordersAPI)); r.Status != 200 {
		t.Fatalf("from a root: %d %s", r.Status, r.Raw)
	} else if c := env.Claims(t, r.String("access_token")); c.Subject != "agent" || c.Act.Subject != "mcp-orders" || c.Act.Act != nil || len(c.Lineage) != 1 {
		t.Errorf("child of a root = %+v", c)
	}
}

// TestAudienceExchangeAndDPoP: no proof of the subject token's key is asked
// (the MCP server checked it when the call came in), but a child of a bound
// token is bound, to the MCP server's own key; that child is useless as a
// bearer token, at the API and at Mandate.
func TestAudienceExchangeAndDPoP(t *testing.T) {
	env := dt.New(t, dt.Options{Clients: mcpClients()})
	agentKey, mcpKey := newKey(t), newKey(t)
	bound := mintBound(t, env, "agent", agentKey, url.Values{"audience": {mcpOrders}})

	r := env.Post(t, "token_endpoint", "mcp-orders", downstream(bound, nil, ordersAPI))
	expectError(t, r, 400, oauth.CodeInvalidDPoPProof)
	if !strings.Contains(r.String("error_description"), `DPoP proof made with client "mcp-orders"'s own key`) {
		t.Errorf("description = %q", r.String("error_description"))
	}

	r = env.PostDPoP(t, "token_endpoint", "mcp-orders", downstream(bound, nil, ordersAPI), env.Proof(t, mcpKey))
	if r.Status != 200 || r.String("token_type") != "DPoP" {
		t.Fatalf("bound audience exchange: %d %s", r.Status, r.Raw)
	}
	child := r.String("access_token")
	if c := env.Claims(t, child); c.Cnf == nil || c.Cnf.JKT != mcpKey.JKT() {
		t.Fatalf("child bound to %+v, want the MCP server's key", c.Cnf)
	}

	api := downstreamAPI(t, env)
	if _, err := api.Verify(context.Background(), child); !errors.Is(err, verifier.ErrSenderConstrained) {
		t.Errorf("the bound child as a bearer token: %v", err)
	}
	const callURL = ordersAPI + "/orders"
	proof, err := mcpKey.Proof(http.MethodGet, callURL, child, "", env.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := api.VerifyDPoP(context.Background(), child, proof, http.MethodGet, callURL); err != nil || ch.Holder != "mcp-orders" {
		t.Errorf("the bound child with the MCP server's proof: %+v, %v", ch, err)
	}
	agentProof, _ := agentKey.Proof(http.MethodGet, callURL, child, "", env.Clock.Now())
	if _, err := api.VerifyDPoP(context.Background(), child, agentProof, http.MethodGet, callURL); !errors.Is(err, verifier.ErrInvalidDPoPProof) {
		t.Errorf("the bound child with the agent's key: %v", err)
	}
	// At Mandate, narrowing it needs the MCP server's key too.
	expectError(t, env.Post(t, "token_endpoint", "mcp-orders", dt.ExchangeForm(child, "", nil)), 400, oauth.CodeInvalidDPoPProof)
	if r := env.PostDPoP(t, "token_endpoint", "mcp-orders", dt.ExchangeForm(child, "", nil), env.Proof(t, mcpKey)); r.Status != 200 {
		t.Errorf("narrowing with its key: %d %s", r.Status, r.Raw)
	}

	// A bearer parent: a bearer child without a proof, a bound one with.
	_, agentTok := agentTask(t, env, nil)
	if r := env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, nil, ordersAPI)); r.Status != 200 || r.String("token_type") != "Bearer" {
		t.Errorf("bearer: %d %s", r.Status, r.Raw)
	}
	r = env.PostDPoP(t, "token_endpoint", "mcp-orders", downstream(agentTok, nil, ordersAPI), env.Proof(t, mcpKey))
	if r.Status != 200 || env.Claims(t, r.String("access_token")).Cnf.JKT != mcpKey.JKT() {
		t.Errorf("bound child of a bearer parent: %d %s", r.Status, r.Raw)
	}
}

// TestPolicyDecidesAudienceExchanges: Cedar sees the exchange as
// Action::"delegate" from the MCP server to itself with
// context.audience_exchange, so an operator permits it for MCP servers
// only and forbids what they must never get downstream.
func TestPolicyDecidesAudienceExchanges(t *testing.T) {
	env := dt.New(t, dt.Options{Clients: mcpClients(), Policies: []policy.File{{Name: "p.cedar", Source: []byte(`
@id("mint-own") permit (principal, action == Action::"mint", resource) when { principal == resource };
@id("delegate") permit (principal, action == Action::"delegate", resource) when { !context.audience_exchange };
@id("mcp-servers-downstream")
permit (principal in Group::"mcp-servers", action == Action::"delegate", resource)
when { context.audience_exchange && principal == resource };
@id("no-writes-downstream")
forbid (principal, action, resource) when { context.audience_exchange && context.scope_patterns.contains("*:write:*") };
`)}}})
	root := env.Mint(t, "orchestrator", nil)
	agentTok := env.Delegate(t, "orchestrator", root, "agent", nil)
	if r := env.Post(t, "token_endpoint", "mcp-orders", downstream(agentTok, url.Values{"scope": {"orders:read:x"}}, ordersAPI)); r.Status != 200 {
		t.Fatalf("permitted: %d %s", r.Status, r.Raw)
	}
	r := env.Post(t, "token_endpoint", "mcp-mail", downstream(agentTok, url.Values{"scope": {"mail:send"}}, mailAPI))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if d := r.String("error_description"); d != policy.NoPolicyPermits {
		t.Errorf("not an MCP server by group: %q", d)
	}
	// The agent's registration has no writes; the orchestrator's root, sent
	// straight to the MCP server, does.
	r = env.Post(t, "token_endpoint", "mcp-orders", downstream(root, url.Values{"scope": {"orders:write:x"}}, ordersAPI))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if d := r.String("error_description"); !strings.Contains(d, "no-writes-downstream") {
		t.Errorf("forbidden writes: %q", d)
	}
}
