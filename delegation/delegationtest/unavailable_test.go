package delegationtest_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// expectUnavailable checks a 503 temporarily_unavailable with Retry-After.
func expectUnavailable(t *testing.T, what string, r dt.Response) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.Error() != oauth.CodeTemporarilyUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("%s while PostgreSQL is down: %d %q Retry-After %q: %s", what, r.Status, r.Error(), r.Header.Get("Retry-After"), r.Raw)
	}
}

// TestPostgresUnavailable: while PostgreSQL is down, every endpoint that
// needs the store answers 503 with Retry-After — the feed (a new request,
// and a long poll waiting when it went) and introspection too, never
// "inactive" or "nothing new" — /readyz is false, and nothing is
// acknowledged. When it comes back, the server recovers by itself: ready,
// the tokens and revocations of before in force, new ones acknowledged, the
// feed served from the cursors of before.
func TestPostgresUnavailable(t *testing.T) {
	c := pgtest.Own(t)
	env, _ := onPostgres(t, c.NewDatabase(t), "a", dt.Options{})
	root := env.Mint(t, "orchestrator", nil)
	child := env.Delegate(t, "orchestrator", root, "researcher", nil)
	revoked := env.Mint(t, "outsider", nil)
	env.Revoke(t, "outsider", revoked)
	for _, tok := range []string{root, child} { // remembered as verified: only revocation is read
		if r := env.Introspect(t, "no-grants-rs", tok); r.JSON["active"] != true {
			t.Fatalf("introspection: %s", r.Raw)
		}
	}
	identity := env.Identity(t, "researcher")
	cursor := env.Feed(t, "no-grants-rs", "", 0).String("cursor")
	polled := make(chan dt.Response, 1)
	go func() { polled <- env.Feed(t, "no-grants-rs", cursor, 2*time.Second) }()
	time.Sleep(100 * time.Millisecond)

	c.Stop()
	expectUnavailable(t, "a long poll waiting", <-polled)
	expectUnavailable(t, "a mint", env.Post(t, "token_endpoint", "orchestrator", mintForm()))
	expectUnavailable(t, "an exchange", env.Exchange(t, "orchestrator", root, identity, nil))
	expectUnavailable(t, "an introspection", env.Introspect(t, "no-grants-rs", child))
	expectUnavailable(t, "an introspection of a revoked token", env.Introspect(t, "no-grants-rs", revoked))
	expectUnavailable(t, "a revocation", env.Post(t, "revocation_endpoint", "orchestrator", formOf("token", root)))
	expectUnavailable(t, "the feed", env.Feed(t, "no-grants-rs", "", 0))
	expectUnavailable(t, "the feed from a cursor", env.Feed(t, "no-grants-rs", cursor, 0))
	expectUnavailable(t, "a long poll", env.Feed(t, "no-grants-rs", cursor, 5*time.Second))
	expectUnavailable(t, "the admin API", adminGet(t, env, "/admin/tokens"))
	if r := env.Get(t, env.Base+"/readyz"); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("/readyz while PostgreSQL is down: %d %s", r.Status, r.Raw)
	}
	if r := env.Get(t, env.Base+"/.well-known/jwks.json"); r.Status != http.StatusOK {
		t.Errorf("the JWKS (no store needed): %d", r.Status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for env.Get(t, env.Base+"/readyz").Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready 15 s after PostgreSQL came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := env.Introspect(t, "no-grants-rs", child); r.JSON["active"] != true {
		t.Errorf("a live token after the outage: %d %s", r.Status, r.Raw)
	}
	if r := env.Introspect(t, "no-grants-rs", revoked); r.JSON["active"] != false {
		t.Errorf("a revoked token after the outage: %d %s", r.Status, r.Raw)
	}
	// The refused revocation was not done: root is live until revoked now.
	if r := env.Introspect(t, "no-grants-rs", root); r.JSON["active"] != true {
		t.Errorf("the token whose revocation was refused: %s", r.Raw)
	}
	fresh := env.Delegate(t, "orchestrator", root, "researcher", nil)
	env.Revoke(t, "orchestrator", root)
	for _, tok := range []string{child, fresh} {
		if r := env.Introspect(t, "no-grants-rs", tok); r.JSON["active"] != false {
			t.Errorf("a child of the revoked root: %s", r.Raw)
		}
	}
	r := env.Feed(t, "no-grants-rs", cursor, 0)
	if got := dt.FeedJTIs(t, r); !slices.Equal(got, []string{env.Claims(t, root).ID}) || r.JSON["reset"] != false {
		t.Errorf("the feed from the cursor of before: %s", r.Raw)
	}
}

func mintForm() map[string][]string {
	return map[string][]string{"grant_type": {oauth.GrantClientCredentials}}
}

func formOf(k, v string) map[string][]string { return map[string][]string{k: {v}} }

// adminGet calls the admin API as the admin client.
func adminGet(t *testing.T, env *dt.Env, path string) dt.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.Base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", dt.BasicAuth("ops", dt.Secret("ops")))
	r := env.Do(t, req)
	if strings.Contains(string(r.Raw), "password") {
		t.Errorf("an answer names a password: %s", r.Raw)
	}
	return r
}
