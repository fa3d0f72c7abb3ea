package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd(strings.NewReader(stdin), &out, io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestPolicyCheck(t *testing.T) {
	const dir, reqs = "../../testdata/policies", "../../testdata/policy-requests/"
	tests := []struct {
		name, request, dir, format, golden string
		denied                             bool
	}{
		{"allow", "delegate-reads-to-research.json", dir, "text", "policy-check-allow.txt", false},
		{"deny by a forbid", "delegate-write-to-research.json", dir, "text", "policy-check-deny.txt", true},
		{"deny as json", "delegate-write-to-research.json", dir, "json", "policy-check-deny.json", true},
		{"call policy", "call-orders-too-deep.json", dir + "/api", "text", "policy-check-call.txt", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, "", "policy", "check", "--request", reqs+tt.request, "--dir", tt.dir, "--format", tt.format)
			if tt.denied != errors.Is(err, errDenied) || (!tt.denied && err != nil) {
				t.Fatalf("err = %v", err)
			}
			golden(t, tt.golden, []byte(strings.ReplaceAll(out, dir, "testdata/policies")))
		})
	}
}

func TestPolicyCheckRefusesBadRequests(t *testing.T) {
	const dir = "../../testdata/policies"
	for name, req := range map[string]string{
		"typo in a field":     `{"principal": "a", "action": "mint", "resource": "a", "contxt": {}}`,
		"missing resource":    `{"principal": "a", "action": "mint"}`,
		"call on an agent":    `{"principal": "a", "action": "call", "resource": "b"}`,
		"entity without type": `{"principal": "a", "action": "call", "resource": {"id": "x"}}`,
		"not json":            `principal=a`,
	} {
		if _, err := runCLI(t, req, "policy", "check", "--request", "-", "--dir", dir); err == nil || errors.Is(err, errDenied) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := runCLI(t, "{}", "policy", "check", "--request", "-"); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Errorf("no directory: %v", err)
	}
}

func TestPolicyCheckTakesGroupsFromTheConfig(t *testing.T) {
	cfg := writeConfig(t, "policy: {dir: "+filepath.Join(mustAbs(t, "../../testdata/policies"))+"}\nclients:\n"+
		"  - {id: orchestrator, secret_hash: \""+testHash+"\", grants: [token_exchange], groups: [orchestrators]}\n"+
		"  - {id: researcher, secret_hash: \""+testHash+"\", grants: [token_exchange], groups: [research-agents]}\n")
	req := `{"principal": "orchestrator", "action": "delegate", "resource": "researcher", "context": {"scopes": ["db:read:x"], "depth": 1}}`
	out, err := runCLI(t, req, "--config", cfg, "policy", "check", "--request", "-")
	if err != nil || !strings.Contains(out, "decision  allow") {
		t.Errorf("groups from config: %v\n%s", err, out)
	}
}

// TestPolicyCheckKnowsEphemeralAgents: an unregistered "<owner>/<name>" takes
// its owner's ephemeral groups from the config, and the context's ephemeral
// and bound flags reach the policies.
func TestPolicyCheckKnowsEphemeralAgents(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("research") permit (principal, action == Action::"delegate", resource in Group::"research-agents");
@id("named") forbid (principal, action, resource) when { context.ephemeral && !(context.holder like "orchestrator/summarizer-*") };
@id("bound") forbid (principal, action, resource) when { !context.bound };`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "policy: {dir: "+dir+"}\nclients:\n"+
		"  - {id: orchestrator, secret_hash: \""+testHash+"\", grants: [token_exchange], scopes: [\"db:read:*\"], ephemeral: {scopes: [\"db:read:*\"], groups: [research-agents]}}\n")
	for _, tt := range []struct{ resource, context, want string }{
		{"orchestrator/summarizer-1", `"ephemeral": true, "bound": true`, "decision  allow"},
		{"orchestrator/mailer-1", `"ephemeral": true, "bound": true`, "named"},
		{"orchestrator/summarizer-1", `"ephemeral": true`, "bound"},
		{"someone-else/summarizer-1", `"bound": true`, "no policy permits"}, // not orchestrator's: no groups
	} {
		req := `{"principal": "orchestrator", "action": "delegate", "resource": "` + tt.resource + `", "context": {"scopes": ["db:read:x"], "depth": 1, ` + tt.context + `}}`
		out, _ := runCLI(t, req, "--config", cfg, "policy", "check", "--request", "-")
		if !strings.Contains(out, tt.want) {
			t.Errorf("%s {%s}: want %q in\n%s", tt.resource, tt.context, tt.want, out)
		}
	}
}

// TestPolicyCheckKnowsAudienceExchanges: a request file's
// context.audience_exchange reaches the policies, so an operator can test
// the rules for MCP servers' audience exchanges before deploying them.
func TestPolicyCheckKnowsAudienceExchanges(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("mcp") permit (principal, action == Action::"delegate", resource) when { context.audience_exchange && principal == resource };`), 0o600); err != nil {
		t.Fatal(err)
	}
	for context, want := range map[string]string{`"audience_exchange": true`: "decision  allow", `"audience_exchange": false`: "no policy permits"} {
		req := `{"principal": "mcp-orders", "action": "delegate", "resource": "mcp-orders", "context": {"scopes": ["orders:read:x"], "depth": 2, ` + context + `}}`
		out, _ := runCLI(t, req, "policy", "check", "--dir", dir, "--request", "-")
		if !strings.Contains(out, want) {
			t.Errorf("{%s}: want %q in\n%s", context, want, out)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
