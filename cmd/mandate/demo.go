package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

func newDemoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Tell Mandate's story end to end on a throw-away store",
		Long: `Start Mandate on a temporary store, register an orchestrator, two sub-agents
and a protected API, then walk a task through minting, two delegations, a
refused widening, an API call, revocation of the root, and the refusals that
follow. Nothing is left behind.`,
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
		{id: "orchestrator", scopes: []string{"db:read:*", "db:write:*", "tools:*"}, auds: []string{ordersAud, searchAud}, groups: []string{"orchestrators"}},
		{id: "researcher", scopes: []string{"db:read:*", "tools:search"}, auds: []string{ordersAud, searchAud}, groups: []string{"research-agents"}},
		{id: "db-agent", scopes: []string{"db:read:*", "tools:search"}, auds: []string{ordersAud}},
		{id: "orders-api", role: "resource_server"},
	}
	policyDir, err := writeDemoPolicies(dir)
	if err != nil {
		return err
	}
	cfg := &Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Signing: SigningConfig{Alg: tokens.AlgEdDSA},
		Tokens: TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: 4, Retention: 24 * time.Hour},
		Policy: PolicyConfig{Dir: policyDir}, Audit: AuditConfig{Retention: 24 * time.Hour},
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
		cc := ClientConfig{ID: a.id, SecretHash: string(h), Scopes: a.scopes, Audiences: a.auds, Groups: a.groups, Role: a.role}
		if a.role == "" {
			cc.Grants = []string{"client_credentials", "token_exchange"}
		}
		cfg.Clients = append(cfg.Clients, cc)
	}
	if _, err := cfg.validate(""); err != nil {
		return err
	}
	srv, err := startServer(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())

	d := &demo{out: out, base: srv.URL, agents: map[string]*demoAgent{}, store: srv.DB, start: time.Now(), policyLines: policySummary(srv.Policy.Current())}
	for _, a := range agents {
		d.agents[a.id] = a
	}
	self := d.agents["orders-api"]
	ordersMetadata.AuthorizationServers = []string{srv.URL}
	callPolicy, err := policy.LoadDir(filepath.Join(policyDir, "api"))
	if err != nil {
		return err
	}
	d.feedSyncs = make(chan struct{}, 1)
	verifier, err := chain.NewVerifier(ctx, chain.VerifierConfig{
		Issuer: srv.URL, Audience: ordersAud, ClientID: self.id, ClientSecret: self.secret,
		Realm: "orders", ResourceMetadataURL: ordersMetadata.URL(), Policy: callPolicy,
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
	defer verifier.Close()
	d.verifier = verifier
	api := httptest.NewServer(ordersAPI(verifier))
	defer api.Close()
	return d.run(ctx, api.URL, srv.Keys.CurrentAlg(), srv.Keys.CurrentKeyID())
}

// ordersMetadata is the orders API's RFC 9728 document: it names Mandate as
// the authorization server, which is how an MCP client would find it.
var ordersMetadata = chain.ResourceMetadata{Resource: ordersAud, ScopesSupported: []string{ordersScope}}

type demo struct {
	out    io.Writer
	base   string
	agents map[string]*demoAgent
	store  delegation.Inspector
	start  time.Time
	names  map[string]string // jti → a friendly name for the printout

	verifier    *chain.Verifier
	feedSyncs   chan struct{} // a tick per revocation-feed round trip
	policyLines []string      // "file.cedar: id, id"
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) step(n int, title string) { d.say("\n%d. %s", n, title) }

func (d *demo) run(ctx context.Context, apiURL, alg, kid string) error {
	d.names = map[string]string{}
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

	d.step(1, "The orchestrator starts a task: client_credentials gives it a root token.")
	root, err := d.token("orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	if err != nil {
		return err
	}
	d.show(root, "root")

	d.step(2, "Each sub-agent gets a token of its own (client_credentials): handed over as actor_token, it names the next holder.")
	ids := map[string]string{}
	if ids["researcher"], err = d.token("researcher", url.Values{"grant_type": {oauth.GrantClientCredentials}}); err != nil {
		return err
	}
	d.say("   researcher: granted.")
	if _, err := d.token("db-agent", url.Values{"grant_type": {oauth.GrantClientCredentials}}); err != nil {
		d.say("   db-agent, asking for all it is registered for (db:read:* tools:search): refused → %v", err)
	} else {
		return fmt.Errorf("demo: the db-agent's policy did not hold")
	}
	d.say("   Policy holds where registration alone would not: the db-agent only ever holds database reads.")
	if ids["db-agent"], err = d.token("db-agent", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"db:read:*"}}); err != nil {
		return err
	}
	d.say("   db-agent, asking for db:read:*: granted.")

	d.step(3, "The orchestrator delegates to the researcher (RFC 8693 token exchange), narrowing to \"db:read:*\".")
	d.say("   (Policy lets orchestrators hand research agents read scopes and nothing else.)")
	child, err := d.token("orchestrator", exchange(root, ids["researcher"], url.Values{"scope": {"db:read:*"}}))
	if err != nil {
		return err
	}
	d.show(child, "child")

	d.step(4, "The researcher delegates to the db-agent, narrowing again to \""+ordersScope+"\" for "+ordersAud+".")
	grand, err := d.token("researcher", exchange(child, ids["db-agent"], url.Values{"scope": {ordersScope}, "audience": {ordersAud}}))
	if err != nil {
		return err
	}
	d.show(grand, "grandchild")

	d.step(5, "Attenuation holds: the db-agent tries to widen its token to db:write:orders.")
	if _, err := d.token("db-agent", exchange(grand, "", url.Values{"scope": {"db:write:orders"}})); err != nil {
		d.say("   refused → %v", err)
	} else {
		return fmt.Errorf("demo: widening was not refused")
	}

	d.step(6, "The db-agent calls the orders API with its token.")
	d.say("   The API checks it locally with Mandate's chain.Verifier: signature against the published key,")
	d.say("   audience, expiry, the act chain and lineage, and a revocation set it keeps current by long-polling")
	d.say("   Mandate's revocation feed; then its own Cedar policy decides whether this chain may read")
	d.say("   Table::\"orders\". No call to Mandate per request.")
	status, body := d.callAPI(apiURL, grand)
	d.say("   GET /orders → %d %s", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("demo: the API refused a live token")
	}

	d.step(7, "The task is over: the orchestrator revokes the root token (RFC 7009).")
	if err := d.revoke("orchestrator", root); err != nil {
		return err
	}
	revokedAt := time.Now()
	d.say("   POST /oauth2/revoke → 200. One revocation record, whatever the size of the task's tree:")
	d.say("   every descendant carries the root's jti in its lineage, so it is refused wherever it is shown.")
	if err := d.awaitFeed(jtiOf(root)); err != nil {
		return err
	}
	d.say("   The API's verifier learned it from the revocation feed %s after the revoke returned.",
		time.Since(revokedAt).Round(10*time.Microsecond))

	d.step(8, "Everything delegated from the root is now refused.")
	status, body = d.callAPI(apiURL, grand)
	d.say("   db-agent   GET /orders        → %d %s", status, body)
	if status != http.StatusUnauthorized {
		return fmt.Errorf("demo: the API accepted a revoked chain")
	}
	if _, err := d.token("researcher", exchange(child, ids["db-agent"], nil)); err != nil {
		d.say("   researcher delegates again    → %v", err)
	} else {
		return fmt.Errorf("demo: a revoked chain was exchanged")
	}

	d.step(9, "The task's lineage, as an operator sees it (`mandate lineage JTI`):")
	l, err := delegation.LineageOf(ctx, d.store, jtiOf(root), time.Now())
	if err != nil {
		return err
	}
	renderLineageTree(d.out, l)
	d.say("   (An operator ends a task with `mandate revoke --root JTI --reason ...`; every decision above is in")
	d.say("   the hash-chained audit trail: `mandate audit tail`, `mandate audit verify`.)")
	d.say("\nThat is the whole story: narrow at every hop, record who acts for whom, end it all with one revocation.")
	d.say("Run the tests with: go test -race ./...")
	return nil
}

func exchange(subject, actor string, extra url.Values) url.Values {
	f := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	if actor != "" {
		f.Set("actor_token", actor)
		f.Set("actor_token_type", oauth.TokenTypeAccessToken)
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// post sends an authenticated form to one of Mandate's endpoints.
func (d *demo) post(client, path string, form url.Values) (int, map[string]any, error) {
	a := d.agents[client]
	req, err := http.NewRequest(http.MethodPost, d.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, body, nil
}

// token calls the token endpoint; an OAuth refusal comes back as an error that
// prints "400 invalid_scope: ...".
func (d *demo) token(client string, form url.Values) (string, error) {
	status, body, err := d.post(client, "/oauth2/token", form)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("%d %v: %v", status, body["error"], body["error_description"])
	}
	tok, _ := body["access_token"].(string)
	return tok, nil
}

func (d *demo) revoke(client, token string) error {
	status, body, err := d.post(client, "/oauth2/revoke", url.Values{"token": {token}})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("revoke: %d %v", status, body)
	}
	return nil
}

// show prints a token's decoded claims and remembers its name for the tree.
func (d *demo) show(token, name string) {
	c, _ := decodeUnverified(token)
	d.names[c.ID] = name
	d.say("   ← %s token (%d bytes), decoded:", name, len(token))
	d.say("      jti      %s", c.ID)
	d.say("      sub      %-24s on whose behalf the work is done; never changes", c.Subject)
	d.say("      holder   %-24s client_id: who may present or exchange it", c.ClientID)
	d.say("      scope    %s", c.Scope)
	d.say("      aud      %s", strings.Join(c.Audience, " "))
	d.say("      expires  in %s", time.Unix(c.Expiry, 0).Sub(d.start).Round(time.Minute))
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
}

// callAPI calls the protected API as its client would; a refusal is summarised
// as "error: description" (the same is in its WWW-Authenticate challenge).
func (d *demo) callAPI(apiURL, token string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
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

// ordersAPI is the demo's protected resource: chain.Verifier's middleware
// verifies each bearer token locally, and its own Cedar policy decides whether
// the chain may call Table::"orders". It also serves its RFC 9728 metadata.
func ordersAPI(v *chain.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(chain.ResourceMetadataPath(ordersMetadata.Resource), ordersMetadata.Handler())
	mux.Handle("/orders", v.Middleware(v.RequirePermission(policy.ActionCall, ordersTable)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := chain.FromContext(r.Context())
		caller := fmt.Sprintf("%s acting for %s", c.Holder, c.Subject)
		if len(c.Actors) > 1 {
			caller += ", delegated through " + strings.Join(c.Actors[1:], " ← ")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"orders":[{"id":1042,"total":99.5}],"caller":%q}`+"\n", caller)
	}))))
	return mux
}

// decodeUnverified reads a token's claims for display only; every decision in
// the demo is made by Mandate or by introspection, never by this.
func decodeUnverified(token string) (*tokens.Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	return tokens.ParseClaims(raw)
}

func jtiOf(token string) string {
	c, err := decodeUnverified(token)
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
