package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

func feed(t *testing.T, env *dt.Env, client string, query url.Values) dt.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.Endpoint(t, "revocation_feed_endpoint")+"?"+query.Encode(), nil)
	if client != "" {
		req.Header.Set("Authorization", dt.BasicAuth(client, dt.Secret(client)))
	}
	return env.Do(t, req)
}

func feedJTIs(t *testing.T, r dt.Response) []string {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("feed: %d %s", r.Status, r.Raw)
	}
	var out []string
	for _, e := range r.JSON["revocations"].([]any) {
		m := e.(map[string]any)
		if m["exp"] == nil || m["revoked_at"] == nil {
			t.Errorf("entry without exp/revoked_at: %v", m)
		}
		out = append(out, m["jti"].(string))
	}
	return out
}

func TestFeedSnapshotAndCursor(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: 10 * time.Minute, DelegatedTTL: 5 * time.Minute})
	root, child, _ := chainOf(t, env)
	revoke(t, env, "researcher", child) // expires in 5 minutes
	revoke(t, env, "orchestrator", root)

	r := feed(t, env, "no-grants-rs", nil)
	got := feedJTIs(t, r)
	if r.JSON["reset"] != true || len(got) != 2 || got[0] != env.Claims(t, child).ID || got[1] != env.Claims(t, root).ID {
		t.Fatalf("snapshot = %s", r.Raw)
	}
	if len(got) == 2 && strings.Contains(string(r.Raw), env.Claims(t, chainGrand(t, env)).ID) {
		t.Error("the feed lists descendants")
	}
	cursor := r.String("cursor")

	// Nothing new since the cursor.
	r = feed(t, env, "no-grants-rs", url.Values{"since": {cursor}})
	if r.JSON["reset"] != false || len(feedJTIs(t, r)) != 0 || r.String("cursor") != cursor {
		t.Fatalf("since cursor = %s", r.Raw)
	}
	// One more revocation: only it comes.
	other := env.Mint(t, "outsider", nil)
	revoke(t, env, "outsider", other)
	r = feed(t, env, "no-grants-rs", url.Values{"since": {cursor}})
	if got := feedJTIs(t, r); len(got) != 1 || got[0] != env.Claims(t, other).ID || r.JSON["reset"] != false {
		t.Fatalf("delta = %s", r.Raw)
	}
	// Entries stay for chain.RevocationGrace after their token expires (verifiers allow
	// clock skew), then leave the feed.
	env.Clock.Advance(5 * time.Minute)
	if got := feedJTIs(t, feed(t, env, "ops", nil)); len(got) != 3 {
		t.Errorf("within the grace after the child expired: %v", got)
	}
	env.Clock.Advance(chain.RevocationGrace)
	r = feed(t, env, "ops", nil)
	if got := feedJTIs(t, r); len(got) != 2 || r.JSON["reset"] != true {
		t.Errorf("after the child expired: %s", r.Raw)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Error("feed cacheable")
	}
}

// chainGrand mints an unrelated chain whose grandchild must never show up in
// another chain's feed entries.
func chainGrand(t *testing.T, env *dt.Env) string {
	_, _, g := chainOf(t, env)
	return g
}

func TestFeedResetsOnCursorsItCannotServe(t *testing.T) {
	env := dt.New(t, dt.Options{})
	revoke(t, env, "orchestrator", env.Mint(t, "orchestrator", nil))
	cursor := feed(t, env, "no-grants-rs", nil).String("cursor")
	id, _, _ := strings.Cut(cursor, ".")
	for name, c := range map[string]string{
		"malformed":                        "garbage",
		"another store":                    "0123456789abcdef.1",
		"from the future (restored store)": id + ".99",
		"not a number":                     id + ".x",
	} {
		r := feed(t, env, "no-grants-rs", url.Values{"since": {c}, "wait": {"20"}})
		if r.JSON["reset"] != true || len(feedJTIs(t, r)) != 1 {
			t.Errorf("%s: %s", name, r.Raw)
		}
	}
}

func TestFeedLongPollWakesOnRevocation(t *testing.T) {
	env := dt.New(t, dt.Options{})
	cursor := feed(t, env, "no-grants-rs", nil).String("cursor")
	root := env.Mint(t, "orchestrator", nil)
	done := make(chan dt.Response, 1)
	go func() { done <- feed(t, env, "no-grants-rs", url.Values{"since": {cursor}, "wait": {"20"}}) }()
	revoke(t, env, "orchestrator", root)
	r := <-done
	// Had the poll not been woken it would have answered empty after 20 s.
	if got := feedJTIs(t, r); len(got) != 1 || got[0] != env.Claims(t, root).ID {
		t.Fatalf("long poll = %s", r.Raw)
	}
}

func TestFeedAuthorization(t *testing.T) {
	env := dt.New(t, dt.Options{})
	expectError(t, feed(t, env, "", nil), 401, oauth.CodeInvalidClient)
	for _, agent := range []string{"orchestrator", "db-agent"} {
		expectError(t, feed(t, env, agent, nil), 403, oauth.CodeAccessDenied)
	}
	req, _ := http.NewRequest(http.MethodGet, env.Endpoint(t, "revocation_feed_endpoint"), nil)
	req.Header.Set("Authorization", dt.BasicAuth("no-grants-rs", "wrong"))
	expectError(t, env.Do(t, req), 401, oauth.CodeInvalidClient)
	for _, q := range []url.Values{{"wait": {"-1"}}, {"wait": {"soon"}}, {"since": {"a", "b"}}} {
		expectError(t, feed(t, env, "no-grants-rs", q), 400, oauth.CodeInvalidRequest)
	}
}

// TestFeedPages: a reader far behind gets bounded pages flagged More, and
// following the cursors yields every revocation exactly once.
func TestFeedPages(t *testing.T) {
	env := dt.New(t, dt.Options{FeedPageSize: 3})
	var want []string
	for range 7 {
		tok := env.Mint(t, "orchestrator", nil)
		revoke(t, env, "orchestrator", tok)
		want = append(want, env.Claims(t, tok).ID)
	}
	var got []string
	q := url.Values{}
	for page := 0; ; page++ {
		r := feed(t, env, "no-grants-rs", q)
		jtis := feedJTIs(t, r)
		if len(jtis) > 3 {
			t.Fatalf("page of %d entries, bound 3", len(jtis))
		}
		if (page == 0) != (r.JSON["reset"] == true) {
			t.Errorf("page %d reset = %v", page, r.JSON["reset"])
		}
		got = append(got, jtis...)
		q = url.Values{"since": {r.String("cursor")}}
		if r.JSON["more"] != true {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("pages gave %v, want %v", got, want)
	}
}
