package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/client"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
)

const k8sIssuer = "https://kubernetes.default.svc.cluster.local"

// workloadEnv is a Mandate trusting a Kubernetes cluster's service-account
// tokens (namespace agents → k8s/agents/<name>) and an enterprise IdP's
// ID-JAGs, with a client ("portal") that redeems them.
func workloadEnv(t *testing.T) (*dt.Env, *dt.Platform, *dt.Platform) {
	t.Helper()
	k8s, idp := dt.NewPlatform(t, k8sIssuer), dt.NewPlatform(t, "https://login.acme.example")
	clients := append(dt.DefaultClients(), dt.Client{ID: "portal", Grants: []string{delegation.GrantNameJWTBearer, delegation.GrantNameTokenExchange},
		Scopes: []string{"db:read:*"}, Audiences: []string{dbAudience}})
	env := dt.New(t, dt.Options{Clients: clients, Configure: func(cfg *server.Config, write func(string, []byte) string) {
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{{Issuer: k8sIssuer, KeySource: server.KeySource{JWKSFile: write("k8s.json", k8s.JWKS)},
			Rules: []server.WorkloadRuleConfig{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"},
				Agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*"}, Audiences: []string{dbAudience}}}}}
		cfg.IDJAGIssuers = []server.IDJAGIssuerConfig{{Issuer: idp.Issuer, KeySource: server.KeySource{JWKSFile: write("idp.json", idp.JWKS)}}}
	}})
	return env, k8s, idp
}

func TestWorkloadClientHasNoSecret(t *testing.T) {
	env, k8s, _ := workloadEnv(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "token")
	rotate := func(name string) {
		if err := os.WriteFile(path, []byte(k8s.ServiceAccountToken(t, env.URL, "agents", name, "jti-"+name, env.Clock.Now())+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rotate("researcher")
	key, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	c, err := client.NewWorkload(ctx, env.URL, client.TokenFile(path), client.WithClock(env.Clock.Now), client.WithKey(key))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != "" {
		t.Errorf("ID before any token: %q", c.ID())
	}
	root, err := c.Mint(ctx, "db:read:orders")
	if err != nil {
		t.Fatal(err)
	}
	if claims := env.Claims(t, root.Value); claims.Subject != "k8s/agents/researcher" || !root.Bound() || c.ID() != "k8s/agents/researcher" {
		t.Errorf("root sub %q bound %v id %q", claims.Subject, root.Bound(), c.ID())
	}
	// Its own exchange authenticates with the platform token.
	child, err := c.Exchange(ctx, root, client.ExchangeOptions{Scope: "db:read:orders"})
	if err != nil {
		t.Fatal(err)
	}
	if claims := env.Claims(t, child.Value); claims.ClientID != "k8s/agents/researcher" || len(claims.Lineage) != 1 {
		t.Errorf("child %+v", claims)
	}
	// The orchestrator delegates to it by its identity token.
	id, err := c.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orch := connect(t, env, "orchestrator", false)
	task, err := orch.Mint(ctx, "db:read:*", dbAudience)
	if err != nil {
		t.Fatal(err)
	}
	given, err := orch.Exchange(ctx, task, client.ExchangeOptions{Actor: id.Value, Scope: "db:read:orders"})
	if err != nil {
		t.Fatal(err)
	}
	if claims := env.Claims(t, given.Value); claims.ClientID != "k8s/agents/researcher" || claims.Cnf == nil {
		t.Errorf("delegated %+v", claims)
	}
	if err := c.Revoke(ctx, root.Value); err != nil {
		t.Fatal(err)
	}
	// The platform rotates the token: the next request reads the new one.
	rotate("summarizer")
	root2, err := c.Mint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if claims := env.Claims(t, root2.Value); claims.Subject != "k8s/agents/summarizer" || c.ID() != "k8s/agents/summarizer" {
		t.Errorf("after rotation: sub %q, ID %q", claims.Subject, c.ID())
	}
	// A refusal is the server's OAuth error; the token is never in it.
	if err := os.WriteFile(path, []byte(k8s.ServiceAccountToken(t, "https://elsewhere.example", "agents", "x", "j", env.Clock.Now())), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.Mint(ctx, "")
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidGrant {
		t.Errorf("mint with a token for another audience: %v", err)
	}
	if raw, _ := os.ReadFile(path); strings.Contains(err.Error(), string(raw)) {
		t.Error("the error holds the platform token")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mint(ctx, ""); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a missing token file: %v", err)
	}
}

func TestRedeemIDJAG(t *testing.T) {
	env, _, idp := workloadEnv(t)
	ctx := context.Background()
	portal := connect(t, env, "portal", false)
	now := env.Clock.Now()
	jag := idp.Sign(t, "oauth-id-jag+jwt", map[string]any{
		"iss": idp.Issuer, "sub": "alice@acme.example", "aud": env.URL, "client_id": "portal", "jti": "jag-1",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "scope": "db:read:orders",
	})
	root, err := portal.RedeemIDJAG(ctx, jag, "")
	if err != nil {
		t.Fatal(err)
	}
	if c := env.Claims(t, root.Value); c.Subject != "alice@acme.example" || c.SubjectIssuer != idp.Issuer || c.ClientID != "portal" || c.Scope != "db:read:orders" {
		t.Errorf("root %+v", c)
	}
	var oe *oauth.Error
	if _, err := portal.RedeemIDJAG(ctx, jag, ""); !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidGrant {
		t.Errorf("replayed ID-JAG: %v", err)
	}
}

// TestCredentialsNeverFollowARedirect: a token endpoint answering 307 to
// another host gets its answer taken as a refusal; the platform token is
// never re-posted there. Metadata naming endpoints on another origin is
// refused at discovery.
func TestCredentialsNeverFollowARedirect(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked.Add(1) }))
	t.Cleanup(elsewhere.Close)
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-authorization-server" {
			fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q,"revocation_endpoint":%q}`, issuer, issuer+"/oauth2/token", issuer+"/oauth2/revoke")
			return
		}
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	c, err := client.NewWorkload(context.Background(), issuer, func() (string, error) { return "platform.token.value", nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mint(context.Background(), ""); err == nil || strings.Contains(err.Error(), "platform.token.value") {
		t.Errorf("a redirected mint: %v", err)
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q,"revocation_endpoint":%q}`, "http://"+r.Host, elsewhere.URL+"/token", elsewhere.URL+"/revoke")
	}))
	t.Cleanup(other.Close)
	if _, err := client.New(context.Background(), other.URL, "a", "s"); err == nil || !strings.Contains(err.Error(), "not on the issuer's origin") {
		t.Errorf("endpoints on another origin: %v", err)
	}
}
