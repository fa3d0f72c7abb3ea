package vectors

import (
	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/policy"
)

// MCPFile is an MCP decision vector file (testdata/vectors/README.md, "MCP
// files"): a policy set, the server's canonical URI, and MCP requests with
// the verdict every language's guard must reach.
type MCPFile struct {
	Comment  string       `json:"comment,omitempty"`
	Server   string       `json:"server"`
	Policies []CallPolicy `json:"policies"`
	Cases    []MCPCase    `json:"cases"`
}

// MCPCase is one MCP request made with a verified chain.
type MCPCase struct {
	Name   string    `json:"name"`
	Groups []string  `json:"groups"`
	Method string    `json:"method"`
	Params MCPParams `json:"params"`
	Chain  CallChain `json:"chain"`
	// Expect is allow, deny, insufficient_scope or invalid_arguments;
	// Policies the ids that determined an allow or deny (sorted).
	Expect   string   `json:"expect"`
	Policies []string `json:"policies"`
}

// MCPParams are the request's parameters: the tool or prompt name, the
// resource URI, and the arguments as their JSON text (verbatim: member
// order, duplicates and number spellings are the point).
type MCPParams struct {
	Name      string `json:"name,omitempty"`
	URI       string `json:"uri,omitempty"`
	Arguments string `json:"arguments,omitempty"`
}

// The verdicts of MCP cases besides allow and deny.
const (
	VerdictInsufficientScope = "insufficient_scope"
	VerdictInvalidArguments  = "invalid_arguments"
)

// RunMCP decides every case of f as chain/mcpguard does: the scope the
// request needs, then its arguments as a Cedar record, then the policy.
func RunMCP(f *MCPFile) ([]Result, error) {
	set, err := policySet(f.Policies)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(f.Cases))
	for _, c := range f.Cases {
		out = append(out, Result{Name: c.Name, Verdict: decideMCP(set, f.Server, c)})
	}
	return out, nil
}

// MCPPolicies returns, for each case of f, the policies that determined
// its decision (empty for a case refused before Cedar).
func MCPPolicies(f *MCPFile) ([][]string, error) {
	set, err := policySet(f.Policies)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(f.Cases))
	for i, c := range f.Cases {
		out[i] = []string{}
		if r, refused := mcpRequest(f.Server, c); refused == "" {
			out[i] = set.AuthorizeMCP(r).Policies
		}
	}
	return out, nil
}

// mcpRequest builds the request Cedar decides, or names the verdict that
// refuses it first: the scope, then the arguments.
func mcpRequest(server string, c MCPCase) (policy.MCPRequest, string) {
	r := policy.MCPRequest{Server: server, Method: c.Method, Name: c.Params.Name, URI: c.Params.URI}
	if s := r.RequiredScope(); s != "" && !chain.CoveredBy(c.Chain.Scopes, s) {
		return r, VerdictInsufficientScope
	}
	a, err := policy.ParseArguments([]byte(c.Params.Arguments))
	if err != nil {
		return r, VerdictInvalidArguments
	}
	r.Arguments, r.Call = a, c.Chain.request(c.Groups)
	return r, ""
}

func decideMCP(set *policy.Set, server string, c MCPCase) string {
	r, refused := mcpRequest(server, c)
	switch {
	case refused != "":
		return refused
	case set.AuthorizeMCP(r).Allow:
		return "allow"
	}
	return "deny"
}
