package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

func newKey(t *testing.T) *tokens.DPoPKey {
	t.Helper()
	k, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mintBound gets a client_credentials token bound to key.
func mintBound(t *testing.T, env *dt.Env, client string, key *tokens.DPoPKey, extra url.Values) string {
	t.Helper()
	form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	for k, v := range extra {
		form[k] = v
	}
	r := env.PostDPoP(t, "token_endpoint", client, form, env.Proof(t, key))
	if r.Status != 200 || r.String("token_type") != "DPoP" {
		t.Fatalf("bound mint: %d %s", r.Status, r.Raw)
	}
	return r.String("access_token")
}

func TestDPoPBindsTokensAtTheTokenEndpoint(t *testing.T) {
	env := dt.New(t, dt.Options{})
	key := newKey(t)
	root := mintBound(t, env, "orchestrator", key, nil)
	if c := env.Claims(t, root); c.Cnf == nil || c.Cnf.JKT != key.JKT() {
		t.Fatalf("cnf = %+v", c.Cnf)
	}
	in := introspect(t, env, root)
	if in.String("token_type") != "DPoP" || in.JSON["cnf"].(map[string]any)["jkt"] != key.JKT() {
		t.Errorf("introspection = %s", in.Raw)
	}
	if m := env.Metadata["dpop_signing_alg_values_supported"]; m == nil {
		t.Error("metadata does not advertise DPoP")
	}
	// Down-scoping a bound token with a proof of its key keeps the binding.
	r := env.PostDPoP(t, "token_endpoint", "orchestrator", dt.ExchangeForm(root, "", url.Values{"scope": {"tools:x"}}), env.Proof(t, key))
	if r.Status != 200 || r.String("token_type") != "DPoP" || env.Claims(t, r.String("access_token")).Cnf.JKT != key.JKT() {
		t.Fatalf("bound down-scope: %d %s", r.Status, r.Raw)
	}
}

// TestAStolenBoundTokenIsUselessAtTheTokenEndpoint: without the key, a
// bound token cannot be exchanged, however the proof is forged.
func TestAStolenBoundTokenIsUselessAtTheTokenEndpoint(t *testing.T) {
	env := dt.New(t, dt.Options{})
	key, thief := newKey(t), newKey(t)
	root := mintBound(t, env, "orchestrator", key, nil)
	wrongURL, _ := key.Proof("POST", env.URL+"/oauth2/other", "", "", env.Clock.Now())
	wrongMethod, _ := key.Proof("GET", env.Endpoint(t, "token_endpoint"), "", "", env.Clock.Now())
	stale, _ := key.Proof("POST", env.Endpoint(t, "token_endpoint"), "", "", env.Clock.Now().Add(-5*time.Minute))
	replayed := env.Proof(t, key)
	if r := env.PostDPoP(t, "token_endpoint", "orchestrator", dt.ExchangeForm(root, "", nil), replayed); r.Status != 200 {
		t.Fatalf("first use of the proof: %d %s", r.Status, r.Raw)
	}
	tests := []struct{ name, proof string }{
		{"no proof (sent as a bearer token)", ""},
		{"a proof by the thief's key", env.Proof(t, thief)},
		{"a proof for another URL", wrongURL},
		{"a proof for another method", wrongMethod},
		{"a stale proof", stale},
		{"a replayed proof", replayed},
		{"garbage", "x.y.z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.PostDPoP(t, "token_endpoint", "orchestrator", dt.ExchangeForm(root, "", nil), tt.proof)
			expectError(t, r, 400, oauth.CodeInvalidDPoPProof)
		})
	}
	t.Run("two DPoP headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, env.Endpoint(t, "token_endpoint"), strings.NewReader(dt.ExchangeForm(root, "", nil).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
		req.Header.Add("DPoP", env.Proof(t, key))
		req.Header.Add("DPoP", env.Proof(t, key))
		expectError(t, env.Do(t, req), 400, oauth.CodeInvalidDPoPProof)
	})
}

// TestChildrenOfBoundTokensAreBoundToTheirHolder follows docs/design.md's DPoP
// bindings: to the new holder's key when the holder changes, refused when the
// new holder has none.
func TestChildrenOfBoundTokensAreBoundToTheirHolder(t *testing.T) {
	env := dt.New(t, dt.Options{})
	orch, res := newKey(t), newKey(t)
	root := mintBound(t, env, "orchestrator", orch, nil)
	unboundActor := env.Identity(t, "researcher")
	r := env.PostDPoP(t, "token_endpoint", "orchestrator", dt.ExchangeForm(root, unboundActor, nil), env.Proof(t, orch))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "new holder needs a key") {
		t.Errorf("description = %q", r.String("error_description"))
	}
	boundActor := mintBound(t, env, "researcher", res, nil)
	r = env.PostDPoP(t, "token_endpoint", "orchestrator", dt.ExchangeForm(root, boundActor, nil), env.Proof(t, orch))
	if r.Status != 200 || r.String("token_type") != "DPoP" {
		t.Fatalf("bound delegation: %d %s", r.Status, r.Raw)
	}
	child := r.String("access_token")
	if c := env.Claims(t, child); c.Cnf.JKT != res.JKT() || c.ClientID != "researcher" {
		t.Fatalf("child bound to %v held by %s, want the researcher's key", c.Cnf, c.ClientID)
	}
	// The orchestrator's key does not work on the researcher's token, and
	// the researcher's does.
	expectError(t, env.PostDPoP(t, "token_endpoint", "researcher", dt.ExchangeForm(child, "", nil), env.Proof(t, orch)), 400, oauth.CodeInvalidDPoPProof)
	if r := env.PostDPoP(t, "token_endpoint", "researcher", dt.ExchangeForm(child, "", nil), env.Proof(t, res)); r.Status != 200 {
		t.Fatalf("the holder's own key: %d %s", r.Status, r.Raw)
	}
}

func agentToken(t *testing.T, env *dt.Env, key *tokens.DPoPKey, edit func(map[string]any)) string {
	t.Helper()
	now := env.Clock.Now()
	c := map[string]any{"iss": "orchestrator", "sub": "orchestrator/summarizer-7f3a", "aud": env.URL,
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": "a1"}
	if edit != nil {
		edit(c)
	}
	tok, err := key.SignJWT(delegation.TypeAgent, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEphemeralAgents(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root := env.Mint(t, "orchestrator", nil)
	agent := newKey(t)
	form := func(actor string, extra url.Values) url.Values {
		f := dt.ExchangeForm(root, "", extra)
		f.Set("actor_token", actor)
		f.Set("actor_token_type", oauth.TokenTypeJWT)
		return f
	}
	r := env.Post(t, "token_endpoint", "orchestrator", form(agentToken(t, env, agent, nil), url.Values{"scope": {"db:read:orders"}}))
	if r.Status != 200 || r.String("token_type") != "DPoP" {
		t.Fatalf("ephemeral delegation: %d %s", r.Status, r.Raw)
	}
	c := env.Claims(t, r.String("access_token"))
	if c.ClientID != "orchestrator/summarizer-7f3a" || c.Cnf.JKT != agent.JKT() || c.Act.Subject != "orchestrator/summarizer-7f3a" {
		t.Errorf("ephemeral child: holder %s cnf %v act %+v", c.ClientID, c.Cnf, c.Act)
	}
	// Default scope: the parent's narrowed to the owner's ephemeral ceiling.
	r = env.Post(t, "token_endpoint", "orchestrator", form(agentToken(t, env, agent, func(c map[string]any) { c["jti"] = "a2" }), nil))
	if c := env.Claims(t, r.String("access_token")); c.Scope != "db:read:* tools:search" {
		t.Errorf("default ephemeral scope %q", c.Scope)
	}

	forged := agentToken(t, env, agent, nil)
	parts := strings.Split(forged, ".")
	other := strings.Split(agentToken(t, env, newKey(t), nil), ".")
	tests := []struct {
		name   string
		client string
		actor  string
		extra  url.Values
		code   string
	}{
		{"outside the namespace", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "researcher/x" }), nil, oauth.CodeInvalidRequest},
		{"an empty name", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/" }), nil, oauth.CodeInvalidRequest},
		{"a path in the name", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/a/../b" }), nil, oauth.CodeInvalidRequest},
		{"the name ..", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/.." }), nil, oauth.CodeInvalidRequest},
		{"the name .", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/." }), nil, oauth.CodeInvalidRequest},
		{"a hidden name", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/.x" }), nil, oauth.CodeInvalidRequest},
		{"a name like a flag", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/-rf" }), nil, oauth.CodeInvalidRequest},
		{"a home directory", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/~root" }), nil, oauth.CodeInvalidRequest},
		{"a trailing dot", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/agent." }), nil, oauth.CodeInvalidRequest},
		{"a name of 65", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["sub"] = "orchestrator/" + strings.Repeat("a", 65) }), nil, oauth.CodeInvalidRequest},
		{"made for another owner", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["iss"] = "researcher" }), nil, oauth.CodeInvalidRequest},
		{"for another issuer", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["aud"] = "https://elsewhere" }), nil, oauth.CodeInvalidRequest},
		{"expired", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["exp"] = env.Clock.Now().Unix() }), nil, oauth.CodeInvalidRequest},
		{"long-lived", "orchestrator", agentToken(t, env, agent, func(c map[string]any) { c["exp"] = env.Clock.Now().Add(time.Hour).Unix() }), nil, oauth.CodeInvalidRequest},
		{"signed by another key", "orchestrator", parts[0] + "." + parts[1] + "." + other[2], nil, oauth.CodeInvalidRequest},
		{"beyond the ephemeral ceiling", "orchestrator", forged, url.Values{"scope": {"db:write:orders"}}, oauth.CodeInvalidScope},
		{"a client without ephemeral agents", "researcher", agentToken(t, env, agent, func(c map[string]any) { c["iss"], c["sub"] = "researcher", "researcher/x" }), nil, oauth.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := root
			if tt.client == "researcher" {
				subject = env.Delegate(t, "orchestrator", root, "researcher", nil)
			}
			f := dt.ExchangeForm(subject, "", tt.extra)
			f.Set("actor_token", tt.actor)
			f.Set("actor_token_type", oauth.TokenTypeJWT)
			expectError(t, env.Post(t, "token_endpoint", tt.client, f), 400, tt.code)
		})
	}
}

// TestPolicyDecidesEphemeralNamesAndBinding: policy sees whether the new
// holder is an ephemeral agent, its name (context.holder, for like) and
// whether the token is bound, so "ephemeral agents only under these names"
// and "delegate only sender-constrained" are one rule each.
func TestPolicyDecidesEphemeralNamesAndBinding(t *testing.T) {
	set := []policy.File{{Name: "p.cedar", Source: []byte(`
@id("all") permit (principal, action, resource);
@id("named-agents") forbid (principal, action == Action::"delegate", resource)
  when { context.ephemeral && !(context.holder like "orchestrator/summarizer-*") };
@id("bound-delegation") forbid (principal, action == Action::"delegate", resource)
  when { !context.bound };`)}}
	_, err := policy.Parse(set...)
	if err != nil {
		t.Fatal(err)
	}
	env := dt.New(t, dt.Options{Policies: set})
	root := env.Mint(t, "orchestrator", nil)
	exchange := func(actor string) dt.Response {
		f := dt.ExchangeForm(root, "", url.Values{"scope": {"db:read:orders"}})
		f.Set("actor_token", actor)
		f.Set("actor_token_type", oauth.TokenTypeJWT)
		return env.Post(t, "token_endpoint", "orchestrator", f)
	}
	if r := exchange(agentToken(t, env, newKey(t), nil)); r.Status != 200 {
		t.Fatalf("a summarizer: %d %s", r.Status, r.Raw)
	}
	r := exchange(agentToken(t, env, newKey(t), func(c map[string]any) { c["sub"] = "orchestrator/mailer-1" }))
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), `"named-agents"`) {
		t.Errorf("a mailer: %s", r.Raw)
	}
	// A registered agent with a bearer identity token gets a bearer child:
	// refused by the binding rule.
	r = env.Exchange(t, "orchestrator", root, env.Identity(t, "researcher"), url.Values{"scope": {"db:read:orders"}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), `"bound-delegation"`) {
		t.Errorf("a bearer delegation: %s", r.Raw)
	}
	// With a bound identity token, the same delegation passes.
	resID := mintBound(t, env, "researcher", newKey(t), nil)
	if r := env.Exchange(t, "orchestrator", root, resID, url.Values{"scope": {"db:read:orders"}}); r.Status != 200 {
		t.Errorf("a bound delegation: %d %s", r.Status, r.Raw)
	}
}

// TestOneClientCannotFillAnotherClientsProofCache: at the token endpoint,
// each client's DPoP proof jtis go into a share of its own
// (ProofsPerClient), so a client flooding it with proofs of throwaway keys
// refuses only itself; and a proof sent with a request the client may not
// make is not remembered, so it stays usable.
func TestOneClientCannotFillAnotherClientsProofCache(t *testing.T) {
	const share = 8
	env := dt.New(t, dt.Options{ProofsPerClient: share})
	cc := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	var refused dt.Response
	for range 3 * share {
		if r := env.PostDPoP(t, "token_endpoint", "outsider", cc, env.Proof(t, newKey(t))); r.Status != 200 {
			refused = r
		}
	}
	if refused.Status != 400 || refused.Error() != oauth.CodeInvalidDPoPProof || !strings.Contains(refused.String("error_description"), "replay") {
		t.Fatalf("the flooder's own share never filled: %d %s", refused.Status, refused.Raw)
	}
	if r := env.PostDPoP(t, "token_endpoint", "researcher", cc, env.Proof(t, newKey(t))); r.Status != 200 {
		t.Fatalf("another client's proof was refused: %d %s", r.Status, r.Raw)
	}
	proof := env.Proof(t, newKey(t))
	if r := env.PostDPoP(t, "token_endpoint", "no-grants-rs", cc, proof); r.Status != 400 || r.Error() != oauth.CodeUnauthorizedClient {
		t.Fatalf("a grant the client may not use: %d %s", r.Status, r.Raw)
	}
	if r := env.PostDPoP(t, "token_endpoint", "researcher", url.Values{"grant_type": {"urn:example:nothing"}}, proof); r.Status != 400 {
		t.Fatalf("an unsupported grant was served: %d %s", r.Status, r.Raw)
	}
	if r := env.PostDPoP(t, "token_endpoint", "researcher", cc, proof); r.Status != 200 {
		t.Errorf("a proof first sent with refused requests was spent: %d %s", r.Status, r.Raw)
	}
}
