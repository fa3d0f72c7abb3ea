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

func demoPolicy(t *testing.T) *policy.Set {
	t.Helper()
	s, err := policy.LoadDir("../../testdata/policies")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// policyClients is the default cast with registrations wide enough that
// policy, not registration, is what refuses: a research agent that could be
// given writes, and a db-agent that could be given tools.
func policyClients() []dt.Client {
	cs := dt.DefaultClients()
	for i := range cs {
		if cs[i].ID == "db-agent" {
			cs[i].Scopes = []string{"db:read:*", "tools:search"}
		}
	}
	return append(cs, dt.Client{ID: "analyst", Grants: dt.Both, Scopes: []string{"db:read:*", "db:write:*"},
		Audiences: []string{"https://db.example"}, Groups: []string{"research-agents"}})
}

// TestPolicyDecidesEveryTokenRequest runs the demo policy set in the exchange
// path of a real server: the demo's chain is permitted, and each refusal names
// the policy that determined it.
func TestPolicyDecidesEveryTokenRequest(t *testing.T) {
	env := dt.New(t, dt.Options{Policy: demoPolicy(t), Clients: policyClients()})
	root, child, _ := chainOf(t, env) // mints and two delegations: all permitted
	dbID := env.Mint(t, "db-agent", nil)
	analystID := env.Mint(t, "analyst", url.Values{"scope": {"db:read:x"}})
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
		{"a tool scope to the db-agent", func() dt.Response {
			return env.Exchange(t, "researcher", child, dbID, url.Values{"scope": {"tools:search"}})
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
	s, err := policy.Parse(policy.File{Name: "p.cedar", Source: []byte(`
@id("everyone") permit (principal, action, resource);
@id("typo") forbid (principal, action, resource) when { context.dept > 3 };`)})
	if err != nil {
		t.Fatal(err)
	}
	env := dt.New(t, dt.Options{Policy: s})
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
	env := dt.New(t, dt.Options{Policy: demoPolicy(t), Clients: policyClients(), Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute}})
	root, child, grand := chainOf(t, env)
	dbID := env.Mint(t, "db-agent", nil)

	// Two refusals: below the threshold, nothing happens.
	expectError(t, env.Exchange(t, "researcher", child, "", url.Values{"scope": {"db:*"}}), 400, oauth.CodeInvalidScope)
	expectError(t, env.Exchange(t, "researcher", child, dbID, url.Values{"scope": {"tools:search"}}), 400, oauth.CodeInvalidRequest)
	if !active(t, env, child) {
		t.Fatal("revoked below the threshold")
	}
	// A refusal that is not a deviation (a malformed request) does not count.
	expectError(t, env.Exchange(t, "researcher", child, "", url.Values{"requested_token_type": {"x"}}), 400, oauth.CodeInvalidRequest)
	if !active(t, env, child) {
		t.Fatal("a malformed request counted as a deviation")
	}
	// The third: the researcher's tokens and their subtree go.
	expectError(t, env.Exchange(t, "researcher", child, "", url.Values{"audience": {"https://mail.example"}}), 400, oauth.CodeInvalidTarget)
	for name, tok := range map[string]string{"the researcher's child token": child, "the db-agent's grandchild": grand} {
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
	r := env.Post(t, "token_endpoint", "researcher", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "suspended") {
		t.Errorf("description = %q", r.String("error_description"))
	}
	env.Clock.Advance(time.Minute)
	env.Delegate(t, "researcher", env.Delegate(t, "orchestrator", root, "researcher", nil), "", nil)
}
