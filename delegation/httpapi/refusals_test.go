package httpapi_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
)

// TestRepeatedRefusalsAreCountedNotRewritten: a client refused again and
// again (here 500 times, as a runaway loop would) costs the audit trail one
// record per kind and window, plus one counted record; the counts add up to
// every refusal.
func TestRepeatedRefusalsAreCountedNotRewritten(t *testing.T) {
	env := dt.New(t, dt.Options{})
	before, _ := env.Bolt.Stats(env.Clock.Now())
	widen := url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"db:*"}}
	for range 500 {
		expectError(t, env.Post(t, "token_endpoint", "researcher", widen), 400, oauth.CodeInvalidScope)
	}
	foreign := url.Values{"grant_type": {"urn:example:foreign"}}
	for range 20 {
		expectError(t, env.Post(t, "token_endpoint", "researcher", foreign), 400, oauth.CodeUnsupportedGrantType)
	}
	mid, _ := env.Bolt.Stats(env.Clock.Now())
	if grew := mid.AuditRecords - before.AuditRecords; grew != 2 {
		t.Errorf("520 refusals of two kinds wrote %d audit records, want 2", grew)
	}
	env.Clock.Advance(delegation.RefusalWindow)
	expectError(t, env.Post(t, "token_endpoint", "researcher", widen), 400, oauth.CodeInvalidScope) // a new window: flushes the old
	env.Svc.FlushRefusals(t.Context(), true)

	recs, err := env.DB.AuditAfter(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range recs {
		if r.Type != store.AuditRefused {
			continue
		}
		n := max(r.Count, 1)
		counts[r.Grant+"/"+r.Code] += n
		if r.Count > 1 && !strings.Contains(r.Reason, "more refusal(s) of this kind") {
			t.Errorf("counted record without its summary: %+v", r)
		}
	}
	if counts["client_credentials/invalid_scope"] != 501 || counts["other/unsupported_grant_type"] != 20 {
		t.Errorf("counts = %v, want 501 widenings and 20 foreign grants", counts)
	}
	if rep, _ := env.DB.VerifyAudit(t.Context()); !rep.OK {
		t.Errorf("audit chain: %+v", rep)
	}
}

// TestRefusalsOfOneCodeButAnotherKindAreAuditedApart: a foreign token and a
// malformed one are both invalid_request, but only the first is a
// deviation; folded together, the trail would show the harmless one and
// hide the other in a count. Each kind opens its own record.
func TestRefusalsOfOneCodeButAnotherKindAreAuditedApart(t *testing.T) {
	env := dt.New(t, dt.Options{})
	theirs := env.Mint(t, "orchestrator", nil)
	before, _ := env.Bolt.Stats(env.Clock.Now())
	for range 5 {
		expectError(t, env.Exchange(t, "researcher", "not-a-token", "", nil), 400, oauth.CodeInvalidRequest)
		expectError(t, env.Exchange(t, "researcher", theirs, "", nil), 400, oauth.CodeInvalidRequest)
	}
	after, _ := env.Bolt.Stats(env.Clock.Now())
	if grew := after.AuditRecords - before.AuditRecords; grew != 2 {
		t.Errorf("two kinds of invalid_request wrote %d audit records, want 2", grew)
	}
	recs, _ := env.DB.AuditTail(t.Context(), 2)
	var reasons []string
	for _, r := range recs {
		reasons = append(reasons, r.Reason)
	}
	joined := strings.Join(reasons, "\n")
	if !strings.Contains(joined, "subject_token is malformed") || !strings.Contains(joined, "held by another client") {
		t.Errorf("the trail does not show both kinds: %q", reasons)
	}
}
