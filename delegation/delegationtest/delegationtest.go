// Package delegationtest runs a real Mandate server for tests, built by the
// same composition root as `mandate serve` (cmd/mandate/server.Start): a
// bbolt file in t.TempDir() — or, with Options.Postgres, a PostgreSQL
// database (store/postgres/pgtest makes one), which several servers may
// share as replicas do — signing keys (sealed when the test gives a KEK),
// the policy directory and its watch, the delegation core, its HTTP
// transport and metrics, on a loopback port, with a clock the test controls.
// Nothing is faked but time; the one thing the harness turns off is the
// garbage-collection loop, which tests run by hand when they need it.
//
// It also has small helpers to call the endpoints the way a client would:
// discovering them from RFC 8414 metadata and authenticating with
// client_secret_basic.
package delegationtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Clock is a settable clock for the server under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Start is the instant every test clock starts at.
var Start = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// Client registers a test client; its secret is Secret(ID).
type Client struct {
	ID        string
	Grants    []string
	Scopes    []string
	Audiences []string
	Groups    []string
	Role      delegation.Role
	Ephemeral *delegation.Ephemeral
	// Serves lists the audiences the client is the resource server for
	// (clients[].serves): the audience exchange.
	Serves []string
	// JWKS, when set, registers the client for private_key_jwt with these
	// public keys instead of a secret.
	JWKS []byte
}

// Secret is the client secret the harness registers for id.
func Secret(id string) string { return "secret-for-" + id + "-%:+" }

// Both grants, for brevity in client tables.
var Both = []string{delegation.GrantNameClientCredentials, delegation.GrantNameTokenExchange}

// DefaultClients is the cast most tests use: an orchestrator, two sub-agents,
// agents with no scopes (identity-only tokens) or no audiences, an unrelated
// agent, a resource server and an admin.
func DefaultClients() []Client {
	return []Client{
		{ID: "orchestrator", Grants: Both, Scopes: []string{"db:read:*", "db:write:*", "tools:*"},
			Audiences: []string{"https://db.example", "https://tools.example", "https://mail.example"}, Groups: []string{"orchestrators"},
			Ephemeral: &delegation.Ephemeral{Scopes: []string{"db:read:*", "tools:search"}, Audiences: []string{"https://db.example"}}},
		{ID: "researcher", Grants: Both, Scopes: []string{"db:read:*", "tools:search"},
			Audiences: []string{"https://db.example", "https://tools.example"}, Groups: []string{"research-agents"}},
		{ID: "db-agent", Grants: Both, Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}},
		{ID: "idle", Grants: []string{delegation.GrantNameClientCredentials}},
		{ID: "blank", Grants: Both},
		{ID: "no-aud", Grants: Both, Scopes: []string{"db:read:*"}},
		{ID: "outsider", Grants: Both, Scopes: []string{"db:read:*", "tools:*"}, Audiences: []string{"https://db.example"}},
		{ID: "no-grants-rs", Role: delegation.RoleResourceServer},
		{ID: "ops", Role: delegation.RoleAdmin},
	}
}

// TrustedIssuer registers an external identity provider by its JWKS document.
type TrustedIssuer struct {
	Issuer   string
	Audience string // default: Mandate's issuer
	JWKS     []byte
}

// Options configures a test server; zero values take the defaults below.
type Options struct {
	Clients        []Client      // DefaultClients()
	RootTTL        time.Duration // 15m
	DelegatedTTL   time.Duration // 5m
	MaxDepth       int           // 4
	Alg            string        // EdDSA
	TrustedIssuers []TrustedIssuer
	// Dir is the data directory (a new t.TempDir() when empty); reuse it to restart.
	Dir string
	// Logger receives the core's and the transport's logs (discarded when nil).
	Logger *slog.Logger
	// FeedPageSize bounds revocation-feed answers (the core's default when 0).
	FeedPageSize int
	// ProofsPerClient bounds each client's share of the DPoP replay cache
	// (the core's default when 0).
	ProofsPerClient int
	// PolicyDir is a directory of Cedar policies; Policies, files written
	// into a fresh one. With neither, only the attenuation rules decide.
	PolicyDir string
	Policies  []policy.File
	// Deviation configures suspension of agents that keep being refused.
	Deviation delegation.Deviation
	// RateLimit bounds each client's request rate (off when zero), measured
	// by the test clock.
	RateLimit httpapi.RateLimit
	// KEK, when set, seals the signing keys at rest, as signing.kek does.
	KEK []byte
	// TrustedProxies is http.trusted_proxies.
	TrustedProxies []string
	// Clock, when set, is the clock to run on (to restart a server on Dir
	// later in the same test's time); a new one stopped at Start otherwise.
	Clock *Clock
	// Postgres, when set, is the DSN of the PostgreSQL database to run on
	// (store.postgres.dsn) instead of a bbolt file in Dir: servers given
	// the same one are replicas of one Mandate. The KEK is then required:
	// TestKEK when KEK is not set, so replicas agree.
	Postgres string
	// Replica names the server's audit chain on PostgreSQL
	// (store.postgres.replica); give replicas sharing a database different
	// names.
	Replica string
	// Issuer, when set, is the issuer (by default the server's own address):
	// replicas of one Mandate, and a server restarted on another port, share
	// it. Requests still go to the server's address (Env.Base).
	Issuer string
	// Configure, when set, edits the configuration last, as a config file
	// would say more (workload_issuers, id_jag_issuers); write puts a file
	// (a JWKS, say) in the configuration's directory and returns its path.
	Configure func(cfg *server.Config, write func(name string, data []byte) string)
}

// TestKEK is the key-encryption key servers on PostgreSQL run with when
// the test gives none.
var TestKEK = []byte("delegationtest-kek-32-bytes-long")

// Env is a running test server.
type Env struct {
	// URL is the issuer; Base is where this server listens (http://addr),
	// the same unless Options.Issuer set another.
	URL      string
	Base     string
	Dir      string
	Metadata map[string]any
	// DB is the server's store; Bolt is the same store when it is the
	// embedded one (nil on PostgreSQL), for what only bbolt tells (Stats).
	DB   server.Store
	Bolt *bolt.DB
	Keys *tokens.KeyRing
	// KeyStore is where rotations go (sealed when Options.KEK is set).
	KeyStore tokens.KeyStore
	Svc      *delegation.Service
	Policy   *policy.Engine // nil without a policy directory
	Clock    *Clock
	// Handler serves every endpoint, as the listener does.
	Handler http.Handler
	Server  *server.Server

	stopOnce sync.Once
}

// New starts a server through server.Start, as serve does, and registers
// its shutdown with t.Cleanup.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	cfg := Config(t, opts)
	clock := opts.Clock
	if clock == nil {
		clock = NewClock(Start)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, server.Options{Logger: opts.Logger, Now: clock.Now, Listener: ln,
		FeedPageSize: opts.FeedPageSize, ProofsPerClient: opts.ProofsPerClient, GCInterval: -1})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	b, _ := srv.Store.(*bolt.DB)
	env := &Env{URL: srv.URL, Base: "http://" + srv.Addr, Dir: cfg.DataDir, DB: srv.Store, Bolt: b, Keys: srv.Keys, KeyStore: srv.KeyStore, Svc: srv.Service,
		Policy: srv.Policy, Clock: clock, Handler: srv.Handler, Server: srv}
	t.Cleanup(func() { env.Stop(t) })
	resp := env.Get(t, env.Base+httpapi.PathMetadata)
	if resp.Status != http.StatusOK {
		t.Fatalf("metadata: %d %s", resp.Status, resp.Raw)
	}
	env.Metadata = resp.JSON
	return env
}

// Stop shuts the server down (once; New's cleanup calls it too), so a test
// can restart one on the same Dir.
func (e *Env) Stop(t testing.TB) {
	e.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Server.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// Config is the configuration New starts a server with: what an operator's
// file would say for opts (files a configuration names — JWKS documents,
// policies — are written into t.TempDir()).
func Config(t testing.TB, opts Options) *server.Config {
	t.Helper()
	if opts.Clients == nil {
		opts.Clients = DefaultClients()
	}
	if opts.RootTTL == 0 {
		opts.RootTTL = 15 * time.Minute
	}
	if opts.DelegatedTTL == 0 {
		opts.DelegatedTTL = 5 * time.Minute
	}
	if opts.MaxDepth == 0 {
		opts.MaxDepth = 4
	}
	if opts.Alg == "" {
		opts.Alg = tokens.AlgEdDSA
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	files := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(files, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := &server.Config{
		Listen: "127.0.0.1:0", DataDir: opts.Dir, Issuer: opts.Issuer,
		Signing:   server.SigningConfig{Alg: opts.Alg},
		Tokens:    server.TokensConfig{RootTTL: opts.RootTTL, DelegatedTTL: opts.DelegatedTTL, MaxDepth: opts.MaxDepth, Retention: time.Hour},
		Policy:    server.PolicyConfig{Dir: opts.PolicyDir},
		Audit:     server.AuditConfig{Retention: 2160 * time.Hour},
		Deviation: server.DeviationConfig{MaxDenials: opts.Deviation.MaxDenials, Window: opts.Deviation.Window, Count: opts.Deviation.Count},
		RateLimit: server.RateLimitConfig{PerSecond: opts.RateLimit.PerSecond, Burst: opts.RateLimit.Burst,
			RevocationPerSecond: opts.RateLimit.RevocationPerSecond, RevocationBurst: opts.RateLimit.RevocationBurst},
		HTTP: server.HTTPConfig{TrustedProxies: opts.TrustedProxies},
	}
	if opts.Postgres != "" {
		cfg.Store.Postgres = server.PostgresConfig{DSN: opts.Postgres, Replica: opts.Replica}
		if opts.KEK == nil {
			opts.KEK = TestKEK
		}
	}
	if opts.KEK != nil {
		cfg.Signing.KEK = base64.StdEncoding.EncodeToString(opts.KEK)
	}
	if len(opts.Policies) > 0 {
		for _, f := range opts.Policies {
			write(filepath.Join("policies", f.Name), f.Source)
		}
		cfg.Policy.Dir = filepath.Join(files, "policies")
	}
	for _, c := range opts.Clients {
		cc := server.ClientConfig{ID: c.ID, Grants: c.Grants, Scopes: c.Scopes, Audiences: c.Audiences, Groups: c.Groups, Role: string(c.Role), Serves: c.Serves}
		if c.Ephemeral != nil {
			cc.Ephemeral = &server.EphemeralConfig{Scopes: c.Ephemeral.Scopes, Audiences: c.Ephemeral.Audiences, Groups: c.Ephemeral.Groups}
		}
		if c.JWKS != nil {
			cc.JWKSFile = write("clients/"+url.PathEscape(c.ID)+".jwks.json", c.JWKS)
		} else {
			h, err := bcrypt.GenerateFromPassword([]byte(Secret(c.ID)), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			cc.SecretHash = string(h)
		}
		cfg.Clients = append(cfg.Clients, cc)
	}
	if opts.Configure != nil {
		defer opts.Configure(cfg, write)
	}
	for i, ti := range opts.TrustedIssuers {
		cfg.TrustedIssuers = append(cfg.TrustedIssuers, server.TrustedIssuerConfig{Issuer: ti.Issuer, Audience: ti.Audience,
			KeySource: server.KeySource{JWKSFile: write(fmt.Sprintf("issuers/%d.jwks.json", i), ti.JWKS)}})
	}
	return cfg
}

// Response is an HTTP answer with its JSON body decoded (when it is JSON).
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	JSON   map[string]any
}

// Error returns the "error" member of an OAuth error body.
func (r Response) Error() string { s, _ := r.JSON["error"].(string); return s }

// String returns a string member of the body.
func (r Response) String(name string) string { s, _ := r.JSON[name].(string); return s }

// Endpoint returns where to send requests for an endpoint the discovered
// metadata names: the metadata's URL, at this server's address (Base) when
// the issuer is another (replicas behind one issuer URL).
func (e *Env) Endpoint(t testing.TB, name string) string {
	t.Helper()
	u := e.Advertised(t, name)
	if rest, ok := strings.CutPrefix(u, e.URL); ok {
		return e.Base + rest
	}
	return u
}

// Advertised returns an endpoint URL exactly as the discovered metadata
// names it (what a DPoP proof's htu or an assertion's aud must say).
func (e *Env) Advertised(t testing.TB, name string) string {
	t.Helper()
	u, ok := e.Metadata[name].(string)
	if !ok {
		t.Fatalf("metadata has no %s", name)
	}
	return u
}

// Get performs a GET.
func (e *Env) Get(t testing.TB, u string) Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return read(t, resp)
}

// Post sends a form to the endpoint named in the metadata (such as
// "token_endpoint"), authenticated as client with client_secret_basic; an empty
// client sends no credentials.
func (e *Env) Post(t testing.TB, endpoint, client string, form url.Values) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.Endpoint(t, endpoint), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != "" {
		req.Header.Set("Authorization", BasicAuth(client, Secret(client)))
	}
	return e.Do(t, req)
}

// PostDPoP is Post with a DPoP proof header (none when proof is empty).
func (e *Env) PostDPoP(t testing.TB, endpoint, client string, form url.Values, proof string) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.Endpoint(t, endpoint), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", BasicAuth(client, Secret(client)))
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return e.Do(t, req)
}

// Proof makes a DPoP proof by key for the token endpoint, at the server's clock.
func (e *Env) Proof(t testing.TB, key *tokens.DPoPKey) string {
	t.Helper()
	p, err := key.Proof(http.MethodPost, e.Advertised(t, "token_endpoint"), "", "", e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Do sends a request and reads the answer.
func (e *Env) Do(t testing.TB, req *http.Request) Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return read(t, resp)
}

// BasicAuth encodes client_secret_basic credentials the RFC 6749 §2.3.1 way:
// id and secret form-urlencoded, then Base64.
func BasicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func read(t testing.TB, resp *http.Response) Response {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	r := Response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &r.JSON)
	}
	return r
}

// Mint gets a client_credentials token for client, failing the test on error.
func (e *Env) Mint(t testing.TB, client string, extra url.Values) string {
	t.Helper()
	form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	for k, v := range extra {
		form[k] = v
	}
	r := e.Post(t, "token_endpoint", client, form)
	if r.Status != http.StatusOK {
		t.Fatalf("mint for %s: %d %s", client, r.Status, r.Raw)
	}
	return r.String("access_token")
}

// Identity gets client's identity token (client_credentials with audience =
// the issuer): what names it as the actor of a delegation.
func (e *Env) Identity(t testing.TB, client string) string {
	t.Helper()
	return e.Mint(t, client, url.Values{"audience": {e.URL}})
}

// ExchangeForm builds a token-exchange form for subject (and actor, if not empty).
func ExchangeForm(subject, actor string, extra url.Values) url.Values {
	form := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	if actor != "" {
		form.Set("actor_token", actor)
		form.Set("actor_token_type", oauth.TokenTypeAccessToken)
	}
	for k, v := range extra {
		form[k] = v
	}
	return form
}

// Exchange performs a token exchange as client and returns the raw answer.
func (e *Env) Exchange(t testing.TB, client, subject, actor string, extra url.Values) Response {
	t.Helper()
	return e.Post(t, "token_endpoint", client, ExchangeForm(subject, actor, extra))
}

// Delegate exchanges subject (held by client) for a token held by to (client
// itself when to is client or empty), failing the test on error.
func (e *Env) Delegate(t testing.TB, client, subject, to string, extra url.Values) string {
	t.Helper()
	actor := ""
	if to != "" && to != client {
		actor = e.Identity(t, to)
	}
	r := e.Exchange(t, client, subject, actor, extra)
	if r.Status != http.StatusOK {
		t.Fatalf("exchange by %s to %s: %d %s", client, to, r.Status, r.Raw)
	}
	return r.String("access_token")
}

// Claims verifies a token with the server's keys and returns its claims.
func (e *Env) Claims(t testing.TB, token string) *jwt.Claims {
	t.Helper()
	c, err := e.Keys.Verify(token)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return c
}

// Forge re-signs token with the server's own key after edit changes its claims:
// a token Mandate would never issue but whose signature is valid, to test the
// checks that do not rest on the signature.
func (e *Env) Forge(t testing.TB, token string, edit func(*jwt.Claims)) string {
	t.Helper()
	c := e.Claims(t, token)
	edit(c)
	tok, err := e.Keys.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Revoke revokes token as client (RFC 7009), failing the test unless the
// server answers 200.
func (e *Env) Revoke(t testing.TB, client, token string) {
	t.Helper()
	if r := e.Post(t, "revocation_endpoint", client, url.Values{"token": {token}}); r.Status != http.StatusOK {
		t.Fatalf("revoke by %s: %d %s", client, r.Status, r.Raw)
	}
}

// Introspect asks the server about token as client (a resource_server or
// admin) and returns the answer.
func (e *Env) Introspect(t testing.TB, client, token string) Response {
	t.Helper()
	return e.Post(t, "introspection_endpoint", client, url.Values{"token": {token}})
}

// Feed reads the revocation feed as client (HTTP Basic) from since ("" for
// the start), long-polling up to wait (whole seconds; none when zero).
func (e *Env) Feed(t testing.TB, client, since string, wait time.Duration) Response {
	t.Helper()
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if wait > 0 {
		q.Set("wait", fmt.Sprint(int(wait/time.Second)))
	}
	req, err := http.NewRequest(http.MethodGet, e.Endpoint(t, "revocation_feed_endpoint")+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", BasicAuth(client, Secret(client)))
	return e.Do(t, req)
}

// FeedJTIs lists the jtis of a feed answer's entries, failing the test
// unless it is a 200.
func FeedJTIs(t testing.TB, r Response) []string {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("feed: %d %s", r.Status, r.Raw)
	}
	var out []string
	entries, _ := r.JSON["revocations"].([]any)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		jti, _ := m["jti"].(string)
		out = append(out, jti)
	}
	return out
}
