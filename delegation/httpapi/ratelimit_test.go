package httpapi_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

// TestRateLimitsArePerClient: a client over its budget gets 429 slow_down
// with Retry-After on every authenticated endpoint, changes nothing, and
// slows no other client down; its budget refills with time.
func TestRateLimitsArePerClient(t *testing.T) {
	env := dt.New(t, dt.Options{RateLimit: httpapi.RateLimit{PerSecond: 1, Burst: 2}})
	mint := func(client string) dt.Response {
		return env.Post(t, "token_endpoint", client, url.Values{"grant_type": {oauth.GrantClientCredentials}})
	}
	for i := range 2 {
		if r := mint("orchestrator"); r.Status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, r.Status, r.Raw)
		}
	}
	before, _ := env.Svc.ListTokens(t.Context(), delegation.TokenFilter{})
	r := mint("orchestrator")
	if r.Status != http.StatusTooManyRequests || r.Error() != "slow_down" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d %s Retry-After %q", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	if after, _ := env.Svc.ListTokens(t.Context(), delegation.TokenFilter{}); len(after.Tokens) != len(before.Tokens) {
		t.Error("a refused request issued a token")
	}
	if r := mint("researcher"); r.Status != 200 {
		t.Errorf("another client was slowed down: %d", r.Status)
	}
	// Revocation and the feed have a budget of their own: a client that
	// spent its grants' can still revoke (the kill switch of a runaway loop).
	feed, _ := http.NewRequest(http.MethodGet, env.Endpoint(t, "revocation_feed_endpoint"), nil)
	feed.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
	if r := env.Do(t, feed); r.Status != http.StatusForbidden {
		t.Errorf("feed after the grants' budget is spent: %d (want the feed's own answer, 403 for a non-resource server)", r.Status)
	}
	if r := env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {before.Tokens[0].JTI}}); r.Status != 200 {
		t.Errorf("revocation after the grants' budget is spent: %d %s", r.Status, r.Raw)
	}
	env.Clock.Advance(time.Second)
	if r := mint("orchestrator"); r.Status != 200 {
		t.Errorf("after a second: %d %s", r.Status, r.Raw)
	}
	// Failed authentications are not charged to the client they name.
	bad, _ := http.NewRequest(http.MethodPost, env.Endpoint(t, "token_endpoint"), nil)
	bad.Header.Set("Authorization", dt.BasicAuth("researcher", "wrong"))
	for range 3 {
		env.Do(t, bad.Clone(t.Context()))
	}
	if r := mint("researcher"); r.Status != 200 {
		t.Errorf("a client charged for someone else's failed logins: %d", r.Status)
	}
}

// TestTheKillSwitchIsNeverStarved: a client in a runaway loop that has
// spent its grants' budget still revokes its own task; revocation has its
// own budget (ten times the grants'), which bounds it in turn, and spending
// it takes nothing from the grants'.
func TestTheKillSwitchIsNeverStarved(t *testing.T) {
	env := dt.New(t, dt.Options{RateLimit: httpapi.RateLimit{PerSecond: 1, Burst: 2}})
	root := env.Mint(t, "orchestrator", nil)
	child := env.Delegate(t, "orchestrator", root, "researcher", nil)
	for {
		if r := env.Post(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}}); r.Status == http.StatusTooManyRequests {
			break
		}
	}
	if r := env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}}); r.Status != 200 {
		t.Fatalf("the runaway client revoking its task: %d %s", r.Status, r.Raw)
	}
	if active(t, env, child) {
		t.Fatal("the task survived its kill switch")
	}
	// Revoking what is revoked again and again writes nothing and is
	// bounded by its own budget (burst 2 × 10, one already spent).
	before, _ := env.Bolt.Stats(env.Clock.Now())
	limited := 0
	for range 25 {
		if r := env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}}); r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 6 {
		t.Errorf("%d of 25 revocations limited, want 6 (a burst of 20, one spent)", limited)
	}
	if after, _ := env.Bolt.Stats(env.Clock.Now()); after.Revocations != before.Revocations || after.AuditRecords != before.AuditRecords {
		t.Errorf("revoking a revoked token wrote: revocations %d → %d, audit %d → %d", before.Revocations, after.Revocations, before.AuditRecords, after.AuditRecords)
	}
	// The grants' budget refilled on its own, untouched by the revocations.
	env.Clock.Advance(time.Second)
	if r := env.Post(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}}); r.Status != 200 {
		t.Errorf("grants after revocations: %d", r.Status)
	}
}

// TestKnockingOnForbiddenDoorsSpendsNoRevocationBudget: an agent refused
// the admin API and the feed (wrong role) again and again has still its
// whole revocation budget: the role is checked before the budget is spent.
func TestKnockingOnForbiddenDoorsSpendsNoRevocationBudget(t *testing.T) {
	env := dt.New(t, dt.Options{RateLimit: httpapi.RateLimit{PerSecond: 1, Burst: 1, RevocationPerSecond: 1, RevocationBurst: 2}})
	root := env.Mint(t, "orchestrator", nil)
	for _, path := range []string{env.Endpoint(t, "revocation_feed_endpoint"), env.URL + "/admin/keys"} {
		for range 5 {
			req, _ := http.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
			if r := env.Do(t, req); r.Status != http.StatusForbidden {
				t.Fatalf("%s as an agent: %d %s", path, r.Status, r.Raw)
			}
		}
	}
	if r := env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}}); r.Status != 200 {
		t.Errorf("revocation after knocking on forbidden doors: %d %s", r.Status, r.Raw)
	}
}
