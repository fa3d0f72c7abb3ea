package mcpguard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-auth/mandate/chain/mcpguard"
	"github.com/mandate-auth/mandate/policy"
)

// BenchmarkGuardOverhead is what the guard adds to a tools/call: verifying
// the (cached) chain of the HTTP request, then the MCP decision (scope,
// arguments to a Cedar record, one Cedar evaluation). The SDK's own work
// is not in it. docs/performance.md reports it.
func BenchmarkGuardOverhead(b *testing.B) {
	f := newFixture(b)
	_, tok := f.task(b, "mcp-researcher", "tools:*")
	set, err := policy.Parse(policy.File{Name: "mcp.cedar", Source: []byte(policies)})
	if err != nil {
		b.Fatal(err)
	}
	g, err := mcpguard.New(f.v, mcpguard.Config{Server: server, Policy: set, Groups: func(string) []string { return []string{"research-agents"} }})
	if err != nil {
		b.Fatal(err)
	}
	handler := g.Middleware()(func(context.Context, string, mcp.Request) (mcp.Result, error) { return &mcp.CallToolResult{}, nil })
	req, _ := http.NewRequest(http.MethodPost, "https://tools.example/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	args, _ := json.Marshal(map[string]any{"order": "o-1", "amount": 42, "reason": "late delivery", "tags": []string{"a", "b"}})
	if _, err := f.v.Authenticate(req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := f.v.Authenticate(req)
		if err != nil {
			b.Fatal(err)
		}
		r := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "refund_order", Arguments: args},
			Extra: &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{Extra: map[string]any{"mandate.chain": c}}}}
		if _, err := handler(context.Background(), "tools/call", r); err != nil {
			b.Fatal(err)
		}
	}
}
