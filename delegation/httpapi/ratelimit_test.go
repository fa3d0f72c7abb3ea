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
	// The feed and the admin API count too.
	feed, _ := http.NewRequest(http.MethodGet, env.Endpoint(t, "revocation_feed_endpoint"), nil)
	feed.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
	if r := env.Do(t, feed); r.Status != http.StatusTooManyRequests {
		t.Errorf("feed over the limit: %d", r.Status)
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
