package mcpguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-auth/mandate/chain/mcpguard"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/client"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

const server = "https://tools.example"

// The rule: research agents may search, and refund below 100 only at depth 1.
const policies = `
@id("research-search")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"search_orders");

@id("research-refund-small")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_order")
when { context.depth == 1 && context.arguments has amount && context.arguments.amount < 100 && context.server == "https://tools.example" };

@id("no-refunds-for-order-7")
forbid (principal, action == Action::"tools/call", resource == Tool::"refund_order")
when { context.arguments has order && context.arguments.order == "o-7" };

@id("docs-readme")
permit (principal, action == Action::"resources/read", resource == Resource::"file:///docs/readme.md");

@id("short-summaries")
permit (principal, action == Action::"prompts/get", resource == Prompt::"summarize")
when { context.arguments has style && context.arguments.style == "short" };
`

type fixture struct {
	env      *dt.Env
	v        *verifier.Verifier
	url      string
	refunds  atomic.Int32
	searches atomic.Int32
	reads    atomic.Int32
	prompts  atomic.Int32
	logs     *bytes.Buffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	clients := append(dt.DefaultClients(),
		dt.Client{ID: "mcp-researcher", Grants: dt.Both, Scopes: []string{"tools:*", "resources:read", "prompts:get"}, Audiences: []string{server}, Groups: []string{"research-agents"}},
		dt.Client{ID: "mcp-helper", Grants: dt.Both, Scopes: []string{"tools:*"}, Audiences: []string{server}, Groups: []string{"research-agents"}},
		dt.Client{ID: "mcp-rs", Role: delegation.RoleResourceServer},
	)
	f := &fixture{env: dt.New(t, dt.Options{Clients: clients}), logs: &bytes.Buffer{}}
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	md := verifier.ResourceMetadata{Resource: server, AuthorizationServers: []string{f.env.URL}}
	v, err := verifier.Discover(context.Background(), verifier.Config{Issuer: f.env.URL, Audience: server, PublicURL: srv.URL,
		ClientID: "mcp-rs", ClientSecret: dt.Secret("mcp-rs"), Now: f.env.Clock.Now, ResourceMetadataURL: md.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	f.v = v
	set, err := policy.Parse(policy.File{Name: "mcp.cedar", Source: []byte(policies)})
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{"mcp-researcher": {"research-agents"}, "mcp-helper": {"research-agents"}}
	g, err := mcpguard.New(v, mcpguard.Config{Server: server, Policy: set, Groups: func(h string) []string { return groups[h] },
		Logger: slog.New(slog.NewTextHandler(f.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "orders", Version: "1"}, nil)
	type searchIn struct {
		Q string `json:"q,omitempty"`
	}
	type refundIn struct {
		Order  string `json:"order"`
		Amount int    `json:"amount"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "search_orders", Description: "search"}, func(ctx context.Context, _ *mcp.CallToolRequest, in searchIn) (*mcp.CallToolResult, any, error) {
		f.searches.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "o-1"}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "refund_order", Description: "refund"}, func(ctx context.Context, _ *mcp.CallToolRequest, in refundIn) (*mcp.CallToolResult, any, error) {
		f.refunds.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "refunded"}}}, nil, nil
	})
	for _, uri := range []string{"file:///docs/readme.md", "file:///docs/secret.md"} {
		s.AddResource(&mcp.Resource{URI: uri, Name: uri}, func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			f.reads.Add(1)
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "text"}}}, nil
		})
	}
	s.AddPrompt(&mcp.Prompt{Name: "summarize", Arguments: []*mcp.PromptArgument{{Name: "style"}}}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		f.prompts.Add(1)
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "summarize"}}}}, nil
	})
	mux := http.NewServeMux()
	mux.Handle("/", g.Protect(s, nil))
	mux.Handle(verifier.ResourceMetadataPath(server), g.Metadata(f.env.URL, "tools:*").Handler())
	srv.Config.Handler = mux
	return f
}

// bearer is an http.Client that sends tok on every request.
type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens a session with the official Go MCP client.
func (f *fixture) connect(t *testing.T, tok string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: f.url, HTTPClient: &http.Client{Transport: bearer{tok}},
		DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// task mints the orchestrator's root and delegates it to holder with scope.
func (f *fixture) task(t testing.TB, holder, scope string) (root, tok string) {
	root = f.env.Mint(t, "orchestrator", url.Values{"scope": {"tools:*"}, "audience": {server}})
	return root, f.env.Delegate(t, "orchestrator", root, holder, url.Values{"scope": {scope}, "audience": {server}})
}

func call(s *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	return s.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
}

func denied(t *testing.T, err error, policies ...string) {
	t.Helper()
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != mcpguard.CodeDenied {
		for e := err; e != nil; e = errors.Unwrap(e) {
			t.Logf("%T: %v", e, e)
		}
		t.Fatalf("err = %v, want a JSON-RPC %d", err, mcpguard.CodeDenied)
	}
	var data struct{ Policies []string }
	if err := json.Unmarshal(je.Data, &data); err != nil {
		t.Fatal(err)
	}
	if strings.Join(data.Policies, ",") != strings.Join(policies, ",") {
		t.Errorf("policies %v, want %v (message %q)", data.Policies, policies, je.Message)
	}
	for _, p := range policies {
		if !strings.Contains(je.Message, p) {
			t.Errorf("message %q does not name %q", je.Message, p)
		}
	}
}

// TestToolCallsAreDecidedByTheChain: the official Go client calls tools of
// a guarded server; policy lets a research agent search, refund below 100
// at depth 1, never order o-7; denied calls never run the tool.
func TestToolCallsAreDecidedByTheChain(t *testing.T) {
	f := newFixture(t)
	_, tok := f.task(t, "mcp-researcher", "tools:*")
	s := f.connect(t, tok)

	if r, err := call(s, "search_orders", map[string]any{"q": "late"}); err != nil || r.IsError {
		t.Fatalf("search: %v %+v", err, r)
	}
	if r, err := call(s, "refund_order", map[string]any{"order": "o-1", "amount": 99}); err != nil || r.IsError {
		t.Fatalf("refund 99: %v %+v", err, r)
	}
	_, err := call(s, "refund_order", map[string]any{"order": "o-1", "amount": 100})
	denied(t, err)
	_, err = call(s, "refund_order", map[string]any{"order": "o-7", "amount": 1})
	denied(t, err, "no-refunds-for-order-7")
	// Arguments beyond the bounds are denied, not decided on part of them.
	deep := map[string]any{"amount": 1}
	for i := 0; i < 9; i++ {
		deep = map[string]any{"n": deep}
	}
	_, err = call(s, "refund_order", map[string]any{"order": "o-1", "amount": 1, "meta": deep})
	denied(t, err)
	// A member spelt twice in different cases: Cedar would see amount 5, the
	// Go handler's struct the last one, 500.
	_, err = call(s, "refund_order", map[string]any{"order": "o-1", "amount": 5, "AMOUNT": 500})
	denied(t, err)
	if got := f.refunds.Load(); got != 1 {
		t.Errorf("%d refunds ran, want 1", got)
	}
	if !strings.Contains(f.logs.String(), "no-refunds-for-order-7") || strings.Contains(f.logs.String(), tok) {
		t.Errorf("the denial log should name the policy and never hold the token:\n%s", f.logs)
	}

	// One hop further, the same refund is denied (depth 2).
	_, deeper := f.task(t, "mcp-researcher", "tools:*")
	deeper = f.env.Delegate(t, "mcp-researcher", deeper, "mcp-helper", url.Values{"scope": {"tools:*"}, "audience": {server}})
	_, err = call(f.connect(t, deeper), "refund_order", map[string]any{"order": "o-1", "amount": 5})
	denied(t, err)
}

// TestToolsListShowsWhatTheScopesCover, and a call outside them is a 403
// insufficient_scope naming the scope, before the server reads the call.
func TestToolsListShowsWhatTheScopesCover(t *testing.T) {
	f := newFixture(t)
	_, tok := f.task(t, "mcp-researcher", "tools:search_orders")
	s := f.connect(t, tok)
	lt, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.Tools) != 1 || lt.Tools[0].Name != "search_orders" {
		t.Errorf("tools/list = %+v, want search_orders only", lt.Tools)
	}
	if _, err := call(s, "refund_order", map[string]any{"order": "o-1", "amount": 1}); err == nil {
		t.Fatal("a refund outside the token's scopes ran")
	}
	// The same request by hand shows the HTTP answer MCP clients step up on.
	resp := f.post(t, tok, s.ID(), `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"refund_order","arguments":{"amount":1}}}`)
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="tools:refund_order"`) {
		t.Errorf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if f.refunds.Load() != 0 {
		t.Error("a refund ran")
	}
}

func (f *fixture) post(t *testing.T, tok, session, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestOnlyTokensForThisServer: no token, a token for another audience, a
// session opened by another holder, and a chain revoked mid-session are
// each refused, and no tool runs.
func TestOnlyTokensForThisServer(t *testing.T) {
	f := newFixture(t)
	root, tok := f.task(t, "mcp-researcher", "tools:*")
	s := f.connect(t, tok)
	callBody := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_orders","arguments":{}}}`

	resp := f.post(t, "", s.ID(), callBody)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	other := f.env.Delegate(t, "orchestrator", f.env.Mint(t, "orchestrator", nil), "db-agent", url.Values{"scope": {"db:read:*"}})
	if resp := f.post(t, other, s.ID(), callBody); resp.StatusCode != 401 {
		t.Errorf("a token for another audience: %d", resp.StatusCode)
	}
	_, helper := f.task(t, "mcp-helper", "tools:*")
	if resp := f.post(t, helper, s.ID(), callBody); resp.StatusCode != 403 {
		t.Errorf("another holder's session: %d", resp.StatusCode)
	}
	if f.searches.Load() != 0 {
		t.Fatal("a search ran")
	}
	if r, err := call(s, "search_orders", map[string]any{"q": "x"}); err != nil || r.IsError {
		t.Fatalf("the holder's own session: %v", err)
	}
	// Revoked in the middle of the session: the next call is refused.
	if r := f.env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if err := f.v.Feed().Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp := f.post(t, tok, s.ID(), callBody); resp.StatusCode != 401 {
		t.Errorf("a revoked chain: %d", resp.StatusCode)
	}
	if f.searches.Load() != 1 {
		t.Errorf("%d searches ran, want 1", f.searches.Load())
	}
}

// TestGuardRefusesAMisconfiguration: no policy, or a verifier for another
// audience, is refused at start.
func TestGuardRefusesAMisconfiguration(t *testing.T) {
	f := newFixture(t)
	if _, err := mcpguard.New(f.v, mcpguard.Config{Server: server}); err == nil {
		t.Error("a guard without a policy")
	}
	set, _ := policy.Parse()
	if _, err := mcpguard.New(f.v, mcpguard.Config{Server: "https://other.example", Policy: set}); err == nil {
		t.Error("a guard for another server than the verifier's audience")
	}
}

// TestABoundTokenCarriesItsProof: an agent's DPoP-bound token reaches the
// tools through the official client with the Go client's transport (a fresh
// proof per request, htu against the server's PublicURL); the same token
// shown as a bearer token is refused.
func TestABoundTokenCarriesItsProof(t *testing.T) {
	f := newFixture(t)
	key, err := tokens.NewDPoPKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(context.Background(), f.env.URL, "mcp-researcher", dt.Secret("mcp-researcher"), client.WithKey(key), client.WithClock(f.env.Clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cl.Mint(context.Background(), "tools:search_orders", server)
	if err != nil || !tok.Bound() {
		t.Fatalf("mint: %v (bound %v)", err, tok != nil && tok.Bound())
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: f.url, HTTPClient: tok.HTTPClient(nil),
		DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect with a bound token: %v", err)
	}
	defer s.Close()
	if r, err := call(s, "search_orders", map[string]any{"q": "x"}); err != nil || r.IsError {
		t.Fatalf("search with a bound token: %v %+v", err, r)
	}
	if resp := f.post(t, tok.Value, s.ID(), `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_orders","arguments":{}}}`); resp.StatusCode != 401 {
		t.Errorf("a bound token as bearer: %d", resp.StatusCode)
	}
	if f.searches.Load() != 1 {
		t.Errorf("%d searches ran, want 1", f.searches.Load())
	}
}

// TestResourcesAndPromptsAreDecidedToo: resources/read needs resources:read
// and prompts/get prompts:get (403 insufficient_scope without), then Cedar
// decides on the resource's URI and the prompt's arguments; a refused read
// or prompt never runs.
func TestResourcesAndPromptsAreDecidedToo(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, toolsOnly := f.task(t, "mcp-researcher", "tools:*")
	s := f.connect(t, toolsOnly)
	if _, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///docs/readme.md"}); err == nil {
		t.Error("a read without resources:read")
	}
	if _, err := s.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize", Arguments: map[string]string{"style": "short"}}); err == nil {
		t.Error("a prompt without prompts:get")
	}
	resp := f.post(t, toolsOnly, s.ID(), `{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"file:///docs/readme.md"}}`)
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="resources:read"`) {
		t.Errorf("a read without its scope: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	both := f.env.Mint(t, "mcp-researcher", url.Values{"scope": {"resources:read prompts:get"}, "audience": {server}})
	s = f.connect(t, both)
	if _, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///docs/readme.md"}); err != nil {
		t.Errorf("the readme: %v", err)
	}
	_, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///docs/secret.md"})
	denied(t, err)
	if _, err := s.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize", Arguments: map[string]string{"style": "short"}}); err != nil {
		t.Errorf("a short summary: %v", err)
	}
	_, err = s.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize", Arguments: map[string]string{"style": "long"}})
	denied(t, err)
	if f.reads.Load() != 1 || f.prompts.Load() != 1 {
		t.Errorf("%d reads and %d prompts ran, want 1 each", f.reads.Load(), f.prompts.Load())
	}
}
