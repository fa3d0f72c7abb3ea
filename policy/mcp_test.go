package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	cedartypes "github.com/cedar-policy/cedar-go/types"

	"github.com/mandate-auth/mandate/policy"
)

// The refund rule of the issue: research agents may search orders, and
// refund below 100, only at depth 1.
const mcpPolicies = `
@id("search")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"search_orders");

@id("refund-small-at-depth-1")
permit (principal in Group::"research-agents", action == Action::"tools/call", resource == Tool::"refund_order")
when { context.depth == 1 && context.arguments has amount && context.arguments.amount < 100 };

@id("refund-decimal")
permit (principal, action == Action::"tools/call", resource == Tool::"pay")
when { context.arguments.amount.lessThan(decimal("10.5")) && context.server == "https://mcp.example/mcp" };

@id("nested")
permit (principal, action == Action::"tools/call", resource == Tool::"deep")
when { context.arguments.a.b.c == "x" && context.arguments.tags.contains("ok") };

@id("read-docs")
permit (principal, action == Action::"resources/read", resource)
when { resource == Resource::"file:///docs/readme.md" };

@id("prompt")
permit (principal, action == Action::"prompts/get", resource == Prompt::"summarize")
when { context.arguments.style == "short" };
`

func mcpSet(t *testing.T) *policy.Set {
	t.Helper()
	s, err := policy.Parse(policy.File{Name: "mcp.cedar", Source: []byte(mcpPolicies)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func args(t *testing.T, raw string) policy.Arguments {
	t.Helper()
	a, err := policy.ParseArguments([]byte(raw))
	if err != nil {
		t.Fatalf("ParseArguments(%s): %v", raw, err)
	}
	return a
}

func TestMCPDecisions(t *testing.T) {
	s := mcpSet(t)
	call := policy.CallRequest{Holder: "orchestrator/research-1", Groups: []string{"research-agents"}, Subject: "orchestrator",
		Depth: 1, Scopes: []string{"tools:*"}, Audiences: []string{"https://mcp.example/mcp"}, Root: "r", Lineage: []string{"r"}}
	deeper := call
	deeper.Depth = 2
	stranger := call
	stranger.Groups = nil
	for _, tt := range []struct {
		name     string
		req      policy.MCPRequest
		allow    bool
		policies []string
	}{
		{"search", policy.MCPRequest{Call: call, Method: "tools/call", Name: "search_orders"}, true, []string{"search"}},
		{"refund below 100 at depth 1", policy.MCPRequest{Call: call, Method: "tools/call", Name: "refund_order", Arguments: args(t, `{"order":"o-1","amount":99}`)}, true, []string{"refund-small-at-depth-1"}},
		{"refund of 100", policy.MCPRequest{Call: call, Method: "tools/call", Name: "refund_order", Arguments: args(t, `{"order":"o-1","amount":100}`)}, false, []string{}},
		{"refund below 100 at depth 2", policy.MCPRequest{Call: deeper, Method: "tools/call", Name: "refund_order", Arguments: args(t, `{"amount":5}`)}, false, []string{}},
		{"refund without an amount", policy.MCPRequest{Call: call, Method: "tools/call", Name: "refund_order"}, false, []string{}},
		{"refund with an amount as a string errs, so denies", policy.MCPRequest{Call: call, Method: "tools/call", Name: "refund_order", Arguments: args(t, `{"amount":"5"}`)}, false, []string{"refund-small-at-depth-1"}},
		{"not a research agent", policy.MCPRequest{Call: stranger, Method: "tools/call", Name: "search_orders"}, false, []string{}},
		{"a decimal amount", policy.MCPRequest{Call: call, Server: "https://mcp.example/mcp", Method: "tools/call", Name: "pay", Arguments: args(t, `{"amount":10.25}`)}, true, []string{"refund-decimal"}},
		{"a decimal amount on another server", policy.MCPRequest{Call: call, Server: "https://other.example/mcp", Method: "tools/call", Name: "pay", Arguments: args(t, `{"amount":10.25}`)}, false, []string{}},
		{"nested records and sets", policy.MCPRequest{Call: call, Method: "tools/call", Name: "deep", Arguments: args(t, `{"a":{"b":{"c":"x"}},"tags":["ok","no"]}`)}, true, []string{"nested"}},
		{"a resource", policy.MCPRequest{Call: call, Method: "resources/read", URI: "file:///docs/readme.md"}, true, []string{"read-docs"}},
		{"another resource", policy.MCPRequest{Call: call, Method: "resources/read", URI: "file:///etc/passwd"}, false, []string{}},
		{"a prompt", policy.MCPRequest{Call: call, Method: "prompts/get", Name: "summarize", Arguments: args(t, `{"style":"short"}`)}, true, []string{"prompt"}},
		{"another method decides on the server", policy.MCPRequest{Call: call, Server: "https://mcp.example/mcp", Method: "completion/complete"}, false, []string{}},
	} {
		d := s.AuthorizeMCP(tt.req)
		if d.Allow != tt.allow || !reflect.DeepEqual(d.Policies, tt.policies) {
			t.Errorf("%s: %+v, want allow=%v policies=%v", tt.name, d, tt.allow, tt.policies)
		}
	}
	var nilSet *policy.Set
	if nilSet.AuthorizeMCP(policy.MCPRequest{Call: call, Method: "tools/call", Name: "search_orders"}).Allow {
		t.Error("a nil set allowed")
	}
}

func TestMCPTarget(t *testing.T) {
	for _, tt := range []struct {
		r      policy.MCPRequest
		action policy.Action
		res    policy.Entity
	}{
		{policy.MCPRequest{Method: "tools/call", Name: "t"}, "tools/call", policy.Entity{Type: "Tool", ID: "t"}},
		{policy.MCPRequest{Method: "resources/read", URI: "u"}, "resources/read", policy.Entity{Type: "Resource", ID: "u"}},
		{policy.MCPRequest{Method: "prompts/get", Name: "p"}, "prompts/get", policy.Entity{Type: "Prompt", ID: "p"}},
		{policy.MCPRequest{Method: "resources/subscribe", Server: "s"}, "resources/subscribe", policy.Entity{Type: "Server", ID: "s"}},
	} {
		a, e := tt.r.Target()
		if a != tt.action || e != tt.res {
			t.Errorf("%+v: %s %+v", tt.r, a, e)
		}
	}
}

// TestArgumentsRefuseWhatLanguagesReadApart: every value without one
// reading in Go, Python and TypeScript (or in Cedar) is refused, and the
// bounds hold to the byte and the level.
func TestArgumentsRefuseWhatLanguagesReadApart(t *testing.T) {
	nest := func(n int) string { return strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1) }
	big := func(n int) string { return `{"s":"` + strings.Repeat("x", n-len(`{"s":""}`)) + `"}` }
	for _, raw := range []string{
		`{"a":null}`, `{"a":[1,null]}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `{"__extn":{"fn":"decimal","arg":"1.0"}}`, `{"a":{"__entity":{"type":"User","id":"x"}}}`, `{"a":[{"__expr":1}]}`, `{"amount":5,"AMOUNT":500}`, `{"sum":1,"\u017fum":2}`, `{"k":1,"\u212a":2}`, `{"x":{"Ab":1,"aB":2}}`, `{"a":1.23456}`, `{"a":1e-5}`,
		`{"a":9007199254740993}`, `{"a":1e400}`, `{"a":922337203685477.5808}`, `{"a":"\ud800"}`, `{"a":"\udc00x"}`,
		`{"a":"\ud800\u0041"}`, "{\"a\":\"\xff\"}", `[1]`, `"s"`, `1`, `true`, `{"a":1} {}`, "\u00a0{}", "{}\v", `{"a":1`, `{"a":01}`,
		nest(policy.MaxArgumentsDepth + 1), `{"a":[[[[[[[[1]]]]]]]]}`, big(policy.MaxArgumentsBytes + 1),
	} {
		if _, err := policy.ParseArguments([]byte(raw)); !errors.Is(err, policy.ErrArguments) {
			t.Errorf("ParseArguments(%.60s) = %v, want ErrArguments", raw, err)
		}
	}
	for _, raw := range []string{
		``, `null`, `{}`, ` {"a":1} `, "\t\r\n{}\n", `{"a":-0}`, `{"a":1.0}`, `{"a":1e3}`, `{"a":9007199254740992}`, `{"a":-9007199254740992}`,
		`{"a":1.5}`, `{"a":0.0001}`, `{"a":922337203685477.5807}`, `{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `{"a":[1,"x",true,{"b":[]}]}`, `{"a":1,"b":{"a":2}}`, `{"é":1,"É":2}`, `{"__extn":1,"b":2}`, `{"__extnx":1}`,
		nest(policy.MaxArgumentsDepth), `{"a":[[[[[[[1]]]]]]]}`, big(policy.MaxArgumentsBytes),
	} {
		if _, err := policy.ParseArguments([]byte(raw)); err != nil {
			t.Errorf("ParseArguments(%.60s) = %v, want a record", raw, err)
		}
	}
}

// reference converts JSON to the Cedar value ParseArguments must give, the
// slow way: encoding/json's decoder, then the same conversion rules.
func reference(t *testing.T, raw []byte) cedar.Value {
	if raw = bytes.Trim(raw, " \t\n\r"); len(raw) == 0 {
		return cedar.NewRecord(nil)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json refuses what ParseArguments accepted: %q: %v", raw, err)
	}
	var conv func(any) cedar.Value
	conv = func(v any) cedar.Value {
		switch x := v.(type) {
		case map[string]any:
			m := cedar.RecordMap{}
			for k, e := range x {
				m[cedar.String(k)] = conv(e)
			}
			return cedar.NewRecord(m)
		case []any:
			items := make([]cedar.Value, len(x))
			for i, e := range x {
				items[i] = conv(e)
			}
			return cedar.NewSet(items...)
		case string:
			return cedar.String(x)
		case bool:
			return cedar.Boolean(x)
		case json.Number:
			r, _ := new(big.Rat).SetString(string(x))
			if r.IsInt() {
				return cedar.Long(r.Num().Int64())
			}
			d, err := cedartypes.ParseDecimal(r.FloatString(4))
			if err != nil {
				t.Fatalf("%s: %v", x, err)
			}
			return d
		}
		t.Fatalf("unexpected %T in %q", v, raw)
		return nil
	}
	if v == nil {
		return cedar.NewRecord(nil)
	}
	return conv(v)
}

func FuzzParseArguments(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":[1,"x",{"b":1.25}]}`, `{"a":"\ud83d\ude00"}`, `{"a":1,"a":2}`, `{"a":null}`} {
		f.Add([]byte(s))
	}
	s, err := policy.Parse(policy.File{Name: "p.cedar", Source: []byte(`permit (principal, action, resource) when { context.arguments has a && context.arguments.a == 1 };`)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := policy.ParseArguments(raw)
		if err != nil {
			if !errors.Is(err, policy.ErrArguments) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		s.AuthorizeMCP(policy.MCPRequest{Method: "tools/call", Name: "t", Arguments: a}) // never panics
		if want := reference(t, raw); !a.Record().Equal(want) {
			t.Fatalf("%q: %s, encoding/json reads %s", raw, a.Record().MarshalCedar(), want.MarshalCedar())
		}
	})
}
