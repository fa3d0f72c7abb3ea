package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/policy"
)

// The demo's policy set (testdata/policies links to cmd/mandate/policies).
const demoPolicies = "../testdata/policies"

func demoSet(t testing.TB) *policy.Set {
	t.Helper()
	s, err := policy.LoadDir(demoPolicies)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	orch = []string{"orchestrators"}
	res  = []string{"research-agents"}
)

func TestTokenRequestDecisions(t *testing.T) {
	s := demoSet(t)
	base := func(mutate func(*policy.Request)) policy.Request {
		r := policy.Request{Principal: "orchestrator", PrincipalGroups: orch, Action: policy.ActionDelegate,
			Resource: "researcher", ResourceGroups: res, Subject: "orchestrator", Scopes: []string{"db:read:*"},
			Audiences: []string{"https://db.example"}, Depth: 1, Root: "task-1", TTL: 5 * time.Minute}
		if mutate != nil {
			mutate(&r)
		}
		return r
	}
	tests := []struct {
		name     string
		req      policy.Request
		allow    bool
		policies []string
	}{
		// mint
		{"orchestrator mints a task", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups, r.Depth, r.Root, r.Scopes = policy.ActionMint, "orchestrator", orch, 0, "", []string{"db:write:*"}
		}), true, []string{"agents-mint-own"}},
		{"agent mints a token for itself", base(func(r *policy.Request) {
			r.Principal, r.PrincipalGroups, r.Action, r.Resource, r.Depth = "db-agent", nil, policy.ActionMint, "db-agent", 0
		}), true, []string{"agents-mint-own"}},
		{"research agent mints writes for itself", base(func(r *policy.Request) {
			r.Principal, r.PrincipalGroups, r.Action, r.Resource, r.ResourceGroups, r.Depth, r.Scopes = "researcher", res, policy.ActionMint, "researcher", res, 0, []string{"db:write:x"}
		}), false, []string{"research-agents-no-own-writes"}},
		{"agent mints a token for another", base(func(r *policy.Request) {
			r.Action, r.Depth = policy.ActionMint, 0
		}), false, []string{}},
		// delegate: principal and resource groups
		{"orchestrator delegates reads to research", base(nil), true, []string{"orchestrators-delegate-to-research"}},
		{"orchestrator delegates a tool scope to research", base(func(r *policy.Request) { r.Scopes = []string{"db:read:*", "tools:search"} }), false, []string{}},
		{"orchestrator delegates db:* to research", base(func(r *policy.Request) { r.Scopes = []string{"db:*"} }), false, []string{"no-writes-to-research"}},
		{"orchestrator delegates * to research", base(func(r *policy.Request) { r.Scopes = []string{"*"} }), false, []string{"no-writes-to-research"}},
		{"orchestrator delegates to a non-research agent", base(func(r *policy.Request) { r.Resource, r.ResourceGroups = "mailer", nil }), false, []string{}},
		{"a non-orchestrator delegates to research", base(func(r *policy.Request) { r.Principal, r.PrincipalGroups = "intruder", nil }), false, []string{}},
		// scope_patterns: writes never reach research agents
		{"orchestrator delegates a write to research", base(func(r *policy.Request) { r.Scopes = []string{"db:write:orders"} }), false, []string{"no-writes-to-research"}},
		// scope_patterns_all: only db reads to the db-agent
		{"research delegates db reads to db-agent", base(func(r *policy.Request) {
			r.Principal, r.PrincipalGroups, r.Resource, r.ResourceGroups, r.Scopes, r.Depth = "researcher", res, "db-agent", nil, []string{"db:read:orders", "db:read:users"}, 2
		}), true, []string{"research-delegates-db-reads"}},
		{"research delegates a tool scope to db-agent", base(func(r *policy.Request) {
			r.Principal, r.PrincipalGroups, r.Resource, r.ResourceGroups, r.Scopes, r.Depth = "researcher", res, "db-agent", nil, []string{"db:read:orders", "tools:search"}, 2
		}), false, []string{"db-agent-reads-only"}},
		// depth
		{"write at depth 1", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups, r.Scopes = policy.ActionDownscope, "orchestrator", orch, []string{"db:write:orders"}
		}), true, []string{"agents-downscope"}},
		{"write below depth 1", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups, r.Scopes, r.Depth = policy.ActionDownscope, "orchestrator", orch, []string{"db:write:orders"}, 2
		}), false, []string{"no-writes-below-depth-1"}},
		{"a longer write scope below depth 1", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups, r.Scopes, r.Depth = policy.ActionDownscope, "orchestrator", orch, []string{"db:write:orders:archive"}, 2
		}), false, []string{"no-writes-below-depth-1"}},
		{"a wildcard that grants writes below depth 1", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups, r.Scopes, r.Depth = policy.ActionDownscope, "orchestrator", orch, []string{"db:*"}, 3
		}), false, []string{"no-writes-below-depth-1"}},
		{"db-agent mints a tool scope for itself", base(func(r *policy.Request) {
			r.Principal, r.PrincipalGroups, r.Action, r.Resource, r.ResourceGroups, r.Depth, r.Scopes = "db-agent", nil, policy.ActionMint, "db-agent", nil, 0, []string{"db:read:*", "tools:search"}
		}), false, []string{"db-agent-reads-only"}},
		// downscope and ttl_seconds
		{"downscope for oneself", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups = policy.ActionDownscope, "orchestrator", orch
		}), true, []string{"agents-downscope"}},
		{"downscope with a long ttl", base(func(r *policy.Request) {
			r.Action, r.Resource, r.ResourceGroups, r.TTL = policy.ActionDownscope, "orchestrator", orch, time.Hour
		}), false, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := s.Decide(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow || !reflect.DeepEqual(d.Policies, tt.policies) {
				t.Fatalf("decision %+v, want allow=%v policies=%v", d, tt.allow, tt.policies)
			}
			if !tt.allow && len(tt.policies) == 0 && d.Reason != policy.NoPolicyPermits {
				t.Errorf("reason = %q", d.Reason)
			}
		})
	}
}

// TestEveryContextAttribute writes one policy per attribute and checks it
// both allows and denies.
func TestEveryContextAttribute(t *testing.T) {
	req := policy.Request{Principal: "a", Action: policy.ActionDelegate, Resource: "a/researcher-7f3a", Subject: "alice",
		Scopes: []string{"db:read:orders"}, Audiences: []string{"https://db.example"}, Depth: 2,
		Actors: []string{"x", "y"}, Root: "task-1", TTL: 90 * time.Second, Ephemeral: true, Bound: true, AudienceExchange: true}
	tests := map[string]string{
		"subject":            `context.subject == "alice"`,
		"scopes":             `context.scopes.contains("db:read:orders")`,
		"scope_patterns":     `context.scope_patterns.contains("*:read:*")`,
		"scope_patterns_all": `context.scope_patterns_all.contains("db:read:*")`,
		"audiences":          `context.audiences.contains("https://db.example")`,
		"depth":              `context.depth == 2`,
		"actors":             `context.actors.containsAll(["x", "y"])`,
		"root":               `context.root == "task-1"`,
		"ttl_seconds":        `context.ttl_seconds == 90`,
		"holder":             `context.holder like "a/researcher-*"`,
		"ephemeral":          `context.ephemeral`,
		"bound":              `context.bound`,
		"audience_exchange":  `context.audience_exchange`,
	}
	for attr, cond := range tests {
		s, err := policy.Parse(policy.File{Name: attr + ".cedar", Source: []byte(`permit (principal, action, resource) when { ` + cond + ` };`)})
		if err != nil {
			t.Fatalf("%s: %v", attr, err)
		}
		if d, _ := s.Decide(context.Background(), req); !d.Allow || d.Policies[0] != attr+".cedar:1" {
			t.Errorf("%s: %+v", attr, d)
		}
		other := req
		other.Subject, other.Scopes, other.Audiences, other.Depth, other.Actors, other.Root, other.TTL = "bob", []string{"mail:send"}, nil, 3, []string{"x"}, "task-2", time.Minute
		other.Resource, other.Ephemeral, other.Bound, other.AudienceExchange = "a/mailer-1", false, false, false
		if d, _ := s.Decide(context.Background(), other); d.Allow {
			t.Errorf("%s: allowed a request without the attribute's value", attr)
		}
	}
}

func TestCallDecisions(t *testing.T) {
	s, err := policy.LoadDir(filepath.Join(demoPolicies, "api"))
	if err != nil {
		t.Fatal(err)
	}
	call := policy.CallRequest{Holder: "db-agent", Resource: policy.Entity{Type: "Table", ID: "orders"},
		Subject: "orchestrator", Actors: []string{"db-agent", "researcher"}, Depth: 2, Scopes: []string{"db:read:*"}}
	if d := s.AuthorizeCall(call); !d.Allow || d.Policies[0] != "orders-read" {
		t.Errorf("read orders: %+v", d)
	}
	deep := call
	deep.Depth = 4
	if d := s.AuthorizeCall(deep); d.Allow || d.Policies[0] != "orders-depth-limit" {
		t.Errorf("depth 4: %+v", d)
	}
	other := call
	other.Resource.ID = "users"
	if d := s.AuthorizeCall(other); d.Allow || d.Reason != policy.NoPolicyPermits {
		t.Errorf("another table: %+v", d)
	}
	noScope := call
	noScope.Scopes = []string{"tools:search"}
	if d := s.AuthorizeCall(noScope); d.Allow {
		t.Errorf("no read scope: %+v", d)
	}
}

func TestEvaluationErrorsDenyNamingThePolicy(t *testing.T) {
	s, err := policy.Parse(policy.File{Name: "p.cedar", Source: []byte(`
@id("allow-all") permit (principal, action, resource);
@id("broken-forbid") forbid (principal, action, resource) when { context.no_such_attribute == 1 };`)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.Decide(context.Background(), policy.Request{Principal: "a", Action: policy.ActionMint, Resource: "a"})
	if d.Allow || !reflect.DeepEqual(d.Policies, []string{"broken-forbid"}) || !strings.Contains(d.Reason, "failed to evaluate") {
		t.Fatalf("an erroring forbid must deny: %+v", d)
	}
}

func TestLoadErrors(t *testing.T) {
	write := func(files map[string]string) string {
		dir := t.TempDir()
		for n, src := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"parse error names file, line and column", map[string]string{"a.cedar": "permit (principal, action, resource);\n\npermit (principal action, resource);"}, "a.cedar:3:"},
		{"duplicate ids", map[string]string{"a.cedar": `@id("x") permit (principal, action, resource);`, "b.cedar": `@id("x") forbid (principal, action, resource);`}, `id "x"`},
		{"no files", map[string]string{"readme.txt": "x"}, "no *.cedar files"},
		{"files without policies", map[string]string{"a.cedar": "// nothing yet\n"}, "holds no policy"},
		{"one emptied file among others", map[string]string{"a.cedar": `permit (principal, action, resource);`, "b.cedar": "\n"}, "b.cedar holds no policy"},
	}
	for _, tt := range tests {
		_, err := policy.LoadDir(write(tt.files))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

func TestPolicyIDs(t *testing.T) {
	s := demoSet(t)
	ids := s.IDs()
	if len(ids) != 8 {
		t.Errorf("ids = %v", ids)
	}
	if p := s.Position("no-writes-to-research"); !strings.HasSuffix(p, "guardrails.cedar:5") {
		t.Errorf("position = %q", p)
	}
	anon, _ := policy.Parse(policy.File{Name: "dir/anon.cedar", Source: []byte("\n\npermit (principal, action, resource);")})
	if ids := anon.IDs(); !reflect.DeepEqual(ids, []string{"anon.cedar:3"}) {
		t.Errorf("anonymous policy id = %v, want FILE:LINE", ids)
	}
}
