package httpapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
)

// policyClients is the default cast with registrations wide enough that
// policy, not registration, is what refuses: an orchestrator holding db:*, a
// research agent that could be given writes, and a db-agent that could be
// given tools.
func policyClients() []dt.Client {
	cs := dt.DefaultClients()
	for i := range cs {
		switch cs[i].ID {
		case "db-agent":
			cs[i].Scopes = []string{"db:read:*", "tools:search"}
		case "orchestrator":
			cs[i].Scopes = []string{"db:*", "tools:*"}
		}
	}
	return append(cs, dt.Client{ID: "analyst", Grants: dt.Both, Scopes: []string{"db:*"},
		Audiences: []string{"https://db.example"}, Groups: []string{"research-agents"}})
}

// policyChain builds the demo's chain as the demo policies want it: reads
// only to the researcher, and the db-agent naming itself with a read scope.
func policyChain(t *testing.T, env *dt.Env) (root, child, grand string) {
	t.Helper()
	root = env.Mint(t, "orchestrator", nil)
	child = env.Delegate(t, "orchestrator", root, "researcher", url.Values{"scope": {"db:read:*"}})
	db := env.Identity(t, "db-agent")
	r := env.Exchange(t, "researcher", child, db, url.Values{"scope": {"db:read:orders"}, "audience": {"https://db.example"}})
	if r.Status != 200 {
		t.Fatalf("grandchild: %d %s", r.Status, r.Raw)
	}
	return root, child, r.String("access_token")
}

// TestPolicyDecidesEveryTokenRequest runs the demo policy set in the exchange
// path of a real server: the demo's chain is permitted, and each refusal names
// the policy that determined it.
func TestPolicyDecidesEveryTokenRequest(t *testing.T) {
	env := dt.New(t, dt.Options{PolicyDir: "../../testdata/policies", Clients: policyClients()})
	root, _, _ := policyChain(t, env) // mints and two delegations: all permitted
	dbID := env.Identity(t, "db-agent")
	analystID := env.Identity(t, "analyst")
	tests := []struct {
		name   string
		do     func() dt.Response
		policy string
	}{
		{"write scope to a research agent", func() dt.Response {
			return env.Exchange(t, "orchestrator", root, analystID, url.Values{"scope": {"db:write:orders"}})
		}, `"no-writes-to-research"`},
		{"a research agent minting writes for itself", func() dt.Response {
			return env.Post(t, "token_endpoint", "analyst", url.Values{"grant_type": {oauth.GrantClientCredentials}})
		}, `"research-agents-no-own-writes"`},
		{"a tool scope to a research agent", func() dt.Response {
			return env.Exchange(t, "orchestrator", root, env.Identity(t, "researcher"), url.Values{"scope": {"tools:search"}})
		}, policy.NoPolicyPermits},
		{"a wildcard that grants writes to a research agent", func() dt.Response {
			return env.Exchange(t, "orchestrator", root, analystID, url.Values{"scope": {"db:*"}})
		}, `"no-writes-to-research"`},
		{"the db-agent minting a tool scope for itself", func() dt.Response {
			return env.Post(t, "token_endpoint", "db-agent", url.Values{"grant_type": {oauth.GrantClientCredentials}})
		}, `"db-agent-reads-only"`},
		{"a tool scope to the db-agent", func() dt.Response {
			return env.Exchange(t, "orchestrator", root, dbID, url.Values{"scope": {"tools:search"}})
		}, `"db-agent-reads-only"`},
		{"a write below depth 1", func() dt.Response {
			d := env.Delegate(t, "orchestrator", root, "", url.Values{"scope": {"db:write:orders"}})
			return env.Exchange(t, "orchestrator", d, "", nil)
		}, `"no-writes-below-depth-1"`},
		{"an agent outside every group delegating", func() dt.Response {
			return env.Exchange(t, "outsider", env.Mint(t, "outsider", nil), dbID, url.Values{"scope": {"db:read:x"}})
		}, policy.NoPolicyPermits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.do()
			expectError(t, r, 400, oauth.CodeInvalidRequest)
			if !strings.Contains(r.String("error_description"), tt.policy) {
				t.Errorf("description %q does not name %s", r.String("error_description"), tt.policy)
			}
		})
	}
}

func TestAPolicyThatFailsToEvaluateDenies(t *testing.T) {
	s := []policy.File{{Name: "p.cedar", Source: []byte(`
@id("everyone") permit (principal, action, resource);
@id("typo") forbid (principal, action, resource) when { context.dept > 3 };`)}}
	_, err := policy.Parse(s...)
	if err != nil {
		t.Fatal(err)
	}
	env := dt.New(t, dt.Options{Policies: s})
	r := env.Post(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), `"typo" failed to evaluate`) {
		t.Errorf("description = %q", r.String("error_description"))
	}
}

// TestDeviationRevokesTheAgentsSubtree: an agent that keeps asking for more
// than it may have crosses the threshold; its live tokens, and everything
// delegated from them, are revoked with the reason recorded, and it gets no
// token until the window has passed.
func TestDeviationRevokesTheAgentsSubtree(t *testing.T) {
	env := dt.New(t, dt.Options{PolicyDir: "../../testdata/policies", Clients: policyClients(), Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute}})
	root := env.Mint(t, "orchestrator", nil)
	analystID := env.Identity(t, "analyst")
	r := env.Exchange(t, "orchestrator", root, analystID, url.Values{"scope": {"db:read:*"}})
	child := r.String("access_token")
	dbID := env.Identity(t, "db-agent")
	r = env.Exchange(t, "analyst", child, dbID, url.Values{"scope": {"db:read:orders"}})
	grand := r.String("access_token")
	if child == "" || grand == "" {
		t.Fatalf("chain: %s", r.Raw)
	}

	// Two counted refusals (a forbid policy, a widening attempt): nothing yet.
	expectError(t, env.Post(t, "token_endpoint", "analyst", url.Values{"grant_type": {oauth.GrantClientCredentials}}), 400, oauth.CodeInvalidRequest)
	expectError(t, env.Exchange(t, "analyst", child, "", url.Values{"scope": {"db:*"}}), 400, oauth.CodeInvalidScope)
	if !active(t, env, child) {
		t.Fatal("revoked below the threshold")
	}
	// A refusal that is not a deviation (a malformed request) does not count.
	expectError(t, env.Exchange(t, "analyst", child, "", url.Values{"requested_token_type": {"x"}}), 400, oauth.CodeInvalidRequest)
	if !active(t, env, child) {
		t.Fatal("a malformed request counted as a deviation")
	}
	// The third: the analyst's tokens and their subtree go.
	expectError(t, env.Exchange(t, "analyst", child, "", url.Values{"audience": {"https://mail.example"}}), 400, oauth.CodeInvalidTarget)
	for name, tok := range map[string]string{"the analyst's child token": child, "the db-agent's grandchild": grand, "the analyst's own token": analystID} {
		if active(t, env, tok) {
			t.Errorf("%s is still active", name)
		}
	}
	if !active(t, env, root) {
		t.Error("the orchestrator's root was revoked too")
	}
	rev, _ := env.DB.FirstRevoked(context.Background(), env.Claims(t, child).ID)
	if rev == nil || !strings.Contains(rev.Reason, "deviation: 3 denied requests within 1m0s") {
		t.Errorf("revocation = %+v", rev)
	}
	// Suspended until the window passes, even for what policy would allow.
	r = env.Post(t, "token_endpoint", "analyst", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"db:read:x"}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "suspended") {
		t.Errorf("description = %q", r.String("error_description"))
	}
	env.Clock.Advance(time.Minute)
	env.Mint(t, "analyst", url.Values{"scope": {"db:read:x"}})
}

// TestDefaultDenyAndFailingPoliciesDoNotCount: an emptied or broken policy
// set refuses everyone; that must not make Mandate revoke every agent.
func TestDefaultDenyAndFailingPoliciesDoNotCount(t *testing.T) {
	for name, src := range map[string]string{
		"default deny":   `@id("mint-only") permit (principal, action == Action::"mint", resource);`,
		"failing policy": `@id("mint") permit (principal, action == Action::"mint", resource); @id("typo") forbid (principal, action == Action::"downscope", resource) when { context.dept > 1 };`,
	} {
		t.Run(name, func(t *testing.T) {
			set := []policy.File{{Name: "p.cedar", Source: []byte(src)}}
			_, err := policy.Parse(set...)
			if err != nil {
				t.Fatal(err)
			}
			env := dt.New(t, dt.Options{Policies: set, Deviation: delegation.Deviation{MaxDenials: 2, Window: time.Minute}})
			root := env.Mint(t, "orchestrator", nil)
			for range 5 {
				expectError(t, env.Exchange(t, "orchestrator", root, "", nil), 400, oauth.CodeInvalidRequest)
			}
			if !active(t, env, root) {
				t.Fatal("refusals the agent did not cause revoked its token")
			}
		})
	}
}
