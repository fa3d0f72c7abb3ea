package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/chain/authz"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/client"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

func newDemoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Tell Mandate's story end to end on a throw-away store",
		Long: `Start Mandate on a temporary store, register an orchestrator, two sub-agents
and a protected API, then walk a task through minting, two delegations, a
refused widening, an API call, an ephemeral agent, a pod with no secret (its
Kubernetes service-account token is its identity), revocation of the root,
and the refusals that follow. Nothing is left behind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), bcrypt.DefaultCost)
		},
	}
}

// demoAgent is a client the demo registers, with the secret only it knows.
type demoAgent struct {
	id, secret, role     string
	scopes, auds, groups []string
	ephemeral            *server.EphemeralConfig
	c                    *client.Client // its Mandate client, with its own DPoP key
}

// demoPolicies is the demo's Cedar policy set (also at testdata/policies):
// token policies at the top, the orders API's call policy in api/.
//
//go:embed policies
var demoPolicies embed.FS

// writeDemoPolicies copies the embedded policies into dir/policies, where the
// server's policy engine loads them like any policy directory.
func writeDemoPolicies(dir string) (string, error) {
	root := filepath.Join(dir, "policies")
	err := fs.WalkDir(demoPolicies, "policies", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if e.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := demoPolicies.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	return root, err
}

const (
	ordersAud   = "https://orders.example"
	searchAud   = "https://search.example"
	ordersScope = "db:read:orders"
)

// runDemo tells the story on out; bcryptCost hashes the demo clients' secrets
// (tests lower it to keep the race detector fast).
func runDemo(ctx context.Context, out io.Writer, bcryptCost int) error {
	dir, err := os.MkdirTemp("", "mandate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	agents := []*demoAgent{
		{id: "orchestrator", scopes: []string{"db:read:*", "db:write:*", "tools:*"}, auds: []string{ordersAud, searchAud}, groups: []string{"orchestrators"},
			ephemeral: &server.EphemeralConfig{Scopes: []string{"db:read:*"}, Audiences: []string{ordersAud}, Groups: []string{"research-agents"}}},
		{id: "researcher", scopes: []string{"db:read:*", "tools:search"}, auds: []string{ordersAud, searchAud}, groups: []string{"research-agents"}},
		{id: "db-agent", scopes: []string{"db:read:*", "tools:search"}, auds: []string{ordersAud}},
		{id: "orders-api", role: "resource_server"},
	}
	policyDir, err := writeDemoPolicies(dir)
	if err != nil {
		return err
	}
	cfg := &server.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Signing: server.SigningConfig{Alg: tokens.AlgEdDSA},
		Tokens: server.TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: 4, Retention: 24 * time.Hour},
		Policy: server.PolicyConfig{Dir: policyDir}, Audit: server.AuditConfig{Retention: 24 * time.Hour},
	}
	for _, a := range agents {
		a.secret, err = randomSecret()
		if err != nil {
			return err
		}
		h, err := bcrypt.GenerateFromPassword([]byte(a.secret), bcryptCost)
		if err != nil {
			return err
		}
		cc := server.ClientConfig{ID: a.id, SecretHash: string(h), Scopes: a.scopes, Audiences: a.auds, Groups: a.groups, Role: a.role, Ephemeral: a.ephemeral}
		if a.role == "" {
			cc.Grants = []string{"client_credentials", "token_exchange"}
		}
		cfg.Clients = append(cfg.Clients, cc)
	}
	// The cluster a pod of the story runs in: its API server signs the
	// pod's service-account token; Mandate trusts its JWKS (a stand-in key
	// made here, as a real cluster publishes at /openid/v1/jwks).
	cluster, err := newDemoCluster(dir)
	if err != nil {
		return err
	}
	cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{{
		Issuer: cluster.issuer, KeySource: server.KeySource{JWKSFile: cluster.jwksFile},
		Rules: []server.WorkloadRuleConfig{{
			Match:  map[string]string{"sub": "system:serviceaccount:agents:*"},
			Agent:  "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}",
			Scopes: []string{"db:read:*"}, Audiences: []string{ordersAud}, Groups: []string{"research-agents"},
		}},
	}}
	if _, err := cfg.Validate(""); err != nil {
		return err
	}
	srv, err := server.Start(cfg, server.Options{})
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())

	d := &demo{out: out, base: srv.URL, agents: map[string]*demoAgent{}, store: srv.Store, start: time.Now(), policyLines: policySummary(srv.Policy.Current()),
		cluster: cluster, dir: dir}
	for _, a := range agents {
		d.agents[a.id] = a
		if a.role != "" {
			continue
		}
		key, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
		if err != nil {
			return err
		}
		if a.c, err = client.New(ctx, srv.URL, a.id, a.secret, client.WithKey(key)); err != nil {
			return err
		}
	}
	self := d.agents["orders-api"]
	ordersMetadata.AuthorizationServers = []string{srv.URL}
	callPolicy, err := policy.LoadDir(filepath.Join(policyDir, "api"))
	if err != nil {
		return err
	}
	d.feedSyncs = make(chan struct{}, 1)
	api := httptest.NewUnstartedServer(nil)
	v, err := verifier.Discover(ctx, verifier.Config{
		Issuer: srv.URL, Audience: ordersAud, ClientID: self.id, ClientSecret: self.secret,
		Realm: "orders", ResourceMetadataURL: ordersMetadata.URL(),
		PublicURL: "http://" + api.Listener.Addr().String(), // what DPoP proofs' htu must name
		OnSync: func(error) {
			select {
			case d.feedSyncs <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	defer v.Close()
	d.verifier = v
	az, err := authz.New(v, callPolicy, nil)
	if err != nil {
		return err
	}
	api.Config.Handler = ordersAPI(v, az)
	api.Start()
	defer api.Close()
	return d.run(ctx, api.URL, srv.Keys.CurrentAlg(), srv.Keys.CurrentKeyID())
}

// ordersMetadata is the orders API's RFC 9728 document: it names Mandate as
// the authorization server, which is how an MCP client would find it.
var ordersMetadata = verifier.ResourceMetadata{Resource: ordersAud, ScopesSupported: []string{ordersScope}}

type demo struct {
	out    io.Writer
	base   string
	agents map[string]*demoAgent
	store  delegation.Inspector
	start  time.Time
	names  map[string]string // jti → a friendly name for the printout

	cluster *demoCluster // the Kubernetes cluster the pod agent runs in
	dir     string       // the demo's temporary directory

	verifier    *verifier.Verifier
	feedSyncs   chan struct{} // a tick per revocation-feed round trip
	policyLines []string      // "file.cedar: id, id"
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) step(n int, title string) { d.say("\n%d. %s", n, title) }

func (d *demo) run(ctx context.Context, apiURL, alg, kid string) error {
	d.names = map[string]string{}
	orch, res, dba := d.agents["orchestrator"].c, d.agents["researcher"].c, d.agents["db-agent"].c
	d.say("Mandate demo — delegation tokens for multi-agent AI systems")
	d.say("============================================================")
	d.say("Mandate is serving at %s on a throw-away store.", d.base)
	d.say("It signs every token with %s (key id %s…) and publishes the key at /.well-known/jwks.json.", alg, kid[:12])
	d.say("Cedar policies decide every token request (the set is in testdata/policies):")
	for _, line := range d.policyLines {
		d.say("  %s", line)
	}
	d.say("\nThe cast (each client's registered scopes and audiences are the most it can ever hold):")
	for _, id := range []string{"orchestrator", "researcher", "db-agent"} {
		a := d.agents[id]
		d.say("  %-13s scopes %-33s audiences %s", a.id, strings.Join(a.scopes, " "), strings.Join(a.auds, " "))
	}
	d.say("  %-13s a resource server (the orders API); it reads the revocation feed", "orders-api")
	d.say("Each agent talks to Mandate with delegation/client and holds a fresh Ed25519 DPoP key (RFC 9449):")
	d.say("every token it gets is bound to that key (cnf.jkt), so the token is useless to anyone else.")

	d.step(1, "The orchestrator starts a task: client_credentials gives it a root token.")
	root, err := orch.Mint(ctx, "")
	if err != nil {
		return err
	}
	d.show(root, "root")

	d.step(2, "Each sub-agent proves who it is with an identity token (client_credentials with audience = Mandate's")
	d.say("   issuer): no scope, Mandate's audience alone, five minutes. Handed over as actor_token, it names the next")
	d.say("   holder and gives whoever holds it nothing: every API refuses it (wrong audience).")
	resID, err := res.Identity(ctx)
	if err != nil {
		return err
	}
	dbaID, err := dba.Identity(ctx)
	if err != nil {
		return err
	}
	d.say("   researcher, db-agent: granted.")
	if _, err := dba.Mint(ctx, ""); err != nil {
		d.say("   db-agent, asking for a root with all it is registered for (db:read:* tools:search): refused → %s", refusal(err))
	} else {
		return fmt.Errorf("demo: the db-agent's policy did not hold")
	}
	d.say("   Policy holds where registration alone would not: the db-agent only ever holds database reads.")

	d.step(3, "The orchestrator delegates to the researcher (RFC 8693 token exchange), narrowing to \"db:read:*\".")
	d.say("   (Policy lets orchestrators hand research agents read scopes and nothing else. The root is bound,")
	d.say("   so the exchange carries a DPoP proof of the orchestrator's key; the child is bound to the researcher's.)")
	child, err := orch.Exchange(ctx, root, client.ExchangeOptions{Actor: resID.Value, Scope: "db:read:*"})
	if err != nil {
		return err
	}
	d.show(child, "child")

	d.step(4, "The researcher delegates to the db-agent, narrowing again to \""+ordersScope+"\" for "+ordersAud+".")
	grand, err := res.Exchange(ctx, res.Adopt(child.Value), client.ExchangeOptions{Actor: dbaID.Value, Scope: ordersScope, Audiences: []string{ordersAud}})
	if err != nil {
		return err
	}
	d.show(grand, "grandchild")
	mine := dba.Adopt(grand.Value) // the db-agent receives the token and uses it with its key

	d.step(5, "Attenuation holds: the db-agent tries to widen its token to db:write:orders.")
	if _, err := dba.Exchange(ctx, mine, client.ExchangeOptions{Scope: "db:write:orders"}); err != nil {
		d.say("   refused → %s", refusal(err))
	} else {
		return fmt.Errorf("demo: widening was not refused")
	}

	d.step(6, "The db-agent calls the orders API with its token and a DPoP proof of its key for this very request.")
	d.say("   The API checks it locally with Mandate's verifier: signature against the published key,")
	d.say("   audience, expiry, the act chain and lineage, the proof (method, URL, age, token hash, replay)")
	d.say("   against cnf.jkt, and a revocation set it keeps current by long-polling Mandate's revocation feed;")
	d.say("   then its own Cedar policy decides whether this chain may read Table::\"orders\". No call to")
	d.say("   Mandate per request.")
	status, body := d.callAPI(apiURL, mine)
	d.say("   GET /orders → %d %s", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("demo: the API refused a live token")
	}

	d.step(7, "The db-agent's token leaks (a log line, a prompt injection). The thief has the token, not the key.")
	thiefKey, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
	if err != nil {
		return err
	}
	status, body = d.callAPI(apiURL, &client.Token{Value: grand.Value, Type: "Bearer"})
	d.say("   as a Bearer token               → %d %s", status, body)
	if status != http.StatusUnauthorized {
		return fmt.Errorf("demo: a bound token was accepted as Bearer")
	}
	status, body = d.callAPI(apiURL, &client.Token{Value: grand.Value, Type: "DPoP", Key: thiefKey})
	d.say("   with a proof of the thief's key → %d %s", status, body)
	if status != http.StatusUnauthorized {
		return fmt.Errorf("demo: a bound token was accepted with another key")
	}
	a := d.agents["db-agent"]
	thief, err := client.New(ctx, d.base, a.id, a.secret, client.WithKey(thiefKey))
	if err != nil {
		return err
	}
	if _, err := thief.Exchange(ctx, thief.Adopt(grand.Value), client.ExchangeOptions{Scope: ordersScope}); err != nil {
		d.say("   exchanged at Mandate, even with the db-agent's client secret → %s", refusal(err))
	} else {
		return fmt.Errorf("demo: a stolen bound token was exchanged")
	}

	d.step(8, "The orchestrator spawns a short-lived agent with no registration: a fresh key pair is its identity.")
	var suffix [2]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	agent, err := orch.SpawnAgent(fmt.Sprintf("summarizer-%x", suffix))
	if err != nil {
		return err
	}
	d.say("   Its actor_token is a JWT it signs itself (typ agent+jwt, its public key in the header), named")
	d.say("   %s: inside the orchestrator's namespace, within the ceiling configured for its", agent.Name)
	d.say("   ephemeral agents (db:read:* for %s, group research-agents), and subject to policy.", ordersAud)
	eph, err := orch.DelegateToAgent(ctx, root, agent, ordersScope, ordersAud)
	if err != nil {
		return err
	}
	d.show(eph, "ephemeral")
	agentTok := agent.Adopt(eph.Value) // what the agent receives, with the key only it holds
	status, body = d.callAPI(apiURL, agentTok)
	d.say("   GET /orders → %d %s", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("demo: the API refused the ephemeral agent")
	}

	d.step(9, "A pod joins with no secret at all: its Kubernetes service-account token is its identity.")
	podTok, err := d.podAgent(ctx, orch, root, apiURL)
	if err != nil {
		return err
	}

	d.step(10, "The task is over: the orchestrator revokes the root token (RFC 7009).")
	if err := orch.Revoke(ctx, root.Value); err != nil {
		return err
	}
	revokedAt := time.Now()
	d.say("   POST /oauth2/revoke → 200. One revocation record, whatever the size of the task's tree:")
	d.say("   every descendant carries the root's jti in its lineage, so it is refused wherever it is shown.")
	if err := d.awaitFeed(jtiOf(root.Value)); err != nil {
		return err
	}
	d.say("   The API's verifier learned it from the revocation feed %s after the revoke returned.",
		time.Since(revokedAt).Round(10*time.Microsecond))

	d.step(11, "Everything delegated from the root is now refused.")
	for _, call := range []struct {
		who string
		tok *client.Token
	}{{"db-agent", mine}, {"summarizer", agentTok}, {"pod", podTok}} {
		status, body = d.callAPI(apiURL, call.tok)
		d.say("   %-10s GET /orders        → %d %s", call.who, status, body)
		if status != http.StatusUnauthorized {
			return fmt.Errorf("demo: the API accepted a revoked chain")
		}
	}
	if _, err := res.Exchange(ctx, res.Adopt(child.Value), client.ExchangeOptions{Actor: dbaID.Value}); err != nil {
		d.say("   researcher delegates again    → %s", refusal(err))
	} else {
		return fmt.Errorf("demo: a revoked chain was exchanged")
	}

	d.step(12, "The task's lineage, as an operator sees it (`mandate lineage JTI`):")
	l, err := delegation.LineageOf(ctx, d.store, jtiOf(root.Value), time.Now())
	if err != nil {
		return err
	}
	renderLineageTree(d.out, l)
	d.say("   (An operator ends a task with `mandate revoke --root JTI --reason ...`; every decision above is in")
	d.say("   the hash-chained audit trail: `mandate audit tail`, `mandate audit verify`.)")
	d.say("\nThat is the whole story: narrow at every hop, bind each token to its holder's key, record who acts")
	d.say("for whom, end it all with one revocation.")
	d.say("Run the tests with: go test -race ./...")
	return nil
}

// refusal prints a token endpoint's refusal as "400 invalid_scope: ...".
func refusal(err error) string {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return fmt.Sprintf("%d %v", oe.Status, err)
	}
	return err.Error()
}

// show prints a token's decoded claims and remembers its name for the tree.
func (d *demo) show(t *client.Token, name string) {
	c, _ := jwt.Unverified(t.Value)
	d.names[c.ID] = name
	d.say("   ← %s token (%d bytes, token_type %s), decoded:", name, len(t.Value), t.Type)
	d.say("      jti      %s", c.ID)
	d.say("      sub      %-24s on whose behalf the work is done; never changes", c.Subject)
	d.say("      holder   %-24s client_id: who may present or exchange it", c.ClientID)
	d.say("      scope    %s", c.Scope)
	d.say("      aud      %s", strings.Join(c.Audience, " "))
	d.say("      expires  in %s", c.Expiry.Time().Sub(d.start).Round(time.Minute))
	if c.Act == nil {
		d.say("      act      —                        no one acts for the subject: a root")
	} else {
		d.say("      act      %-24s actor chain, current holder first", strings.Join(c.Act.Path(), " ← "))
	}
	if len(c.Lineage) == 0 {
		d.say("      lineage  []                       depth 0")
	} else {
		var names []string
		for _, j := range c.Lineage {
			names = append(names, d.names[j])
		}
		d.say("      lineage  %-24s depth %d (ancestor jtis, root first)", strings.Join(names, " → "), len(c.Lineage))
	}
	if c.Cnf != nil {
		d.say("      cnf.jkt  %-24s the holder's key thumbprint (RFC 7638): use needs that key", c.Cnf.JKT[:12]+"…")
	}
}

// callAPI calls the protected API as an agent does (delegation/client's Do);
// a refusal is summarised as "error: description" (the same is in its
// WWW-Authenticate challenge).
func (d *demo) callAPI(apiURL string, t *client.Token) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/orders", nil)
	resp, err := client.Do(http.DefaultClient, t, req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var refusal struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if resp.StatusCode != http.StatusOK && json.Unmarshal(raw, &refusal) == nil && refusal.Error != "" {
		return resp.StatusCode, refusal.Error + ": " + refusal.Description
	}
	return resp.StatusCode, strings.TrimSpace(string(raw))
}

// policySummary lists a policy set's ids by file, for the printout.
func policySummary(set *policy.Set) []string {
	byFile := map[string][]string{}
	var files []string
	for _, id := range set.IDs() {
		f, _, _ := strings.Cut(filepath.Base(set.Position(id)), ":")
		if byFile[f] == nil {
			files = append(files, f)
		}
		byFile[f] = append(byFile[f], id)
	}
	sort.Strings(files)
	lines := make([]string, len(files))
	for i, f := range files {
		lines[i] = fmt.Sprintf("%-17s %s", f+":", strings.Join(byFile[f], ", "))
	}
	return lines
}

// awaitFeed waits until the API's verifier has the revocation of jti, which
// its long poll brings within milliseconds; the bound only stops a broken
// build from hanging.
func (d *demo) awaitFeed(jti string) error {
	deadline := time.After(5 * time.Second)
	for !d.verifier.Revoked(jti) {
		select {
		case <-d.feedSyncs:
		case <-deadline:
			return fmt.Errorf("demo: the revocation did not reach the API within 5s")
		}
	}
	return nil
}

// ordersTable is the entity the orders API's call policy is about.
var ordersTable = policy.Entity{Type: "Table", ID: "orders"}

// ordersAPI is the demo's protected resource: the verifier's middleware
// verifies each bearer token locally, and its own Cedar policy (chain/authz)
// decides whether the chain may call Table::"orders". It also serves its RFC
// 9728 metadata.
func ordersAPI(v *verifier.Verifier, az *authz.Authorizer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(verifier.ResourceMetadataPath(ordersMetadata.Resource), ordersMetadata.Handler())
	mux.Handle("/orders", v.Middleware(az.Require(policy.ActionCall, ordersTable)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verifier.FromContext(r.Context())
		caller := fmt.Sprintf("%s acting for %s", c.Holder, c.Subject)
		if len(c.Actors) > 1 {
			caller += ", delegated through " + strings.Join(c.Actors[1:], " ← ")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"orders":[{"id":1042,"total":99.5}],"caller":%q}`+"\n", caller)
	}))))
	return mux
}

func jtiOf(token string) string {
	c, err := jwt.Unverified(token)
	if err != nil {
		return ""
	}
	return c.ID
}

func randomSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
