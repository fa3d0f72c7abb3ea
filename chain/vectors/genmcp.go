package vectors

import (
	"strings"

	"github.com/mandate-auth/mandate/policy"
)

const mcpServer = "https://mcp.orders.example/mcp"

// mcpPolicies are the orders MCP server's rules: research agents search,
// and refund below 100 only at depth 1; nobody refunds order o-7; prices
// are decimals; a prompt and a resource; a forbid that fails to evaluate.
const mcpPolicies = `@id("research-search")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"search_orders");

@id("research-refund-small")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_order")
when { context.depth == 1 && context.arguments has amount && context.arguments.amount < 100 && context.server == "https://mcp.orders.example/mcp" };

@id("no-refunds-for-o-7")
forbid (principal, action == Action::"tools/call", resource == Tool::"refund_order")
when { context.arguments has order && context.arguments.order == "o-7" };

@id("price-below-10.5")
permit (principal, action == Action::"tools/call", resource == Tool::"set_price")
when { context.arguments.price.lessThan(decimal("10.5")) };

@id("tagged")
permit (principal, action == Action::"tools/call", resource == Tool::"tag")
when { context.arguments.tags.contains("ok") && context.arguments.meta.level.deep == true && context.arguments.note like "*é*" };

@id("docs")
permit (principal, action == Action::"resources/read", resource)
when { resource == Resource::"file:///docs/readme.md" && context.scope_patterns.contains("resources:read") };

@id("summaries")
permit (principal, action == Action::"prompts/get", resource == Prompt::"summarize")
when { context.arguments.style == "short" && context.bound };

@id("complete-for-orchestrators")
permit (principal in Group::"orchestrators", action == Action::"completion/complete", resource == Server::"https://mcp.orders.example/mcp");

@id("sizes-need-clearance")
forbid (principal, action == Action::"tools/call", resource == Tool::"set_price")
when { context.arguments.price.lessThan(decimal("0.0")) && context.clearance < 3 };
`

// mcpVectors are MCP decisions: the scope each method needs, the Cedar
// model (actions, resources, the chain, server and arguments in the
// context), and above all the arguments rule — every number, string and
// structure the three languages must turn into the same Cedar value, or
// refuse alike.
func mcpVectors() *MCPFile {
	ch := func(depth int, scopes ...string) CallChain {
		actors, lineage, root := []string{}, lineageOf(depth), "task-1"
		if depth > 0 {
			actors = []string{"orchestrator/research-1", "orchestrator"}[:min(depth, 2)]
			root = lineage[0]
		}
		return CallChain{Subject: "orchestrator", SubjectIssuer: vecIssuer, Holder: "orchestrator/research-1", Actors: actors, Depth: depth,
			Scopes: scopes, Audiences: []string{mcpServer}, Root: root, Lineage: lineage}
	}
	res := []string{"research-agents"}
	tool := func(name, args string) MCPParams { return MCPParams{Name: name, Arguments: args} }
	c := func(name string, groups []string, method string, p MCPParams, chain CallChain, expect string, policies ...string) MCPCase {
		if groups == nil {
			groups = []string{}
		}
		if policies == nil {
			policies = []string{}
		}
		return MCPCase{Name: name, Groups: groups, Method: method, Params: p, Chain: chain, Expect: expect, Policies: policies}
	}
	all := ch(1, "tools:*", "resources:read", "prompts:get")
	bound := all
	bound.Bound = true
	cases := []MCPCase{
		c("allow: a research agent searches", res, "tools/call", tool("search_orders", `{"q":"late"}`), all, "allow", "research-search"),
		c("allow: no arguments at all", res, "tools/call", tool("search_orders", ``), all, "allow", "research-search"),
		c("allow: arguments null", res, "tools/call", tool("search_orders", `null`), all, "allow", "research-search"),
		c("deny: not a research agent", nil, "tools/call", tool("search_orders", `{}`), all, "deny"),
		c("allow: a refund of 99 at depth 1", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":99}`), all, "allow", "research-refund-small"),
		c("deny: a refund of 100", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":100}`), all, "deny"),
		c("deny: a refund of 99 at depth 2", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":99}`), ch(2, "tools:*"), "deny"),
		c("deny: a refund without an amount", res, "tools/call", tool("refund_order", `{"order":"o-1"}`), all, "deny"),
		c("deny: a forbid names its policy", res, "tools/call", tool("refund_order", `{"order":"o-7","amount":1}`), all, "deny", "no-refunds-for-o-7"),
		c("deny: an amount as a string fails to evaluate, so denies", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":"5"}`), all, "deny", "research-refund-small"),
		c("allow: 99.0 is the Long 99", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":99.0}`), all, "allow", "research-refund-small"),
		c("allow: 9.9e1 is the Long 99", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":9.9e1}`), all, "allow", "research-refund-small"),
		c("allow: -0 is the Long 0", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":-0}`), all, "allow", "research-refund-small"),
		c("deny: 99.5 is a decimal, which < cannot compare with a Long", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":99.5}`), all, "deny", "research-refund-small"),
		c("allow: a Long of -2^53", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":-9007199254740992}`), all, "allow", "research-refund-small"),
		c("invalid: a Long beyond -2^53 (and beyond a decimal)", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":-9007199254740993}`), all, "invalid_arguments"),
		c("allow: a price of 10.4999", nil, "tools/call", tool("set_price", `{"price":10.4999}`), all, "allow", "price-below-10.5"),
		c("deny: 1.25e1 is the decimal 12.5, not below 10.5", nil, "tools/call", tool("set_price", `{"price":1.25e1}`), all, "deny"),
		c("deny: a price of 10.5", nil, "tools/call", tool("set_price", `{"price":10.50}`), all, "deny"),
		c("deny: an integral price is a Long, and lessThan needs a decimal", nil, "tools/call", tool("set_price", `{"price":10}`), all, "deny", "price-below-10.5", "sizes-need-clearance"),
		c("deny: an erroring forbid denies (a negative price, no clearance)", nil, "tools/call", tool("set_price", `{"price":-0.5}`), all, "deny", "sizes-need-clearance"),
		c("invalid: five fractional digits", nil, "tools/call", tool("set_price", `{"price":10.49999}`), all, "invalid_arguments"),
		c("invalid: 1e-5", nil, "tools/call", tool("set_price", `{"price":1e-5}`), all, "invalid_arguments"),
		c("deny: the largest decimal is a decimal, not below 10.5", nil, "tools/call", tool("set_price", `{"price":922337203685477.5807}`), all, "deny"),
		c("invalid: below the smallest decimal", nil, "tools/call", tool("set_price", `{"price":-922337203685477.5808e0}`), all, "invalid_arguments"),
		c("allow: sets, nested records, an escaped é", nil, "tools/call", tool("tag", `{"tags":["no","ok","ok"],"meta":{"level":{"deep":true}},"note":"caf\u00e9"}`), all, "allow", "tagged"),
		c("allow: a string with a surrogate pair", nil, "tools/call", tool("tag", `{"tags":["ok"],"meta":{"level":{"deep":true}},"note":"é \ud83d\ude00"}`), all, "allow", "tagged"),
		c("invalid: a lone high surrogate", nil, "tools/call", tool("tag", `{"tags":["ok"],"meta":{"level":{"deep":true}},"note":"é\ud83d"}`), all, "invalid_arguments"),
		c("invalid: a lone low surrogate", nil, "tools/call", tool("tag", `{"tags":["ok"],"meta":{"level":{"deep":true}},"note":"é\ude00"}`), all, "invalid_arguments"),
		c("allow: an escaped backslash before u is no escape", nil, "tools/call", tool("tag", `{"tags":["ok"],"meta":{"level":{"deep":true}},"note":"é\\ud83d"}`), all, "allow", "tagged"),
		c("invalid: null inside", nil, "tools/call", tool("tag", `{"tags":["ok",null]}`), all, "invalid_arguments"),
		c("invalid: a member twice", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":500,"amount":5}`), all, "invalid_arguments"),
		c("invalid: a member in two cases", res, "tools/call", tool("refund_order", `{"order":"o-1","amount":5,"AMOUNT":500}`), all, "invalid_arguments"),
		c("invalid: ſ folds onto s", res, "tools/call", tool("search_orders", `{"s":1,"ſ":2}`), all, "invalid_arguments"),
		c("invalid: the Kelvin sign folds onto k", res, "tools/call", tool("search_orders", `{"k":1,"K":2}`), all, "invalid_arguments"),
		c("invalid: a record that Cedar's JSON reads as an extension value", res, "tools/call", tool("search_orders", `{"q":{"__extn":{"fn":"decimal","arg":"1.0"}}}`), all, "invalid_arguments"),
		c("invalid: a record that Cedar's JSON reads as an entity", res, "tools/call", tool("search_orders", `{"__entity":{"type":"Agent","id":"orchestrator"}}`), all, "invalid_arguments"),
		c("invalid: a record that Cedar's JSON reads as an expression", res, "tools/call", tool("search_orders", `{"q":[{"__expr":"x"}]}`), all, "invalid_arguments"),
		c("allow: __extn beside another member is a record", res, "tools/call", tool("search_orders", `{"q":{"__extn":1,"fn":2}}`), all, "allow", "research-search"),
		c("allow: é and É are two members", res, "tools/call", tool("search_orders", `{"é":1,"É":2}`), all, "allow", "research-search"),
		c("allow: the same name in two objects", res, "tools/call", tool("search_orders", `{"a":1,"b":{"a":2}}`), all, "allow", "research-search"),
		c("invalid: arguments an array", res, "tools/call", tool("search_orders", `[1]`), all, "invalid_arguments"),
		c("invalid: arguments a string", res, "tools/call", tool("search_orders", `"q"`), all, "invalid_arguments"),
		c("allow: JSON's white space around the arguments", res, "tools/call", tool("search_orders", " \t\r\n{} \n"), all, "allow", "research-search"),
		c("invalid: a no-break space around the arguments is not JSON's white space", res, "tools/call", tool("search_orders", "\u00a0{}"), all, "invalid_arguments"),
		c("invalid: a vertical tab around the arguments is not JSON's white space", res, "tools/call", tool("search_orders", "{}\v"), all, "invalid_arguments"),
		c("invalid: data after the arguments", res, "tools/call", tool("search_orders", `{} {}`), all, "invalid_arguments"),
		c("allow: 8 levels", res, "tools/call", tool("search_orders", `{"a":[[[[[[[1]]]]]]]}`), all, "allow", "research-search"),
		c("invalid: 9 levels", res, "tools/call", tool("search_orders", `{"a":[[[[[[[[1]]]]]]]]}`), all, "invalid_arguments"),
		c("allow: 64 KiB of arguments", res, "tools/call", tool("search_orders", `{"q":"`+strings.Repeat("x", policy.MaxArgumentsBytes-8)+`"}`), all, "allow", "research-search"),
		c("invalid: 64 KiB and a byte", res, "tools/call", tool("search_orders", `{"q":"`+strings.Repeat("x", policy.MaxArgumentsBytes-7)+`"}`), all, "invalid_arguments"),
		c("insufficient_scope: tools:search_orders does not cover refund_order", res, "tools/call", tool("refund_order", `{"amount":1}`), ch(1, "tools:search_orders"), "insufficient_scope"),
		c("insufficient_scope: before the arguments are read", res, "tools/call", tool("refund_order", `{"amount":null}`), ch(1, "db:read:*"), "insufficient_scope"),
		c("allow: tools:refund_order itself", res, "tools/call", tool("refund_order", `{"amount":1}`), ch(1, "tools:refund_order"), "allow", "research-refund-small"),
		c("insufficient_scope: a look-alike colon", res, "tools/call", tool("search_orders", `{}`), ch(1, "tools\ua789search_orders"), "insufficient_scope"),
		c("allow: a resource read", nil, "resources/read", MCPParams{URI: "file:///docs/readme.md"}, all, "allow", "docs"),
		c("deny: another resource", nil, "resources/read", MCPParams{URI: "file:///etc/passwd"}, all, "deny"),
		c("insufficient_scope: a read without resources:read", nil, "resources/read", MCPParams{URI: "file:///docs/readme.md"}, ch(1, "tools:*"), "insufficient_scope"),
		c("allow: a prompt with a bound token", nil, "prompts/get", MCPParams{Name: "summarize", Arguments: `{"style":"short"}`}, bound, "allow", "summaries"),
		c("deny: the prompt with a bearer token", nil, "prompts/get", MCPParams{Name: "summarize", Arguments: `{"style":"short"}`}, all, "deny"),
		c("insufficient_scope: a prompt without prompts:get", nil, "prompts/get", MCPParams{Name: "summarize", Arguments: `{"style":"short"}`}, ch(1, "tools:*"), "insufficient_scope"),
		c("allow: another method, decided on the server", []string{"orchestrators"}, "completion/complete", MCPParams{}, ch(0, "tools:*"), "allow", "complete-for-orchestrators"),
		c("deny: another method, for another group", res, "completion/complete", MCPParams{}, all, "deny"),
	}
	return &MCPFile{Comment: "MCP decisions (docs/mcp.md): the scope a method needs, then the arguments as a Cedar record, then the policy; any evaluation error denies.",
		Server: mcpServer, Policies: []CallPolicy{{Name: "orders-mcp.cedar", Source: mcpPolicies}}, Cases: cases}
}
