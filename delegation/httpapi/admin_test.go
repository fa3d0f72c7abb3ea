package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

// admin calls an admin route as client (or with raw Authorization when
// client starts with "raw:").
func admin(t *testing.T, env *dt.Env, method, path, client string, body any) dt.Response {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, env.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(client, "raw:"):
		req.Header.Set("Authorization", strings.TrimPrefix(client, "raw:"))
	case client != "":
		req.Header.Set("Authorization", dt.BasicAuth(client, dt.Secret(client)))
	}
	return env.Do(t, req)
}

func TestEveryAdminRouteRefusesNonAdmins(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, _, _ := chainOf(t, env)
	jti := env.Claims(t, root).ID
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", httpapi.PathAdminTokens, nil},
		{"GET", "/admin/lineage/" + jti, nil},
		{"POST", httpapi.PathAdminRevoke, map[string]string{"jti": jti}},
		{"GET", httpapi.PathAdminKeys, nil},
		{"POST", httpapi.PathAdminKeysRotate, map[string]string{"alg": "EdDSA"}},
		{"GET", httpapi.PathAdminAudit, nil},
		{"GET", httpapi.PathAdminAuditVerify, nil},
	}
	callers := []struct {
		name, client string
		status       int
		code         string
	}{
		{"no credentials", "", 401, oauth.CodeInvalidClient},
		{"wrong secret", "raw:" + dt.BasicAuth("ops", "wrong"), 401, oauth.CodeInvalidClient},
		{"bearer token", "raw:Bearer " + root, 401, oauth.CodeInvalidClient},
		{"an agent", "orchestrator", 403, oauth.CodeAccessDenied},
		{"a resource server", "no-grants-rs", 403, oauth.CodeAccessDenied},
	}
	for _, r := range routes {
		for _, c := range callers {
			got := admin(t, env, r.method, r.path, c.client, r.body)
			if got.Status != c.status || got.Error() != c.code {
				t.Errorf("%s %s as %s: %d %q", r.method, r.path, c.name, got.Status, got.Error())
			}
			if strings.Contains(string(got.Raw), jti) || strings.Contains(string(got.Raw), "orchestrator\"") {
				t.Errorf("%s %s as %s discloses token data: %s", r.method, r.path, c.name, got.Raw)
			}
		}
	}
	if !active(t, env, root) {
		t.Fatal("a refused caller revoked the token")
	}
	if keys := admin(t, env, "GET", httpapi.PathAdminKeys, "ops", nil); len(keys.JSON["keys"].([]any)) != 1 {
		t.Fatal("a refused caller rotated the key")
	}
}

func TestAdminLineage(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, child, grand := chainOf(t, env)
	sibling := env.Delegate(t, "orchestrator", root, "db-agent", nil)
	env.Post(t, "revocation_endpoint", "researcher", url.Values{"token": {child}})
	r := admin(t, env, "GET", "/admin/lineage/"+env.Claims(t, child).ID, "ops", nil)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	anc := r.JSON["ancestors"].([]any)
	tok := r.JSON["token"].(map[string]any)
	if len(anc) != 1 || anc[0].(map[string]any)["jti"] != env.Claims(t, root).ID || anc[0].(map[string]any)["status"] != "active" {
		t.Errorf("ancestors = %v", anc)
	}
	if tok["status"] != "revoked" || tok["revoked_by"] != "researcher" || !strings.Contains(tok["revoked_reason"].(string), "RFC 7009") {
		t.Errorf("token = %v", tok)
	}
	kids := tok["children"].([]any)
	g := kids[0].(map[string]any)
	if len(kids) != 1 || g["jti"] != env.Claims(t, grand).ID || g["status"] != "revoked-by-ancestor" || g["revoked_ancestor"] != env.Claims(t, child).ID {
		t.Errorf("children = %v", kids)
	}
	if strings.Contains(string(r.Raw), env.Claims(t, sibling).ID) {
		t.Error("the lineage of a token shows a sibling")
	}
	if r := admin(t, env, "GET", "/admin/lineage/nope", "ops", nil); r.Status != 404 {
		t.Errorf("unknown jti: %d", r.Status)
	}
}

func TestAdminListTokens(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root, _, grand := chainOf(t, env)
	other := env.Mint(t, "orchestrator", nil)
	env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {other}})
	if got := admin(t, env, "GET", httpapi.PathAdminTokens+"?root="+env.Claims(t, grand).ID, "ops", nil).JSON["tokens"].([]any); len(got) != 3 {
		t.Errorf("root named by a grandchild lists %d tokens, want the whole task (3)", len(got))
	}
	list := func(q string) []string {
		r := admin(t, env, "GET", httpapi.PathAdminTokens+"?"+q, "ops", nil)
		var out []string
		for _, tok := range r.JSON["tokens"].([]any) {
			out = append(out, tok.(map[string]any)["holder"].(string))
		}
		return out
	}
	if got := list("root=" + env.Claims(t, root).ID); len(got) != 3 {
		t.Errorf("task listing = %v", got)
	}
	if got := list("holder=orchestrator&active=true"); len(got) != 1 {
		t.Errorf("orchestrator's live tokens = %v (one revoked, one root)", got)
	}
	if got := list("holder=orchestrator"); len(got) != 2 {
		t.Errorf("orchestrator's tokens = %v", got)
	}
	if got := list("sub=orchestrator&active=true"); len(got) != 3 {
		t.Errorf("live tokens on the orchestrator's behalf = %v", got)
	}
	// Paging walks everything exactly once.
	all := list("limit=1000")
	seen, after := 0, ""
	for {
		r := admin(t, env, "GET", httpapi.PathAdminTokens+"?limit=2&after="+after, "ops", nil)
		seen += len(r.JSON["tokens"].([]any))
		next, _ := r.JSON["next"].(string)
		if next == "" {
			break
		}
		after = next
	}
	if seen != len(all) {
		t.Errorf("paging saw %d of %d", seen, len(all))
	}
}

func TestAdminRevoke(t *testing.T) {
	tests := []struct {
		name             string
		target           func(env *dt.Env, root, child, grand string) map[string]any
		revoked, useless int
		stillActive      []int // 0 root, 1 child, 2 grand, 3 other task
	}{
		{"a jti cuts its subtree", func(env *dt.Env, _, child, _ string) map[string]any {
			return map[string]any{"jti": env.Claims(t, child).ID}
		}, 1, 2, []int{0, 3}},
		{"root, named by any token of the task", func(env *dt.Env, _, _, grand string) map[string]any {
			return map[string]any{"root": env.Claims(t, grand).ID}
		}, 1, 3, []int{3}},
		{"holder", func(*dt.Env, string, string, string) map[string]any { return map[string]any{"holder": "researcher"} }, 2, 3, []int{0, 3}},
		{"subject", func(*dt.Env, string, string, string) map[string]any { return map[string]any{"sub": "orchestrator"} }, 2, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := dt.New(t, dt.Options{})
			root, child, grand := chainOf(t, env) // chainOf also minted identity tokens for researcher and db-agent
			other := env.Mint(t, "orchestrator", nil)
			body := tt.target(env, root, child, grand)
			body["reason"] = "incident 42"
			r := admin(t, env, "POST", httpapi.PathAdminRevoke, "ops", body)
			if r.Status != 200 || r.JSON["revoked"] != float64(tt.revoked) || r.JSON["unusable"] != float64(tt.useless) {
				t.Fatalf("revoke %v: %d %s", body, r.Status, r.Raw)
			}
			for i, tok := range []string{root, child, grand, other} {
				want := false
				for _, a := range tt.stillActive {
					want = want || a == i
				}
				if active(t, env, tok) != want {
					t.Errorf("token %d active = %v, want %v", i, !want, want)
				}
			}
			// Again: nothing left to do.
			if r := admin(t, env, "POST", httpapi.PathAdminRevoke, "ops", body); r.JSON["revoked"] != float64(0) && tt.name != "holder" {
				t.Errorf("second revoke: %s", r.Raw)
			}
		})
	}
	env := dt.New(t, dt.Options{})
	for _, bad := range []map[string]any{{}, {"jti": "a", "holder": "b"}, {"jti": "a", "typo": 1}} {
		if r := admin(t, env, "POST", httpapi.PathAdminRevoke, "ops", bad); r.Status != 400 {
			t.Errorf("%v: %d", bad, r.Status)
		}
	}
	// A misspelt holder is an error, not "nothing to revoke"; a registered
	// client or an ephemeral agent's name that holds nothing is just that.
	r := admin(t, env, "POST", httpapi.PathAdminRevoke, "ops", map[string]any{"holder": "db-agnet", "reason": "typo"})
	if r.Status != 400 || r.Error() != oauth.CodeInvalidRequest || !strings.Contains(r.String("error_description"), `no client "db-agnet" is registered`) {
		t.Errorf("an unknown holder: %d %s", r.Status, r.Raw)
	}
	for _, h := range []string{"db-agent", "orchestrator/summarizer-1"} {
		if r := admin(t, env, "POST", httpapi.PathAdminRevoke, "ops", map[string]any{"holder": h, "reason": "x"}); r.Status != 200 || r.JSON["revoked"] != float64(0) {
			t.Errorf("holder %s with nothing to revoke: %d %s", h, r.Status, r.Raw)
		}
	}
}

func TestAdminKeysAndAudit(t *testing.T) {
	env := dt.New(t, dt.Options{})
	old := env.Keys.CurrentKeyID()
	r := admin(t, env, "POST", httpapi.PathAdminKeysRotate, "ops", map[string]string{"alg": "ES256", "reason": "yearly rotation"})
	if r.Status != 200 || r.String("kid") == "" {
		t.Fatalf("rotate: %d %s", r.Status, r.Raw)
	}
	keys := admin(t, env, "GET", httpapi.PathAdminKeys, "ops", nil).JSON["keys"].([]any)
	status := map[string]string{}
	for _, k := range keys {
		m := k.(map[string]any)
		status[m["kid"].(string)] = m["status"].(string)
	}
	if status[old] != "active" || status[r.String("kid")] != "pending" {
		t.Errorf("keys = %v", status)
	}
	if bad := admin(t, env, "POST", httpapi.PathAdminKeysRotate, "ops", map[string]string{"alg": "HS256"}); bad.Status != 400 {
		t.Errorf("HS256 rotation: %d", bad.Status)
	}
	recs := admin(t, env, "GET", httpapi.PathAdminAudit+"?after=0", "ops", nil).JSON["records"].([]any)
	last := recs[len(recs)-1].(map[string]any)
	if last["type"] != "key_rotated" || last["client"] != "ops" || last["kid"] != r.String("kid") ||
		!strings.HasPrefix(last["reason"].(string), "ES256 key published") || !strings.HasSuffix(last["reason"].(string), "; yearly rotation") {
		t.Errorf("audit = %v", last)
	}
	if v := admin(t, env, "GET", httpapi.PathAdminAuditVerify, "ops", nil); v.JSON["ok"] != true {
		t.Errorf("verify = %s", v.Raw)
	}
}

// TestAdminRevokeCountsEachTokenOnce: a holder with tokens at several depths
// of one task gets one record (its topmost token), and the count includes no
// token twice and no token that was already revoked.
func TestAdminRevokeCountsEachTokenOnce(t *testing.T) {
	env := dt.New(t, dt.Options{})
	root := env.Mint(t, "orchestrator", nil)
	d1 := env.Delegate(t, "orchestrator", root, "", url.Values{"scope": {"db:read:*"}}) // held by orchestrator too
	d2 := env.Delegate(t, "orchestrator", d1, "", url.Values{"scope": {"db:read:x"}})
	child := env.Delegate(t, "orchestrator", root, "researcher", nil)
	env.Post(t, "revocation_endpoint", "researcher", url.Values{"token": {child}}) // already revoked
	r := admin(t, env, "POST", httpapi.PathAdminRevoke, "ops", map[string]any{"holder": "orchestrator", "reason": "x"})
	// root, d1 and d2 are all the orchestrator's: one record (root) cuts all three.
	if r.JSON["revoked"] != float64(1) || r.JSON["unusable"] != float64(3) {
		t.Fatalf("holder revoke: %s", r.Raw)
	}
	for _, tok := range []string{root, d1, d2} {
		if active(t, env, tok) {
			t.Error("a token survived")
		}
	}
}
