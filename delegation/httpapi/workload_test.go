package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

const (
	k8sIssuer     = "https://kubernetes.default.svc.cluster.local"
	githubIssuer  = "https://token.actions.githubusercontent.com"
	enterpriseIdP = "https://login.acme.example"
)

// platforms are the signers of a workload-identity test: a Kubernetes API
// server, a SPIRE trust bundle (served over HTTP, as a jwks_url), GitHub
// Actions (single-use) and an enterprise IdP issuing ID-JAGs.
type platforms struct {
	k8s, spire, github, idp *idp
	bundle                  *httptest.Server
}

// workloadEnv starts Mandate with every kind of workload issuer, a client
// ("ci-orchestrator") registered for the JWT bearer grant, and opts'
// policies.
func workloadEnv(t *testing.T, policies ...policy.File) (*dt.Env, *platforms) {
	t.Helper()
	p := &platforms{k8s: newIdP(t), spire: newIdP(t), github: newIdP(t), idp: newIdP(t)}
	p.bundle = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.spire.jwks)
	}))
	t.Cleanup(p.bundle.Close)
	clients := append(dt.DefaultClients(),
		dt.Client{ID: "ci-orchestrator", Grants: []string{delegation.GrantNameJWTBearer, delegation.GrantNameTokenExchange},
			Scopes: []string{"db:read:*", "tools:*"}, Audiences: []string{"https://db.example"}},
		dt.Client{ID: "portal", Grants: []string{delegation.GrantNameJWTBearer, delegation.GrantNameTokenExchange},
			Scopes: []string{"db:read:*", "mail:send"}, Audiences: []string{"https://db.example", "https://mail.example"}})
	env := dt.New(t, dt.Options{Clients: clients, Policies: policies, Configure: func(cfg *server.Config, write func(string, []byte) string) {
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{
			{Issuer: k8sIssuer, KeySource: server.KeySource{JWKSFile: write("k8s.jwks.json", p.k8s.jwks)}, Rules: []server.WorkloadRuleConfig{
				{Match: map[string]string{"sub": "system:serviceaccount:ops:orchestrator"}, Client: "ci-orchestrator"},
				{Match: map[string]string{"sub": "system:serviceaccount:agents:*"},
					Agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*", "db:write:*"},
					Audiences: []string{"https://db.example"}, Groups: []string{"research-agents"}},
				{Match: map[string]string{"sub": "system:serviceaccount:*:*"},
					Agent: "k8s-other/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*", "db:write:*"},
					Audiences: []string{"https://db.example"}},
			}},
			{TrustDomain: "example.org", KeySource: server.KeySource{JWKSURL: p.bundle.URL + "/bundle.jwks"}, Rules: []server.WorkloadRuleConfig{
				{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Agent: "spiffe/{sub#1}", Scopes: []string{"tools:search"},
					Audiences: []string{"https://tools.example"}},
			}},
			{Issuer: githubIssuer, SingleUse: true, KeySource: server.KeySource{JWKSFile: write("gh.jwks.json", p.github.jwks)}, Rules: []server.WorkloadRuleConfig{
				{Match: map[string]string{"repository": "acme/agents", "ref": "refs/heads/main"}, Agent: "gh/{repository_owner}/{workflow}",
					Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}},
			}},
		}
		cfg.IDJAGIssuers = []server.IDJAGIssuerConfig{{Issuer: enterpriseIdP, KeySource: server.KeySource{JWKSFile: write("idp.jwks.json", p.idp.jwks)}}}
	}})
	return env, p
}

// k8sClaims is a projected service-account token's payload for namespace
// ns and service account sa, for Mandate's audience.
func k8sClaims(env *dt.Env, ns, sa string) map[string]any {
	return map[string]any{
		"aud": []string{env.URL}, "iss": k8sIssuer, "sub": "system:serviceaccount:" + ns + ":" + sa,
		"iat": dt.Start.Unix(), "nbf": dt.Start.Unix(), "exp": dt.Start.Add(time.Hour).Unix(),
		"jti": "k8s-" + ns + "-" + sa,
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"pod":            map[string]any{"name": sa + "-5d9c7b-x2x4z", "uid": "a1b2c3"},
			"serviceaccount": map[string]any{"name": sa, "uid": "c3d4e5"},
			"warnafter":      dt.Start.Add(45 * time.Minute).Unix(),
		},
	}
}

func svidClaims(env *dt.Env, name string) map[string]any {
	return map[string]any{"sub": "spiffe://example.org/agents/" + name, "aud": []string{env.URL},
		"iat": dt.Start.Unix(), "exp": dt.Start.Add(5 * time.Minute).Unix()}
}

func githubClaims(env *dt.Env, jti string) map[string]any {
	return map[string]any{
		"iss": githubIssuer, "aud": env.URL, "sub": "repo:acme/agents:ref:refs/heads/main",
		"repository": "acme/agents", "repository_owner": "acme", "ref": "refs/heads/main", "workflow": "nightly-eval",
		"job_workflow_ref": "acme/agents/.github/workflows/eval.yml@refs/heads/main", "event_name": "schedule",
		"run_id": "9876543210", "jti": jti, "iat": dt.Start.Unix(), "nbf": dt.Start.Unix(), "exp": dt.Start.Add(10 * time.Minute).Unix(),
	}
}

func idjagClaims(env *dt.Env, client, jti string) map[string]any {
	return map[string]any{
		"iss": enterpriseIdP, "sub": "alice@acme.example", "aud": env.URL, "client_id": client, "jti": jti,
		"iat": dt.Start.Unix(), "exp": dt.Start.Add(5 * time.Minute).Unix(),
		"scope": "db:read:orders mail:send", "resource": "https://db.example",
		"email": "alice@acme.example",
	}
}

// signTyp signs claims with p's key under header typ.
func (p *idp) signTyp(t *testing.T, typ string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, p.kid)
	if typ != "" {
		_ = h.Set(jws.TypeKey, typ)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, p.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// signRaw signs a payload as written (duplicate members and all).
func (p *idp) signRaw(t *testing.T, payload string) string {
	t.Helper()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, p.kid)
	out, err := jws.Sign([]byte(payload), jws.WithKey(jwa.ES256, p.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// bearerGrant posts the JWT bearer grant with no client authentication.
func bearerGrant(t *testing.T, env *dt.Env, assertion string, extra url.Values) dt.Response {
	t.Helper()
	form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {assertion}}
	for k, v := range extra {
		form[k] = v
	}
	return env.Post(t, "token_endpoint", "", form)
}

// asWorkload posts form authenticated by a workload token as the client
// assertion (RFC 7523 §2.2).
func asWorkload(t *testing.T, env *dt.Env, token string, form url.Values) dt.Response {
	t.Helper()
	form.Set("client_assertion_type", delegation.ClientAssertionType)
	form.Set("client_assertion", token)
	return env.Post(t, "token_endpoint", "", form)
}

func tokenCount(t *testing.T, env *dt.Env) int {
	t.Helper()
	recs, err := env.DB.ScanTokens(context.Background(), "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func lastAudit(t *testing.T, env *dt.Env) store.AuditRecord {
	t.Helper()
	recs, err := env.DB.AuditTail(context.Background(), 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("audit tail: %v %d", err, len(recs))
	}
	return recs[0]
}

func TestKubernetesServiceAccountStartsAChainWithoutASecret(t *testing.T) {
	env, p := workloadEnv(t)
	sa := p.k8s.sign(t, k8sClaims(env, "agents", "researcher"))
	r := bearerGrant(t, env, sa, url.Values{"scope": {"db:read:orders"}})
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	root := r.String("access_token")
	c := env.Claims(t, root)
	if c.Subject != "k8s/agents/researcher" || c.ClientID != c.Subject || c.SubjectIssuer != env.URL || c.Act != nil ||
		c.Scope != "db:read:orders" || !reflect.DeepEqual([]string(c.Audience), []string{"https://db.example"}) || len(c.Lineage) != 0 {
		t.Errorf("root %+v", c)
	}
	if c.Expiry != jwt.At(dt.Start.Add(15*time.Minute)) {
		t.Errorf("exp %d: want now + root_ttl", c.Expiry)
	}
	// The audit trail says which assertion started the chain.
	if a := lastAudit(t, env); a.Type != store.AuditIssued || a.Grant != delegation.GrantNameJWTBearer || a.JTI != c.ID ||
		!reflect.DeepEqual(a.Assertion, &store.AssertionRef{Kind: "workload", Issuer: k8sIssuer, Subject: "system:serviceaccount:agents:researcher", JTI: "k8s-agents-researcher"}) {
		t.Errorf("audit %+v assertion %+v", a, a.Assertion)
	}
	// The platform reuses the token until it rotates: so may the workload.
	if r := bearerGrant(t, env, sa, nil); r.Status != 200 {
		t.Fatalf("second root from one token: %d %s", r.Status, r.Raw)
	} else if c := env.Claims(t, r.String("access_token")); c.Scope != "db:read:* db:write:*" {
		t.Errorf("default scope %q: want the rule's ceiling", c.Scope)
	}
	// It delegates from its root, authenticated by the same token.
	r = asWorkload(t, env, sa, dt.ExchangeForm(root, "", url.Values{"scope": {"db:read:orders"}}))
	if r.Status != 200 {
		t.Fatalf("downscope as the workload: %d %s", r.Status, r.Raw)
	}
	if child := env.Claims(t, r.String("access_token")); child.Subject != "k8s/agents/researcher" || child.ClientID != "k8s/agents/researcher" || !slices.Equal(child.Lineage, []string{c.ID}) {
		t.Errorf("child %+v", child)
	}
	// Another client cannot exchange it: it is held by the workload.
	expectError(t, env.Exchange(t, "orchestrator", root, "", nil), 400, oauth.CodeInvalidRequest)
	// The orchestrator delegates to the workload, named by its identity token.
	idr := asWorkload(t, env, sa, url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {env.URL}})
	if idr.Status != 200 {
		t.Fatalf("identity token: %d %s", idr.Status, idr.Raw)
	}
	orch := env.Mint(t, "orchestrator", url.Values{"scope": {"db:read:* db:write:*"}, "audience": {"https://db.example"}})
	r = env.Exchange(t, "orchestrator", orch, idr.String("access_token"), url.Values{"scope": {"db:write:orders"}})
	if r.Status != 200 {
		t.Fatalf("delegate to the workload: %d %s", r.Status, r.Raw)
	}
	if d := env.Claims(t, r.String("access_token")); d.ClientID != "k8s/agents/researcher" || d.Subject != "orchestrator" {
		t.Errorf("delegated %+v", d)
	}
	// Its ceiling (the rule's) holds for what it is delegated too.
	expectError(t, env.Exchange(t, "orchestrator", orch, idr.String("access_token"), url.Values{"scope": {"tools:search"}}), 400, oauth.CodeInvalidScope)
	// Revoking its root ends what descends from it.
	env.Revoke(t, "ops", root)
	if r := asWorkload(t, env, sa, dt.ExchangeForm(root, "", nil)); r.Status != 400 {
		t.Errorf("exchange of a revoked root: %d %s", r.Status, r.Raw)
	}
}

func TestARuleMayNameARegisteredClient(t *testing.T) {
	env, p := workloadEnv(t)
	sa := p.k8s.sign(t, k8sClaims(env, "ops", "orchestrator"))
	r := bearerGrant(t, env, sa, nil)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if c := env.Claims(t, r.String("access_token")); c.Subject != "ci-orchestrator" || c.ClientID != "ci-orchestrator" || c.Scope != "db:read:* tools:*" {
		t.Errorf("root %+v", c)
	}
	// client_id, when sent, must be the identity the token maps to.
	expectError(t, bearerGrant(t, env, sa, url.Values{"client_id": {"orchestrator"}}), 400, oauth.CodeInvalidGrant)
	if r := bearerGrant(t, env, sa, url.Values{"client_id": {"ci-orchestrator"}}); r.Status != 200 {
		t.Errorf("with its own client_id: %d %s", r.Status, r.Raw)
	}
	// A generated identity is no registered client an IdP made an ID-JAG for.
	researcher := p.k8s.sign(t, k8sClaims(env, "agents", "researcher"))
	jagForIt := p.idp.signTyp(t, "oauth-id-jag+jwt", idjagClaims(env, "k8s/agents/researcher", "j-gen"))
	expectError(t, asWorkload(t, env, researcher, url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {jagForIt}}), 400, oauth.CodeUnauthorizedClient)
	// A client not registered for the grant may not use it, whatever token
	// names it (the orchestrator's grants are client_credentials and
	// token_exchange).
	orch := env.Mint(t, "orchestrator", nil)
	form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {p.idp.signTyp(t, "oauth-id-jag+jwt", idjagClaims(env, "orchestrator", "j-unauth"))}}
	expectError(t, env.Post(t, "token_endpoint", "orchestrator", form), 400, oauth.CodeUnauthorizedClient)
	_ = orch
}

func TestSPIFFEAndGitHubTokensStartChains(t *testing.T) {
	env, p := workloadEnv(t)
	r := bearerGrant(t, env, p.spire.sign(t, svidClaims(env, "summarizer")), nil)
	if r.Status != 200 {
		t.Fatalf("JWT-SVID: %d %s", r.Status, r.Raw)
	}
	if c := env.Claims(t, r.String("access_token")); c.Subject != "spiffe/summarizer" || c.Scope != "tools:search" ||
		c.Expiry != jwt.At(dt.Start.Add(5*time.Minute)) { // never outlives the SVID
		t.Errorf("SVID root %+v", c)
	}
	if a := lastAudit(t, env).Assertion; a == nil || a.Issuer != "spiffe://example.org" || a.JTI != "" || len(a.SHA256) != 64 {
		t.Errorf("an SVID without jti is named by its hash: %+v", a)
	}
	gh := p.github.sign(t, githubClaims(env, "gh-run-1"))
	r = bearerGrant(t, env, gh, nil)
	if r.Status != 200 {
		t.Fatalf("GitHub: %d %s", r.Status, r.Raw)
	}
	if c := env.Claims(t, r.String("access_token")); c.Subject != "gh/acme/nightly-eval" || c.Scope != "db:read:*" {
		t.Errorf("GitHub root %+v", c)
	}
	// single_use: the same token is refused the second time.
	n := tokenCount(t, env)
	expectError(t, bearerGrant(t, env, gh, nil), 400, oauth.CodeInvalidGrant)
	if tokenCount(t, env) != n {
		t.Error("a replayed assertion stored a token")
	}
}

func TestWorkloadAssertionRefusals(t *testing.T) {
	env, p := workloadEnv(t)
	other := newIdP(t) // same kid, another key
	good := func(edit func(map[string]any)) string {
		c := k8sClaims(env, "agents", "researcher")
		if edit != nil {
			edit(c)
		}
		return p.k8s.sign(t, c)
	}
	payload := strings.Split(good(nil), ".")[1]
	hmacJWKS := dt.JWS(map[string]any{"alg": "HS256", "kid": p.k8s.kid}, payload, func(in []byte) []byte {
		m := hmac.New(sha256.New, p.k8s.jwks)
		m.Write(in)
		return m.Sum(nil)
	})
	tests := []struct {
		name, assertion string
		extra           url.Values
		code            string
	}{
		{"no assertion", "", nil, oauth.CodeInvalidRequest},
		{"not a JWT", "not-a-jwt", nil, oauth.CodeInvalidGrant},
		{"alg none", dt.JWS(map[string]any{"alg": "none", "kid": p.k8s.kid}, payload, nil), nil, oauth.CodeInvalidGrant},
		{"HS256 keyed with the JWKS", hmacJWKS, nil, oauth.CodeInvalidGrant},
		{"an unknown kid", dt.JWS(map[string]any{"alg": "ES256", "kid": "k8s-2"}, payload, nil), nil, oauth.CodeInvalidGrant},
		{"signed by another key", other.sign(t, k8sClaims(env, "agents", "researcher")), nil, oauth.CodeInvalidGrant},
		{"another audience", good(func(c map[string]any) { c["aud"] = []string{"https://vault.example"} }), nil, oauth.CodeInvalidGrant},
		{"expired", good(func(c map[string]any) { c["exp"] = dt.Start.Add(-time.Minute).Unix() }), nil, oauth.CodeInvalidGrant},
		{"no exp", good(func(c map[string]any) { delete(c, "exp") }), nil, oauth.CodeInvalidGrant},
		{"lives too long", good(func(c map[string]any) { c["exp"] = dt.Start.Add(48 * time.Hour).Unix() }), nil, oauth.CodeInvalidGrant},
		{"lives max_lifetime and a minute", good(func(c map[string]any) { c["exp"] = dt.Start.Add(61 * time.Minute).Unix() }), nil, oauth.CodeInvalidGrant},
		{"not yet valid", good(func(c map[string]any) { c["nbf"] = dt.Start.Add(time.Hour).Unix() }), nil, oauth.CodeInvalidGrant},
		{"an unconfigured issuer", good(func(c map[string]any) { c["iss"] = "https://k8s.other.example" }), nil, oauth.CodeInvalidGrant},
		{"matches no rule", good(func(c map[string]any) { c["sub"] = "system:node:node-1" }), nil, oauth.CodeInvalidGrant},
		{"a claim that cannot be a name", good(func(c map[string]any) {
			c["kubernetes.io"].(map[string]any)["serviceaccount"] = map[string]any{"name": "../../orchestrator"}
		}), nil, oauth.CodeInvalidGrant},
		{"a typ that is not a JWT's", p.k8s.signTyp(t, "at+jwt", k8sClaims(env, "agents", "researcher")), nil, oauth.CodeInvalidGrant},
		{"a duplicate member", p.k8s.signRaw(t, `{"iss":"`+k8sIssuer+`","sub":"system:serviceaccount:agents:researcher","sub":"system:serviceaccount:ops:orchestrator","aud":"`+env.URL+`","exp":`+
			strconv.FormatInt(dt.Start.Add(time.Hour).Unix(), 10)+`,"kubernetes.io":{"namespace":"agents","serviceaccount":{"name":"researcher"}}}`), nil, oauth.CodeInvalidGrant},
		{"a scope beyond the rule", good(nil), url.Values{"scope": {"tools:search"}}, oauth.CodeInvalidScope},
		{"an audience beyond the rule", good(nil), url.Values{"audience": {"https://tools.example"}}, oauth.CodeInvalidTarget},
		{"with a subject_token", good(nil), url.Values{"subject_token": {"x"}}, oauth.CodeInvalidRequest},
		{"an SVID of another trust domain", p.spire.sign(t, map[string]any{"sub": "spiffe://evil.example/agents/x", "aud": env.URL,
			"exp": dt.Start.Add(time.Minute).Unix()}), nil, oauth.CodeInvalidGrant},
		{"GitHub without jti (single_use)", p.github.sign(t, githubClaims(env, "")), nil, oauth.CodeInvalidGrant},
		{"GitHub from another branch", p.github.sign(t, func() map[string]any {
			c := githubClaims(env, "gh-other")
			c["ref"] = "refs/heads/evil"
			return c
		}()), nil, oauth.CodeInvalidGrant},
	}
	before := tokenCount(t, env)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bearerGrant(t, env, tt.assertion, tt.extra)
			t.Logf("%s", r.Raw)
			expectError(t, r, 400, tt.code)
		})
	}
	if tokenCount(t, env) != before {
		t.Errorf("refused assertions stored %d tokens", tokenCount(t, env)-before)
	}
	t.Run("as a client assertion: invalid_client", func(t *testing.T) {
		r := asWorkload(t, env, good(func(c map[string]any) { c["aud"] = []string{"https://vault.example"} }),
			url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {env.URL}})
		expectError(t, r, 401, oauth.CodeInvalidClient)
	})
	t.Run("a workload token beside other client authentication", func(t *testing.T) {
		form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {good(nil)}}
		expectError(t, env.Post(t, "token_endpoint", "ci-orchestrator", form), 400, oauth.CodeInvalidGrant)
	})
}

func TestIDJAGRootIsTheUsersHeldByTheClient(t *testing.T) {
	env, p := workloadEnv(t)
	jag := p.idp.signTyp(t, "oauth-id-jag+jwt", idjagClaims(env, "portal", "jag-1"))
	form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {jag}}
	r := env.Post(t, "token_endpoint", "portal", form)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	c := env.Claims(t, r.String("access_token"))
	// scope = requested (none: all) ∩ the ID-JAG's ∩ the registration's;
	// audience = the ID-JAG's resource.
	if c.Subject != "alice@acme.example" || c.SubjectIssuer != enterpriseIdP || c.ClientID != "portal" ||
		!reflect.DeepEqual(c.Act, &jwt.Actor{Subject: "portal"}) || c.Scope != "db:read:orders mail:send" ||
		!reflect.DeepEqual([]string(c.Audience), []string{"https://db.example"}) {
		t.Errorf("root %+v act %+v", c, c.Act)
	}
	if a := lastAudit(t, env).Assertion; a == nil || a.Kind != "id-jag" || a.Issuer != enterpriseIdP || a.Subject != "alice@acme.example" || a.JTI != "jag-1" {
		t.Errorf("audit assertion %+v", a)
	}
	// An ID-JAG is single-use.
	expectError(t, env.Post(t, "token_endpoint", "portal", form), 400, oauth.CodeInvalidGrant)
	// The client delegates from it as from any root.
	if child := env.Claims(t, env.Delegate(t, "portal", r.String("access_token"), "researcher", url.Values{"scope": {"db:read:orders"}})); child.Subject != "alice@acme.example" {
		t.Errorf("child sub %q", child.Subject)
	}
}

func TestIDJAGRefusals(t *testing.T) {
	env, p := workloadEnv(t)
	n := 0
	jag := func(edit func(map[string]any)) string {
		n++
		c := idjagClaims(env, "portal", "jag-r"+string(rune('a'+n)))
		if edit != nil {
			edit(c)
		}
		return p.idp.signTyp(t, "oauth-id-jag+jwt", c)
	}
	post := func(client, assertion string, extra url.Values) dt.Response {
		form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {assertion}}
		for k, v := range extra {
			form[k] = v
		}
		return env.Post(t, "token_endpoint", client, form)
	}
	before := tokenCount(t, env)
	for _, tt := range []struct {
		name, client, assertion string
		extra                   url.Values
		code                    string
	}{
		{"made for another client", "portal", jag(func(c map[string]any) { c["client_id"] = "ci-orchestrator" }), nil, oauth.CodeInvalidGrant},
		{"for another authorization server", "portal", jag(func(c map[string]any) { c["aud"] = "https://as.other.example" }), nil, oauth.CodeInvalidGrant},
		{"lives too long", "portal", jag(func(c map[string]any) { c["exp"] = dt.Start.Add(time.Hour).Unix() }), nil, oauth.CodeInvalidGrant},
		{"expired", "portal", jag(func(c map[string]any) { c["exp"] = dt.Start.Add(-time.Second).Unix() }), nil, oauth.CodeInvalidGrant},
		{"no jti", "portal", jag(func(c map[string]any) { delete(c, "jti") }), nil, oauth.CodeInvalidGrant},
		{"no iat", "portal", jag(func(c map[string]any) { delete(c, "iat") }), nil, oauth.CodeInvalidGrant},
		{"no client_id", "portal", jag(func(c map[string]any) { delete(c, "client_id") }), nil, oauth.CodeInvalidGrant},
		{"an unconfigured IdP", "portal", jag(func(c map[string]any) { c["iss"] = "https://idp.other.example" }), nil, oauth.CodeInvalidGrant},
		{"signed by a workload issuer's key", "portal", p.k8s.signTyp(t, "oauth-id-jag+jwt", idjagClaims(env, "portal", "jag-k")), nil, oauth.CodeInvalidGrant},
		{"an IdP token that is no ID-JAG (typ)", "portal", p.idp.signTyp(t, "JWT", idjagClaims(env, "portal", "jag-t")), nil, oauth.CodeInvalidGrant},
		{"a scope beyond the ID-JAG", "portal", jag(nil), url.Values{"scope": {"db:read:customers"}}, oauth.CodeInvalidScope},
		{"a resource beyond the ID-JAG", "portal", jag(nil), url.Values{"resource": {"https://mail.example"}}, oauth.CodeInvalidTarget},
		{"a scope the registration lacks", "ci-orchestrator", p.idp.signTyp(t, "oauth-id-jag+jwt", idjagClaims(env, "ci-orchestrator", "jag-o")),
			url.Values{"scope": {"mail:send"}}, oauth.CodeInvalidScope},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.client, tt.assertion, tt.extra)
			t.Logf("%s", r.Raw)
			expectError(t, r, 400, tt.code)
		})
	}
	if tokenCount(t, env) != before {
		t.Errorf("refused ID-JAGs stored %d tokens", tokenCount(t, env)-before)
	}
	// A refused request spent nothing: the same ID-JAG, asked within it, works.
	j := jag(nil)
	expectError(t, post("portal", j, url.Values{"scope": {"db:write:orders"}}), 400, oauth.CodeInvalidScope)
	if r := post("portal", j, url.Values{"scope": {"db:read:orders"}}); r.Status != 200 {
		t.Errorf("the ID-JAG after a refused request: %d %s", r.Status, r.Raw)
	}
}

func TestPolicySeesTheAssertion(t *testing.T) {
	env, p := workloadEnv(t, policy.File{Name: "workload.cedar", Source: []byte(`
@id("all") permit (principal, action, resource);
@id("db-writes-only-from-agents") forbid (principal, action == Action::"mint", resource)
  when { context has assertion && context.scope_patterns.contains("db:write:*") }
  unless { context.assertion.kind == "workload" && context.assertion.claims has "kubernetes.io" &&
           context.assertion.claims["kubernetes.io"].namespace == "agents" &&
           context.assertion.claims["kubernetes.io"].serviceaccount.name == "researcher" };`)})
	if r := bearerGrant(t, env, p.k8s.sign(t, k8sClaims(env, "agents", "researcher")), url.Values{"scope": {"db:write:*"}}); r.Status != 200 {
		t.Fatalf("agents/researcher: %d %s", r.Status, r.Raw)
	}
	other := p.k8s.sign(t, k8sClaims(env, "batch", "researcher"))
	r := bearerGrant(t, env, other, url.Values{"scope": {"db:write:*"}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "db-writes-only-from-agents") {
		t.Errorf("denial names the policy: %s", r.Raw)
	}
	if r := bearerGrant(t, env, other, url.Values{"scope": {"db:read:*"}}); r.Status != 200 {
		t.Errorf("batch/researcher reading: %d %s", r.Status, r.Raw)
	}
}

func TestMetadataAdvertisesTheJWTBearerGrantWhenConfigured(t *testing.T) {
	env, _ := workloadEnv(t)
	grants, _ := env.Metadata["grant_types_supported"].([]any)
	if !slices.Contains(grants, any(oauth.GrantJWTBearer)) {
		t.Errorf("grant_types_supported %v", grants)
	}
	if got := env.Metadata["authorization_grant_profiles_supported"]; !reflect.DeepEqual(got, []any{"urn:ietf:params:oauth:grant-profile:id-jag"}) {
		t.Errorf("authorization_grant_profiles_supported %v", got)
	}
	plain := dt.New(t, dt.Options{})
	grants, _ = plain.Metadata["grant_types_supported"].([]any)
	if slices.Contains(grants, any(oauth.GrantJWTBearer)) || plain.Metadata["authorization_grant_profiles_supported"] != nil {
		t.Errorf("without issuers: %v", plain.Metadata)
	}
	// Not advertised, not served.
	expectError(t, bearerGrant(t, plain, "a.b.c", nil), 400, oauth.CodeUnsupportedGrantType)
}

// TestAnIDJAGNeedsItsClientAuthenticated: an ID-JAG sent without client
// authentication is invalid_client (401), not mistaken for a workload token.
func TestAnIDJAGNeedsItsClientAuthenticated(t *testing.T) {
	env, p := workloadEnv(t)
	r := bearerGrant(t, env, p.idp.signTyp(t, "oauth-id-jag+jwt", idjagClaims(env, "portal", "jag-noauth")), nil)
	expectError(t, r, 401, oauth.CodeInvalidClient)
}

// TestASingleUseAssertionStaysSpentAcrossARestart: the embedded store
// records an ID-JAG's jti durably; the same ID-JAG is refused by the next
// process on the same data.
func TestASingleUseAssertionStaysSpentAcrossARestart(t *testing.T) {
	idp := dt.NewPlatform(t, enterpriseIdP)
	clock := dt.NewClock(dt.Start)
	opts := dt.Options{Issuer: "https://mandate.example", Clock: clock,
		Clients: append(dt.DefaultClients(), dt.Client{ID: "portal", Grants: []string{delegation.GrantNameJWTBearer}, Scopes: []string{"db:read:*"}}),
		Configure: func(cfg *server.Config, write func(string, []byte) string) {
			cfg.IDJAGIssuers = []server.IDJAGIssuerConfig{{Issuer: idp.Issuer, KeySource: server.KeySource{JWKSFile: write("idp.json", idp.JWKS)}}}
		}}
	env := dt.New(t, opts)
	jag := idp.Sign(t, "oauth-id-jag+jwt", map[string]any{"iss": idp.Issuer, "sub": "alice@acme.example", "aud": env.URL,
		"client_id": "portal", "jti": "jag-restart", "iat": clock.Now().Unix(), "exp": clock.Now().Add(5 * time.Minute).Unix()})
	form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {jag}}
	if r := env.Post(t, "token_endpoint", "portal", form); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	env.Stop(t)
	clock.Advance(time.Minute)
	opts.Dir = env.Dir
	again := dt.New(t, opts)
	r := again.Post(t, "token_endpoint", "portal", form)
	expectError(t, r, 400, oauth.CodeInvalidGrant)
	if !strings.Contains(r.String("error_description"), "already used") {
		t.Errorf("after a restart: %s", r.Raw)
	}
}

// TestATrustDomainsSVIDsCarryNoIssuer: an entry keyed by trust domain alone
// takes JWT-SVIDs without iss; one naming an issuer is no token of it.
func TestATrustDomainsSVIDsCarryNoIssuer(t *testing.T) {
	env, p := workloadEnv(t)
	c := svidClaims(env, "summarizer")
	c["iss"] = "https://evil.example"
	expectError(t, bearerGrant(t, env, p.spire.sign(t, c), nil), 400, oauth.CodeInvalidGrant)
}

// TestAPlatformsFewExtraSecondsAreTolerated: Kubernetes' legacy tokens
// live 3607 s for an hour asked for; max_lifetime has the clock leeway.
func TestAPlatformsFewExtraSecondsAreTolerated(t *testing.T) {
	env, p := workloadEnv(t)
	c := k8sClaims(env, "agents", "researcher")
	c["exp"] = dt.Start.Add(3607 * time.Second).Unix()
	if r := bearerGrant(t, env, p.k8s.sign(t, c), nil); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
}

// TestTheWorkedPoliciesOfTheDocs runs the Cedar policies of
// docs/workload-identity.md, as written there, against real requests.
func TestTheWorkedPoliciesOfTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/workload-identity.md")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	src.WriteString("@id(\"all\") permit (principal, action, resource);\n")
	blocks := regexp.MustCompile("(?s)```cedar\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) == 0 {
		t.Fatal("no cedar block in docs/workload-identity.md")
	}
	for _, b := range blocks {
		src.WriteString(b[1])
	}
	env, p := workloadEnv(t, policy.File{Name: "docs.cedar", Source: []byte(src.String())})
	mint := func(assertion, scope string) dt.Response {
		return bearerGrant(t, env, assertion, url.Values{"scope": {scope}})
	}
	if r := mint(p.k8s.sign(t, k8sClaims(env, "agents", "researcher")), "db:write:orders"); r.Status != 200 {
		t.Errorf("agents/researcher writes: %d %s", r.Status, r.Raw)
	}
	r := mint(p.k8s.sign(t, k8sClaims(env, "agents", "summarizer")), "db:write:orders")
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "db-writes-only-from-agents-researcher") {
		t.Errorf("summarizer writes: %s", r.Raw)
	}
	if r := mint(p.k8s.sign(t, k8sClaims(env, "agents", "summarizer")), "db:read:orders"); r.Status != 200 {
		t.Errorf("summarizer reads: %d %s", r.Status, r.Raw)
	}
	if r := mint(p.github.sign(t, githubClaims(env, "gh-docs-1")), "db:read:orders"); r.Status != 200 {
		t.Errorf("CI from main: %d %s", r.Status, r.Raw)
	}
	redeem := func(sub, scope string) dt.Response {
		c := idjagClaims(env, "portal", "jag-docs-"+sub)
		c["sub"] = sub
		c["resource"] = []string{"https://db.example", "https://mail.example"}
		return env.Post(t, "token_endpoint", "portal", url.Values{"grant_type": {oauth.GrantJWTBearer},
			"assertion": {p.idp.signTyp(t, "oauth-id-jag+jwt", c)}, "scope": {scope}})
	}
	if r := redeem("alice@acme.example", "mail:send"); r.Status != 200 {
		t.Errorf("alice sends mail: %d %s", r.Status, r.Raw)
	}
	r = redeem("mallory@elsewhere.example", "mail:send")
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "idjag-users-mail") {
		t.Errorf("mallory sends mail: %s", r.Raw)
	}
	if r := redeem("mallory@elsewhere.example", "db:read:orders"); r.Status != 200 {
		t.Errorf("mallory reads: %d %s", r.Status, r.Raw)
	}
}

// TestATrustedIssuerByJWKSURL: trusted_issuers take jwks_url now, fetched
// by the workload issuers' fetcher.
func TestATrustedIssuerByJWKSURL(t *testing.T) {
	p := newIdP(t)
	var hits atomic.Int32
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write(p.jwks)
	}))
	t.Cleanup(keys.Close)
	env := dt.New(t, dt.Options{Configure: func(cfg *server.Config, _ func(string, []byte) string) {
		cfg.TrustedIssuers = []server.TrustedIssuerConfig{{Issuer: idpIssuer, Audience: "mandate", KeySource: server.KeySource{JWKSURL: keys.URL + "/jwks"}}}
	}})
	for range 3 {
		r := env.Exchange(t, "orchestrator", p.sign(t, userToken(dt.Start.Add(time.Hour), nil)), "", url.Values{"subject_token_type": {oauth.TokenTypeJWT}})
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the JWKS was fetched %d times for three tokens, want once (cached)", n)
	}
}

// TestAnIssuerWhoseKeysCannotBeFetchedIsNamed: the refusal says the keys
// could not be fetched, so the operator looks at the fetch, not the token.
func TestAnIssuerWhoseKeysCannotBeFetchedIsNamed(t *testing.T) {
	k8s := dt.NewPlatform(t, k8sIssuer)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }))
	t.Cleanup(down.Close)
	env := dt.New(t, dt.Options{Configure: func(cfg *server.Config, _ func(string, []byte) string) {
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{{Issuer: k8sIssuer, KeySource: server.KeySource{JWKSURL: down.URL + "/jwks"},
			Rules: []server.WorkloadRuleConfig{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"}, Agent: "k8s/{kubernetes.io.serviceaccount.name}"}}}}
	}})
	r := bearerGrant(t, env, k8s.ServiceAccountToken(t, env.URL, "agents", "researcher", "j", env.Clock.Now()), nil)
	expectError(t, r, 400, oauth.CodeInvalidGrant)
	if !strings.Contains(r.String("error_description"), "keys could not be fetched") {
		t.Errorf("%s", r.Raw)
	}
}

// TestAVerifiedPlatformTokenIsKeptOnlyUntilItExpires: a platform token's
// verification is reused while it lives (it is shown at every request),
// never after.
func TestAVerifiedPlatformTokenIsKeptOnlyUntilItExpires(t *testing.T) {
	env, p := workloadEnv(t)
	c := k8sClaims(env, "agents", "researcher")
	c["exp"] = dt.Start.Add(2 * time.Minute).Unix()
	sa := p.k8s.sign(t, c)
	for range 2 {
		if r := bearerGrant(t, env, sa, nil); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	}
	env.Clock.Advance(3 * time.Minute)
	expectError(t, bearerGrant(t, env, sa, nil), 400, oauth.CodeInvalidGrant)
	expectError(t, asWorkload(t, env, sa, url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {env.URL}}), 401, oauth.CodeInvalidClient)
}

// TestAGeneratedIdentityHasItsOwnRateLimit: the rate-limit key of a
// generated identity is its own name (../shared/DESIGN.md): one workload
// spending its budget slows down only itself.
func TestAGeneratedIdentityHasItsOwnRateLimit(t *testing.T) {
	k8s := dt.NewPlatform(t, k8sIssuer)
	env := dt.New(t, dt.Options{RateLimit: httpapi.RateLimit{PerSecond: 1, Burst: 1}, Configure: func(cfg *server.Config, write func(string, []byte) string) {
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{{Issuer: k8sIssuer, KeySource: server.KeySource{JWKSFile: write("k8s.json", k8s.JWKS)},
			Rules: []server.WorkloadRuleConfig{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"}, Agent: "k8s/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*"}}}}}
	}})
	researcher := k8s.ServiceAccountToken(t, env.URL, "agents", "researcher", "r", env.Clock.Now())
	summarizer := k8s.ServiceAccountToken(t, env.URL, "agents", "summarizer", "s", env.Clock.Now())
	if r := bearerGrant(t, env, researcher, nil); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if r := bearerGrant(t, env, researcher, nil); r.Status != http.StatusTooManyRequests || r.Error() != "slow_down" {
		t.Errorf("the researcher over its budget: %d %s", r.Status, r.Raw)
	}
	if r := bearerGrant(t, env, summarizer, nil); r.Status != 200 {
		t.Errorf("the summarizer, on its own budget: %d %s", r.Status, r.Raw)
	}
}

// TestAGeneratedIdentityIsInItsRulesGroups: policy sees a generated
// identity in its rule's Cedar groups, like a registered client in its own.
func TestAGeneratedIdentityIsInItsRulesGroups(t *testing.T) {
	env, p := workloadEnv(t, policy.File{Name: "groups.cedar", Source: []byte(`
@id("all") permit (principal, action, resource);
@id("research-agents-no-own-writes") forbid (principal in Group::"research-agents", action == Action::"mint", resource)
  when { context.scope_patterns.contains("*:write:*") };`)})
	r := bearerGrant(t, env, p.k8s.sign(t, k8sClaims(env, "agents", "researcher")), url.Values{"scope": {"db:write:orders"}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "research-agents-no-own-writes") {
		t.Errorf("agents/researcher (group research-agents) writing: %s", r.Raw)
	}
	// Another namespace's rule names no group.
	if r := bearerGrant(t, env, p.k8s.sign(t, k8sClaims(env, "batch", "researcher")), url.Values{"scope": {"db:write:orders"}}); r.Status != 200 {
		t.Errorf("batch/researcher (no group) writing: %d %s", r.Status, r.Raw)
	}
}
