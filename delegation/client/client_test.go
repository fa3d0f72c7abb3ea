package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/client"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
)

const dbAudience = "https://db.example"

// connect makes a client for a registered test client, with a fresh key
// when bound.
func connect(t *testing.T, env *dt.Env, id string, bound bool) *client.Client {
	t.Helper()
	opts := []client.Option{client.WithClock(env.Clock.Now)}
	if bound {
		k, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, client.WithKey(k))
	}
	c, err := client.New(context.Background(), env.URL, id, dt.Secret(id), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// api is a resource server protected by a real Verifier following env's
// feed; it answers the holder's name and counts the requests it saw.
type api struct {
	URL  string
	V    *verifier.Verifier
	hits atomic.Int32
}

func newAPI(t *testing.T, env *dt.Env, nonce bool) *api {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	v, err := verifier.Discover(context.Background(), verifier.Config{
		Issuer: env.URL, Audience: dbAudience,
		ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"),
		Now: env.Clock.Now, DPoPNonce: nonce, PublicURL: "http://" + srv.Listener.Addr().String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	a := &api{V: v}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verifier.FromContext(r.Context())
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, c.Holder+string(b))
	})
	inner := v.Middleware(v.RequireScope("db:read:orders")(ok))
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		inner.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	a.URL = srv.URL + "/orders"
	return a
}

// call sends one request with t through client.Do.
func (a *api) call(t *testing.T, tok *client.Token, method, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+"?page=2", rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(http.DefaultClient, tok, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMintAndExchangeBindToTheClientsKey(t *testing.T) {
	env := dt.New(t, dt.Options{})
	ctx := context.Background()
	orch := connect(t, env, "orchestrator", true)
	root, err := orch.Mint(ctx, "db:read:* tools:search", dbAudience)
	if err != nil {
		t.Fatal(err)
	}
	if !root.Bound() || root.Key != orch.Key() || root.Scope != "db:read:* tools:search" {
		t.Fatalf("root: %+v", root)
	}
	if c := env.Claims(t, root.Value); c.Cnf == nil || c.Cnf.JKT != orch.Key().JKT() {
		t.Fatalf("root not bound to the client's key: %+v", c.Cnf)
	}
	if want := env.Clock.Now().Add(15 * 60e9); !root.ExpiresAt.Equal(want) {
		t.Errorf("expires %v, want %v (the injected clock)", root.ExpiresAt, want)
	}
	// Narrowing for itself keeps the token with the same key.
	narrow, err := orch.Exchange(ctx, root, client.ExchangeOptions{Scope: "db:read:orders"})
	if err != nil {
		t.Fatal(err)
	}
	if c := env.Claims(t, narrow.Value); !narrow.Bound() || narrow.Key != orch.Key() || c.Cnf.JKT != orch.Key().JKT() || c.Scope != "db:read:orders" {
		t.Fatalf("narrowed: %+v %+v", narrow, c)
	}
	// Naming itself as the actor is the same: the child stays, keyed.
	self, err := orch.Exchange(ctx, root, client.ExchangeOptions{Actor: root.Value, Scope: "tools:search"})
	if err != nil {
		t.Fatal(err)
	}
	if self.Key != orch.Key() || env.Claims(t, self.Value).Cnf.JKT != orch.Key().JKT() {
		t.Fatalf("self-named exchange: %+v", self)
	}
	// Without a key, the same calls give bearer tokens.
	plain := connect(t, env, "orchestrator", false)
	bearer, err := plain.Mint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if bearer.Bound() || bearer.Key != nil || env.Claims(t, bearer.Value).Cnf != nil {
		t.Fatalf("bearer: %+v", bearer)
	}
}

// TestTheWholeChainRunsOnBoundTokens: orchestrator → researcher → db-agent,
// each holding its own key, and the db-agent's call verified at a resource
// server; the same token in other hands gets nowhere.
func TestTheWholeChainRunsOnBoundTokens(t *testing.T) {
	env := dt.New(t, dt.Options{})
	a := newAPI(t, env, false)
	ctx := context.Background()
	orch, res, dba := connect(t, env, "orchestrator", true), connect(t, env, "researcher", true), connect(t, env, "db-agent", true)

	root, err := orch.Mint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	resID, err := res.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	child, err := orch.Exchange(ctx, root, client.ExchangeOptions{Actor: resID.Value, Scope: "db:read:*"})
	if err != nil {
		t.Fatal(err)
	}
	if child.Key != nil {
		t.Fatal("a token handed to another holder must not carry the giver's key")
	}
	dbaID, err := dba.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	grand, err := res.Exchange(ctx, res.Adopt(child.Value), client.ExchangeOptions{Actor: dbaID.Value, Scope: "db:read:orders", Audiences: []string{dbAudience}})
	if err != nil {
		t.Fatal(err)
	}
	mine := dba.Adopt(grand.Value)
	if c := env.Claims(t, mine.Value); c.Cnf.JKT != dba.Key().JKT() || c.ClientID != "db-agent" {
		t.Fatalf("grandchild: %+v", c)
	}
	if code, body := a.call(t, mine, http.MethodGet, ""); code != 200 || body != "db-agent" {
		t.Fatalf("the holder's call: %d %q", code, body)
	}

	// The researcher cannot use the grandchild, nor exchange the child with
	// the orchestrator's proof or its own token's holder changed.
	if code, _ := a.call(t, res.Adopt(grand.Value), http.MethodGet, ""); code != 401 {
		t.Errorf("another key at the resource server: %d", code)
	}
	stolen := &client.Token{Value: grand.Value, Type: "Bearer"}
	if code, _ := a.call(t, stolen, http.MethodGet, ""); code != 401 {
		t.Errorf("sent as Bearer: %d", code)
	}
	// The researcher's credentials with another key cannot exchange the
	// researcher's token: the secret alone is not enough.
	impostor := connect(t, env, "researcher", true)
	_, err = impostor.Exchange(ctx, impostor.Adopt(child.Value), client.ExchangeOptions{Scope: "db:read:orders"})
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidDPoPProof {
		t.Errorf("exchanging with the wrong key: %v", err)
	}
	// Without a key there is nothing to prove with.
	if _, err := a.call2(client.Do(http.DefaultClient, &client.Token{Value: grand.Value, Type: "DPoP"}, mustReq(t, a.URL))); err == nil || !strings.Contains(err.Error(), "key is not here") {
		t.Errorf("bound token without its key: %v", err)
	}
}

func (a *api) call2(resp *http.Response, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func mustReq(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestAnEphemeralAgentHoldsItsToken: an agent with no registration gets a
// token held by its name in the orchestrator's namespace and bound to a key
// only it has.
func TestAnEphemeralAgentHoldsItsToken(t *testing.T) {
	env := dt.New(t, dt.Options{})
	a := newAPI(t, env, false)
	ctx := context.Background()
	orch := connect(t, env, "orchestrator", true)
	root, err := orch.Mint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := orch.SpawnAgent("researcher-7f3a")
	if err != nil {
		t.Fatal(err)
	}
	if agent.Name != "orchestrator/researcher-7f3a" {
		t.Fatalf("name %q", agent.Name)
	}
	tok, err := orch.DelegateToAgent(ctx, root, agent, "db:read:orders", dbAudience)
	if err != nil {
		t.Fatal(err)
	}
	c := env.Claims(t, tok.Value)
	if c.ClientID != agent.Name || c.Cnf == nil || c.Cnf.JKT != agent.Key.JKT() || tok.Key != agent.Key {
		t.Fatalf("agent token: holder %q cnf %+v", c.ClientID, c.Cnf)
	}
	// The agent, elsewhere, received the name, the key and the token string.
	if code, body := a.call(t, agent.Adopt(tok.Value), http.MethodGet, ""); code != 200 || body != agent.Name {
		t.Fatalf("agent's call: %d %q", code, body)
	}
	// The orchestrator itself cannot use what it delegated.
	if code, _ := a.call(t, orch.Adopt(tok.Value), http.MethodGet, ""); code != 401 {
		t.Errorf("the orchestrator's key on the agent's token: %d", code)
	}
	// Beyond what the orchestrator may give ephemeral agents: refused.
	_, err = orch.DelegateToAgent(ctx, root, agent, "db:write:orders", dbAudience)
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidScope {
		t.Errorf("write scope to an ephemeral agent: %v", err)
	}
	// Revoking the root ends the agent's token.
	if err := orch.Revoke(ctx, root.Value); err != nil {
		t.Fatal(err)
	}
	_, err = orch.Exchange(ctx, agent.Adopt(tok.Value), client.ExchangeOptions{})
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidRequest || !strings.Contains(oe.Description, "revoked") {
		t.Errorf("after revoking the root: %v", err)
	}
}

// TestDoAnswersANonceChallengeOnce: against a server that requires nonces,
// Do retries once with the nonce, body and all.
func TestDoAnswersANonceChallengeOnce(t *testing.T) {
	env := dt.New(t, dt.Options{})
	a := newAPI(t, env, true)
	ctx := context.Background()
	dba := connect(t, env, "db-agent", true)
	tok, err := dba.Mint(ctx, "db:read:orders", dbAudience)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := a.call(t, tok, http.MethodPost, `{"q":1}`); code != 200 || body != `db-agent{"q":1}` {
		t.Fatalf("POST with nonce: %d %q", code, body)
	}
	if n := a.hits.Load(); n != 2 {
		t.Errorf("%d requests, want the challenge and one retry", n)
	}
	// A body that cannot be replayed is an error, not a silent empty retry.
	req, _ := http.NewRequest(http.MethodPost, a.URL, io.NopCloser(strings.NewReader("x")))
	if _, err := client.Do(http.DefaultClient, tok, req); err == nil || !strings.Contains(err.Error(), "resend") {
		t.Errorf("unreplayable body: %v", err)
	}
	// A bearer token is not retried.
	plain := connect(t, env, "db-agent", false)
	btok, err := plain.Mint(ctx, "db:read:orders", dbAudience)
	if err != nil {
		t.Fatal(err)
	}
	before := a.hits.Load()
	if code, _ := a.call(t, btok, http.MethodGet, ""); code != 200 || a.hits.Load() != before+1 {
		t.Errorf("bearer: %d after %d requests", code, a.hits.Load()-before)
	}
}

// TestRefusalsAreOAuthErrorsWithoutSecrets: the server's refusals come back
// typed, and never repeat the secret or a token.
func TestRefusalsAreOAuthErrorsWithoutSecrets(t *testing.T) {
	env := dt.New(t, dt.Options{})
	ctx := context.Background()
	wrong, err := client.New(ctx, env.URL, "orchestrator", "not-the-secret")
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Mint(ctx, "")
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidClient || oe.Status != 401 || strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("wrong secret: %v", err)
	}
	orch := connect(t, env, "orchestrator", true)
	root, err := orch.Mint(ctx, "db:read:*")
	if err != nil {
		t.Fatal(err)
	}
	_, err = orch.Exchange(ctx, root, client.ExchangeOptions{Scope: "db:write:orders"})
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidScope || strings.Contains(err.Error(), root.Value) {
		t.Errorf("widening: %v", err)
	}
	// Discovery checks the issuer it was told against the metadata.
	if _, err := client.New(ctx, env.URL+"/", "orchestrator", "x"); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("issuer mismatch: %v", err)
	}
	if _, err := client.New(ctx, "http://127.0.0.1:1", "orchestrator", "x"); err == nil {
		t.Error("discovery against nothing succeeded")
	}
}

// TestDoDoesNotFollowRedirects: a redirect must not carry the token and a
// proof to wherever the server points.
func TestDoDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("DPoP") != "" {
			leaked.Add(1)
		}
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/x", http.StatusFound))
	t.Cleanup(redirector.Close)
	key, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	for _, tok := range []*client.Token{{Value: "a.b.c", Type: "Bearer"}, {Value: "a.b.c", Type: "DPoP", Key: key}} {
		resp, err := client.Do(http.DefaultClient, tok, mustReq(t, redirector.URL))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || leaked.Load() != 0 {
			t.Errorf("%s: status %d, %d requests with credentials elsewhere", tok.Type, resp.StatusCode, leaked.Load())
		}
	}
	if http.DefaultClient.CheckRedirect != nil {
		t.Error("Do changed the caller's client")
	}
}

// TestExchangeForDownstream: an MCP server registered with serves gets its
// own token for the API behind it from the token a caller sent it, bound to
// its own key, without the caller's key; the API sees the caller's subject
// and the MCP server as the holder; the caller's token is never forwarded.
func TestExchangeForDownstream(t *testing.T) {
	const toolsAudience = "https://tools.example" // what the MCP server serves
	clients := append(dt.DefaultClients(), dt.Client{ID: "mcp-tools", Grants: []string{delegation.GrantNameTokenExchange},
		Serves: []string{toolsAudience}, Scopes: []string{"db:read:*"}, Audiences: []string{dbAudience}})
	env := dt.New(t, dt.Options{Clients: clients})
	a := newAPI(t, env, false)
	ctx := context.Background()
	orch, res, mcp := connect(t, env, "orchestrator", true), connect(t, env, "researcher", true), connect(t, env, "mcp-tools", true)

	root, err := orch.Mint(ctx, "db:read:* tools:search", toolsAudience)
	if err != nil {
		t.Fatal(err)
	}
	resID, err := res.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task, err := orch.Exchange(ctx, root, client.ExchangeOptions{Actor: resID.Value})
	if err != nil {
		t.Fatal(err)
	}
	// The researcher calls the MCP server with its bound token; the MCP
	// server has only the token string (and checked the proof on the way in).
	received := res.Adopt(task.Value).Value
	down, err := mcp.ExchangeForDownstream(ctx, received, dbAudience, "db:read:orders")
	if err != nil {
		t.Fatal(err)
	}
	c := env.Claims(t, down.Value)
	if !down.Bound() || down.Key != mcp.Key() || c.Cnf.JKT != mcp.Key().JKT() || c.Subject != "orchestrator" ||
		c.ClientID != "mcp-tools" || !reflect.DeepEqual(c.Act.Path(), []string{"mcp-tools", "researcher"}) || len(c.Lineage) != 2 {
		t.Fatalf("downstream token %+v: %+v", down, c)
	}
	if code, body := a.call(t, down, http.MethodGet, ""); code != 200 || body != "mcp-tools" {
		t.Fatalf("the MCP server's call downstream: %d %q", code, body)
	}
	// Forwarding the caller's token instead gets nowhere: it is not for the API.
	if code, _ := a.call(t, res.Adopt(task.Value), http.MethodGet, ""); code != 401 {
		t.Errorf("the forwarded token: %d", code)
	}

	// Without a key the MCP server cannot take a bound token's child (it
	// would have to be bound); a bearer one it can.
	plain := connect(t, env, "mcp-tools", false)
	var oe *oauth.Error
	if _, err := plain.ExchangeForDownstream(ctx, received, dbAudience, ""); !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidDPoPProof {
		t.Errorf("a bound token without a key: %v", err)
	}
	bearerRoot, err := connect(t, env, "researcher", false).Mint(ctx, "", toolsAudience)
	if err != nil {
		t.Fatal(err)
	}
	if down, err := plain.ExchangeForDownstream(ctx, bearerRoot.Value, dbAudience, ""); err != nil || down.Bound() || down.Scope != "db:read:*" {
		t.Errorf("a bearer token: %+v, %v", down, err)
	}
	// Beyond its registration, and without naming the API: refused.
	if _, err := mcp.ExchangeForDownstream(ctx, received, "https://mail.example", ""); !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidTarget {
		t.Errorf("an audience it is not registered for: %v", err)
	}
	if _, err := mcp.ExchangeForDownstream(ctx, received, "", ""); err == nil || !strings.Contains(err.Error(), "names the downstream API") {
		t.Errorf("no audience: %v", err)
	}
	// A client that does not serve the token's audience is refused as before.
	if _, err := connect(t, env, "outsider", true).ExchangeForDownstream(ctx, received, dbAudience, ""); !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidRequest {
		t.Errorf("a client that serves nothing: %v", err)
	}
}
