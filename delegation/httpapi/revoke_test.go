package httpapi_test

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

func revoke(t *testing.T, env *dt.Env, client, token string) dt.Response {
	t.Helper()
	return env.Post(t, "revocation_endpoint", client, url.Values{"token": {token}})
}

func introspect(t *testing.T, env *dt.Env, token string) dt.Response {
	t.Helper()
	r := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {token}})
	if r.Status != 200 {
		t.Fatalf("introspect: %d %s", r.Status, r.Raw)
	}
	return r
}

func active(t *testing.T, env *dt.Env, token string) bool {
	t.Helper()
	return introspect(t, env, token).JSON["active"] == true
}

func TestRevokingTheRootEndsTheTask(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, child, grand := chainOf(t, env)
	other := env.Mint(t, "orchestrator", nil) // another task of the same agent
	for _, tok := range []string{root, child, grand} {
		if !active(t, env, tok) {
			t.Fatal("token inactive before revocation")
		}
	}
	r := revoke(t, env, "orchestrator", root)
	if r.Status != 200 || len(r.Raw) != 0 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revoke: %d %q %v", r.Status, r.Raw, r.Header)
	}
	for name, tok := range map[string]string{"root": root, "child": child, "grandchild": grand} {
		if active(t, env, tok) {
			t.Errorf("%s still active after its root was revoked", name)
		}
	}
	if !active(t, env, other) {
		t.Error("revoking one task touched another")
	}
	// The grandchild cannot be exchanged any more, by its holder, in any way.
	r = env.Exchange(t, "db-agent", grand, "", nil)
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), "revoked") {
		t.Errorf("description should say why: %q", r.String("error_description"))
	}
	// Nor can an agent whose identity token was minted before use a revoked chain.
	expectError(t, env.Exchange(t, "researcher", child, env.Identity(t, "db-agent"), nil), 400, oauth.CodeInvalidRequest)

	// One record, however large the subtree.
	if st, _ := env.Bolt.Stats(env.Clock.Now()); st.Revocations != 1 {
		t.Errorf("revocations stored = %d, want 1 (cascade through lineage)", st.Revocations)
	}
	// Revoking again changes nothing and still answers 200.
	rev, _ := env.DB.FirstRevoked(t.Context(), env.Claims(t, root).ID)
	env.Clock.Advance(time.Minute)
	if r := revoke(t, env, "orchestrator", root); r.Status != 200 {
		t.Errorf("second revoke: %d", r.Status)
	}
	again, _ := env.DB.FirstRevoked(t.Context(), env.Claims(t, root).ID)
	if !reflect.DeepEqual(rev, again) {
		t.Errorf("second revoke rewrote the record: %+v → %+v", rev, again)
	}
}

func TestRevokingAMiddleTokenCutsOnlyItsSubtree(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, child, grand := chainOf(t, env)
	sibling := env.Delegate(t, "orchestrator", root, "db-agent", nil)
	if r := revoke(t, env, "researcher", child); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if active(t, env, child) || active(t, env, grand) {
		t.Error("revoked subtree still active")
	}
	if !active(t, env, root) || !active(t, env, sibling) {
		t.Error("revocation leaked upward or sideways")
	}
}

func TestWhoMayRevoke(t *testing.T) {
	tests := []struct {
		name   string
		client string
		target int // 0 root, 1 child, 2 grandchild
		status int
		code   string
	}{
		{"holder", "db-agent", 2, 200, ""},
		{"holder of the parent", "researcher", 2, 200, ""},
		{"holder of the root", "orchestrator", 2, 200, ""},
		{"admin", "ops", 0, 200, ""},
		{"unrelated agent", "outsider", 1, 400, oauth.CodeUnauthorizedClient},
		{"descendant may not revoke its ancestor", "db-agent", 1, 400, oauth.CodeUnauthorizedClient},
		{"resource server", "no-grants-rs", 0, 400, oauth.CodeUnauthorizedClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := dt.New(t, dt.Options{})
			root, child, grand := chainOf(t, env)
			target := []string{root, child, grand}[tt.target]
			r := revoke(t, env, tt.client, target)
			if tt.status != 200 {
				expectError(t, r, tt.status, tt.code)
				if !active(t, env, target) {
					t.Error("a refused revocation revoked the token")
				}
				return
			}
			if r.Status != 200 || active(t, env, target) {
				t.Fatalf("revoke by %s: %d %s", tt.client, r.Status, r.Raw)
			}
		})
	}
}

// TestRevocationTellsOutsidersNothing: another client's token gets the
// same refusal whether or not it is revoked already, so the revocation
// endpoint does not reveal the state of tokens one does not hold.
func TestRevocationTellsOutsidersNothing(t *testing.T) {
	env := dt.New(t, dt.Options{})
	live, gone := env.Mint(t, "orchestrator", nil), env.Mint(t, "orchestrator", nil)
	if r := revoke(t, env, "orchestrator", gone); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	a, b := revoke(t, env, "outsider", live), revoke(t, env, "outsider", gone)
	expectError(t, a, 400, oauth.CodeUnauthorizedClient)
	if b.Status != a.Status || string(b.Raw) != string(a.Raw) {
		t.Errorf("a live and a revoked token of another client answer differently: %d %s / %d %s", a.Status, a.Raw, b.Status, b.Raw)
	}
}

func TestRevocationOfUnknownOrExpiredTokensIsAccepted(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: time.Minute})
	root := env.Mint(t, "orchestrator", nil)
	for name, tok := range map[string]string{"garbage": "garbage", "foreign": foreignToken(t)} {
		if r := revoke(t, env, "orchestrator", tok); r.Status != 200 {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	env.Clock.Advance(time.Minute + chain.RevocationGrace)
	if r := revoke(t, env, "outsider", root); r.Status != 200 {
		t.Errorf("expired: %d %s", r.Status, r.Raw)
	}
	if st, _ := env.Bolt.Stats(env.Clock.Now()); st.Revocations != 0 {
		t.Errorf("stored %d revocations for nothing", st.Revocations)
	}
	expectError(t, env.Post(t, "revocation_endpoint", "orchestrator", url.Values{}), 400, oauth.CodeInvalidRequest)
	expectError(t, env.Post(t, "revocation_endpoint", "", url.Values{"token": {root}}), 401, oauth.CodeInvalidClient)
}

func TestIntrospection(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: 10 * time.Minute})
	root, child, grand := chainOf(t, env)
	r := introspect(t, env, grand)
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Error("introspection response cacheable")
	}
	gc := env.Claims(t, grand)
	want := map[string]any{
		"active": true, "iss": env.URL, "sub": "orchestrator", "sub_iss": env.URL, "client_id": "db-agent",
		"scope": "db:read:orders", "aud": []any{"https://db.example"}, "token_type": "Bearer",
		"iat": float64(gc.IssuedAt), "nbf": float64(gc.NotBefore), "exp": float64(gc.Expiry), "jti": gc.ID,
		"act":     map[string]any{"sub": "db-agent", "act": map[string]any{"sub": "researcher"}},
		"lineage": []any{env.Claims(t, root).ID, env.Claims(t, child).ID},
	}
	if !reflect.DeepEqual(r.JSON, want) {
		t.Errorf("introspection\n got %v\nwant %v", r.JSON, want)
	}
	rootResp := introspect(t, env, root)
	if l, ok := rootResp.JSON["lineage"].([]any); !ok || len(l) != 0 {
		t.Errorf("root lineage = %v, want []", rootResp.JSON["lineage"])
	}
	if _, ok := rootResp.JSON["act"]; ok {
		t.Error("root has an act claim")
	}

	for name, tok := range map[string]string{"garbage": "x.y.z", "foreign": foreignToken(t), "tampered": dt.Tamper(t, grand, func(c map[string]any) { c["scope"] = "*" })} {
		if got := introspect(t, env, tok); strings.TrimSpace(string(got.Raw)) != `{"active":false}` {
			t.Errorf("%s: %s", name, got.Raw)
		}
	}
	env.Clock.Advance(5 * time.Minute) // the delegated tokens expire
	if got := introspect(t, env, grand); strings.TrimSpace(string(got.Raw)) != `{"active":false}` {
		t.Errorf("expired: %s", got.Raw)
	}
	if !active(t, env, root) {
		t.Error("root expired early")
	}

	for _, client := range []string{"orchestrator", "db-agent", "idle"} {
		r := env.Post(t, "introspection_endpoint", client, url.Values{"token": {root}})
		expectError(t, r, http.StatusForbidden, oauth.CodeAccessDenied)
		if strings.Contains(string(r.Raw), "orchestrator\"") || strings.Contains(string(r.Raw), "active") {
			t.Errorf("refusal discloses token data: %s", r.Raw)
		}
	}
	if r := env.Post(t, "introspection_endpoint", "ops", url.Values{"token": {root}}); r.JSON["active"] != true {
		t.Errorf("admin introspection: %s", r.Raw)
	}
	expectError(t, env.Post(t, "introspection_endpoint", "", url.Values{"token": {root}}), 401, oauth.CodeInvalidClient)
}

// TestRevocationJustAfterExpiryIsStillRecorded: verifiers accept a token up to
// their leeway past exp, so a revocation in that window must still reach them.
func TestRevocationJustAfterExpiryIsStillRecorded(t *testing.T) {
	env := dt.New(t, dt.Options{RootTTL: time.Minute})
	root := env.Mint(t, "orchestrator", nil)
	env.Clock.Advance(time.Minute + 10*time.Second)
	expectError(t, revoke(t, env, "outsider", root), 400, oauth.CodeUnauthorizedClient) // an unrelated client within the grace
	if r := revoke(t, env, "orchestrator", root); r.Status != 200 {
		t.Fatalf("holder within the grace: %d", r.Status)
	}
	if got := feedJTIs(t, feed(t, env, "no-grants-rs", nil)); len(got) != 1 || got[0] != env.Claims(t, root).ID {
		t.Errorf("feed = %v", got)
	}
}
