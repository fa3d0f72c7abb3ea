// Package mcpguard guards an MCP server built with the official Go SDK
// (github.com/modelcontextprotocol/go-sdk) with Mandate's chains: every
// HTTP request carries a token for this server (its canonical URI is the
// audience), verified locally; every tools/call, resources/read and
// prompts/get, and any other method that acts, is decided by Cedar with the
// chain and the request's arguments before it runs (docs/mcp.md); tools/list
// shows only the tools the chain's scopes cover; a session belongs to the
// holder whose token opened it.
//
// Invariants: the decision is made on the values the SDK parsed, the ones
// the tool handler sees; a request the guard cannot decide (arguments past
// the bounds, no verified chain) is denied; a denial never runs the tool,
// and is logged with the policy ids and the token's jti, never the token.
package mcpguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/authz"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/policy"
)

// Policy decides MCP requests; *policy.Set and *policy.Engine satisfy it.
type Policy interface {
	AuthorizeMCP(policy.MCPRequest) policy.Decision
}

var (
	_ Policy = (*policy.Set)(nil)
	_ Policy = (*policy.Engine)(nil)
)

// CodeDenied is the JSON-RPC error code of a request the guard refuses
// (docs/mcp.md): its message names the policies, data.policies lists them.
// It is 403, not the -32003 DESIGN.md first named: the official Go SDK
// reads -32003 as "client is closing" and reports the denial to the agent
// as a closed connection (docs/decisions.md, "MCP").
const CodeDenied = 403

// maxMessage bounds the JSON-RPC body the guard reads to find a request's
// method and name (a tool's arguments are bounded far lower, by policy).
const maxMessage = 4 << 20

// Config is what a guard needs besides the verifier.
type Config struct {
	// Server is the MCP server's canonical URI ("https://mcp.orders.example/mcp"):
	// the audience of every token it accepts (the verifier's Audience) and
	// the Cedar context's "server".
	Server string
	// Policy decides each request. Required: a guard that decides nothing
	// must not look like one that does.
	Policy Policy
	// Groups names a holder's groups (principal in Group::"…"), optional.
	Groups func(holder string) []string
	// Logger receives one line per denial (default slog.Default()).
	Logger *slog.Logger
}

// Guard checks the HTTP requests (Handler) and the MCP requests
// (Middleware) of one MCP server.
type Guard struct {
	v   *verifier.Verifier
	cfg Config
	log *slog.Logger
}

// New returns a guard for the MCP server cfg.Server whose tokens v verifies.
// v's Audience must be cfg.Server: a token for another server is refused
// before any MCP request is read.
func New(v *verifier.Verifier, cfg Config) (*Guard, error) {
	if v == nil || cfg.Policy == nil {
		return nil, errors.New("mcpguard: a verifier and a policy are required")
	}
	if cfg.Server == "" || strings.TrimSuffix(v.Audience(), "/") != strings.TrimSuffix(cfg.Server, "/") {
		return nil, fmt.Errorf("mcpguard: the verifier's audience %q must be the server's canonical URI %q", v.Audience(), cfg.Server)
	}
	g := &Guard{v: v, cfg: cfg, log: cfg.Logger}
	if g.log == nil {
		g.log = slog.Default()
	}
	return g, nil
}

// Protect guards server: it adds the guard's middleware to it and returns
// its streamable HTTP handler behind the guard's Handler.
func (g *Guard) Protect(server *mcp.Server, opts *mcp.StreamableHTTPOptions) http.Handler {
	server.AddReceivingMiddleware(g.Middleware())
	return g.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, opts))
}

// chainKey is where Handler leaves the verified chain in auth.TokenInfo.Extra.
const chainKey = "mandate.chain"

// Handler verifies the token of every HTTP request (Bearer, or DPoP with its
// proof against the verifier's PublicURL), answering 401 with the
// resource_metadata challenge when it fails; answers 403 insufficient_scope
// naming the scope when a tools/call, resources/read or prompts/get needs
// one the chain lacks (so MCP clients can step up); and hands the chain to
// the MCP server as the SDK's auth.TokenInfo, whose UserID (the holder)
// binds a session to the holder that opened it.
func (g *Guard) Handler(next http.Handler) http.Handler {
	inner := auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		c, ok := verifier.FromContext(ctx)
		if !ok {
			return nil, fmt.Errorf("%w: no verified chain", auth.ErrInvalidToken)
		}
		// The verifier checked expiry with its own clock; the SDK's check
		// (against time.Now) is left out.
		return &auth.TokenInfo{Scopes: c.Scopes, UserID: sessionOwner(c), Extra: map[string]any{chainKey: c}}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := g.v.Authenticate(r)
		if err != nil {
			g.v.Reject(w, err)
			return
		}
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxMessage+1))
			if err != nil {
				http.Error(w, "reading the request failed", http.StatusBadRequest)
				return
			}
			if len(body) > maxMessage {
				http.Error(w, "the JSON-RPC message is too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if scope := peekScope(body); scope != "" && !chain.CoveredBy(c.Scopes, scope) {
				g.log.Info("mcp request refused", "jti", c.JTI, "holder", c.Holder, "error", "insufficient_scope", "scope", scope)
				g.v.RejectScope(w, scope)
				return
			}
		}
		// The SDK's bearer middleware reads the token from a Bearer header;
		// the request was authenticated above, whatever its scheme.
		r = r.WithContext(verifier.WithChain(r.Context(), c))
		r.Header = r.Header.Clone()
		r.Header.Set("Authorization", "Bearer verified")
		inner.ServeHTTP(w, r)
	})
}

// sessionOwner is whom a session belongs to: the holder, with the task's
// subject, so another agent (or the same agent for another subject) cannot
// use it.
func sessionOwner(c *chain.Chain) string {
	return c.Holder + " " + c.SubjectIssuer + " " + c.Subject
}

// peekScope reads a single JSON-RPC request's method and name to find the
// scope it needs ("" for none, a batch, or a body it cannot read: the
// middleware decides those on what the SDK parsed).
func peekScope(body []byte) string {
	var m struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return policy.MCPRequest{Method: m.Method, Name: m.Params.Name}.RequiredScope()
}

// undecided are the methods that act on nothing: the protocol's own
// housekeeping (initialize, and server/discover, the newer protocol's
// handshake) and the lists (tools/list is filtered by scope instead).
var undecided = map[string]bool{
	"initialize": true, "server/discover": true, "ping": true, "tools/list": true, "resources/list": true,
	"resources/templates/list": true, "prompts/list": true,
}

// Middleware decides every MCP request the server receives by its chain,
// on the parameters the SDK parsed: the scope it needs, then Cedar
// (policy.MCPRequest). A refusal is a JSON-RPC error CodeDenied naming the
// policies; the request never reaches its handler. tools/list answers only
// the tools whose tools:<name> scope the chain covers.
func (g *Guard) Middleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if strings.HasPrefix(method, "notifications/") {
				return next(ctx, method, req)
			}
			c := chainOf(req)
			if c == nil {
				return nil, deny(g.log, nil, method, "", policy.Decision{Policies: []string{}, Reason: "no verified Mandate chain reached the MCP server (serve it behind mcpguard's Handler)"})
			}
			if undecided[method] {
				res, err := next(ctx, method, req)
				if lt, ok := res.(*mcp.ListToolsResult); ok && err == nil {
					lt.Tools = g.visible(c, lt.Tools)
				}
				return res, err
			}
			r := policy.MCPRequest{Server: g.cfg.Server, Method: method}
			var args []byte
			switch p := req.GetParams().(type) {
			case *mcp.CallToolParamsRaw:
				r.Name, args = p.Name, p.Arguments
			case *mcp.ReadResourceParams:
				r.URI = p.URI
			case *mcp.GetPromptParams:
				r.Name = p.Name
				if p.Arguments != nil {
					args, _ = json.Marshal(p.Arguments) // strings only: always converts
				}
			}
			name := r.Name + r.URI
			if scope := r.RequiredScope(); scope != "" && !chain.CoveredBy(c.Scopes, scope) {
				return nil, deny(g.log, c, method, name, policy.Decision{Policies: []string{}, Reason: "insufficient_scope: the token does not grant " + scope})
			}
			a, err := policy.ParseArguments(args)
			if err != nil {
				return nil, deny(g.log, c, method, name, policy.Decision{Policies: []string{}, Reason: err.Error()})
			}
			r.Arguments = a
			var groups []string
			if g.cfg.Groups != nil {
				groups = g.cfg.Groups(c.Holder)
			}
			r.Call = authz.CallRequest(c, groups)
			if d := g.cfg.Policy.AuthorizeMCP(r); !d.Allow {
				return nil, deny(g.log, c, method, name, d)
			}
			return next(ctx, method, req)
		}
	}
}

// visible keeps the tools the chain's scopes cover.
func (g *Guard) visible(c *chain.Chain, tools []*mcp.Tool) []*mcp.Tool {
	out := tools[:0:0]
	for _, t := range tools {
		if chain.CoveredBy(c.Scopes, "tools:"+t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// chainOf is the chain Handler verified for the HTTP request that carried req.
func chainOf(req mcp.Request) *chain.Chain {
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return nil
	}
	c, _ := extra.TokenInfo.Extra[chainKey].(*chain.Chain)
	return c
}

// deny logs a refusal and builds its JSON-RPC error.
func deny(log *slog.Logger, c *chain.Chain, method, name string, d policy.Decision) error {
	attrs := []any{"method", method, "name", name, "policies", d.Policies, "reason", d.Reason}
	if c != nil {
		attrs = append(attrs, "jti", c.JTI, "holder", c.Holder, "root", c.Root)
	}
	log.Info("mcp request denied", attrs...)
	msg := "denied: " + d.Reason
	data, _ := json.Marshal(map[string]any{"policies": d.Policies, "reason": d.Reason})
	return &jsonrpc.Error{Code: CodeDenied, Message: msg, Data: data}
}

// Metadata is the server's RFC 9728 protected-resource metadata, naming
// Mandate (issuer) as its authorization server; serve its Handler at
// verifier.ResourceMetadataPath(Server), and set the verifier's
// ResourceMetadataURL to its URL so 401s point to it.
func (g *Guard) Metadata(issuer string, scopes ...string) verifier.ResourceMetadata {
	return verifier.ResourceMetadata{Resource: g.cfg.Server, AuthorizationServers: []string{issuer}, ScopesSupported: scopes}
}
