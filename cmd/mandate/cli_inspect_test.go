package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// inspectEnv is a running server with a task (root → researcher →
// db-agent), a second root, the server's JWKS in a file, and a normalizer
// that knows their jtis, tokens and key.
type inspectEnv struct {
	env                      *dt.Env
	jwks                     string
	root, child, grand, lone string
	norm                     *normalizer
}

func newInspectEnv(t *testing.T) *inspectEnv {
	t.Helper()
	env := dt.New(t, dt.Options{})
	clockNow = env.Clock.Now
	t.Cleanup(func() { clockNow = time.Now })
	e := &inspectEnv{env: env, jwks: writeJWKS(t, env), norm: &normalizer{}}
	e.root = env.Mint(t, "orchestrator", nil)
	env.Clock.Advance(time.Second)
	e.child = env.Delegate(t, "orchestrator", e.root, "researcher", url.Values{"scope": {"db:read:*"}})
	env.Clock.Advance(time.Second)
	e.grand = env.Delegate(t, "researcher", e.child, "db-agent", url.Values{"scope": {"db:read:orders"}})
	env.Clock.Advance(time.Second)
	e.lone = env.Mint(t, "researcher", nil)
	for tok, name := range map[string]string{e.root: "root", e.child: "child", e.grand: "grand", e.lone: "lone"} {
		e.norm.add(tok, "TOKEN-"+name)
		e.norm.add(env.Claims(t, tok).ID, "JTI-"+name)
	}
	e.norm.add(env.Keys.CurrentKeyID(), "KID")
	return e
}

// online sets the server and admin credentials in the environment.
func (e *inspectEnv) online(t *testing.T) {
	t.Setenv("MANDATE_SERVER", e.env.URL)
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("ops"))
}

// offline clears them.
func offline(t *testing.T) {
	t.Setenv("MANDATE_SERVER", "")
	t.Setenv("MANDATE_CLIENT_ID", "")
	t.Setenv("MANDATE_CLIENT_SECRET", "")
}

// TestInspectVerdicts: inspect says valid (0) only when revocation was
// checked, refused (1) when the token or any ancestor is revoked or a check
// fails, and "valid signature; revocation unknown (offline)" (3) when it
// could not check revocation, against a real server, offline with --jwks,
// and on a stopped server's data file.
func TestInspectVerdicts(t *testing.T) {
	e := newInspectEnv(t)
	var tr transcript
	expect := func(code int, want string, args ...string) string {
		t.Helper()
		out, got := tr.run(t, "", args...)
		if got != code || !strings.Contains(out, want) {
			t.Errorf("mandate %s: exit %d (want %d), output lacks %q:\n%s", strings.Join(args, " "), got, code, want, e.norm.apply(out))
		}
		return out
	}
	say := func(s string) { tr.WriteString("# " + s + "\n") }

	say("online: the server checks the token and its ancestors")
	e.online(t)
	out := expect(0, "revocation checked: not revoked (the token and 2 ancestor(s), at "+e.env.URL+")", "inspect", e.grand)
	if !strings.Contains(out, "verdict  valid: signature by "+e.env.URL+"/.well-known/jwks.json, not expired, chain well-formed\n") {
		t.Errorf("the checks are not named:\n%s", out)
	}

	say("offline: a JWKS file and no server")
	offline(t)
	expect(3, "verdict  valid signature; revocation unknown (offline)", "inspect", e.grand, "--jwks", e.jwks)
	say("a server but no admin credentials")
	t.Setenv("MANDATE_SERVER", e.env.URL)
	expect(3, "revocation not checked: no admin credentials", "inspect", e.grand)
	say("credentials the server refuses")
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", "wrong")
	expect(3, "revocation not checked: the server refused the admin credentials", "inspect", e.grand)
	say("a server that cannot be reached (the JWKS from a file)")
	t.Setenv("MANDATE_SERVER", "http://"+closedPort(t))
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("ops"))
	expect(3, "revocation not checked: cannot reach the server", "inspect", e.grand, "--jwks", e.jwks)

	say("an ancestor revoked: the grandchild is refused, naming it")
	e.online(t)
	if _, code := tr.run(t, "", "revoke", e.env.Claims(t, e.child).ID, "--reason", "task step done"); code != 0 {
		t.Fatal("revoke failed")
	}
	childJTI := e.env.Claims(t, e.child).ID
	expect(1, `verdict  REFUSED: revoked (ancestor `+childJTI+` revoked 2026-11-27T09:00:03Z by ops: "task step done")`, "inspect", e.grand)
	expect(1, `verdict  REFUSED: revoked (2026-11-27T09:00:03Z by ops: "task step done")`, "inspect", e.child)
	expect(0, "revocation checked: not revoked (the token and 0 ancestor(s)", "inspect", e.root)
	say("a token signed by the server's key that it never issued")
	forged := e.env.Forge(t, e.lone, func(c *jwt.Claims) { c.ID = "forged-jti" })
	e.norm.add(forged, "TOKEN-forged")
	expect(1, "no record of this token at "+e.env.URL, "inspect", forged)

	say("checks that fail offline exit 1 too")
	offline(t)
	parts := strings.Split(e.lone, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	e.norm.add(tampered, "TOKEN-tampered")
	expect(1, "signature: ", "inspect", tampered, "--jwks", e.jwks)
	none := handMade(t, map[string]any{"alg": "none"}, map[string]any{"iss": e.env.URL, "sub": "orchestrator", "sub_iss": e.env.URL, "client_id": "orchestrator",
		"aud": []string{"https://db.example"}, "scope": "db:read:*", "jti": "none-jti", "lineage": []string{},
		"iat": dt.Start.Unix(), "nbf": dt.Start.Unix(), "exp": dt.Start.Add(time.Hour).Unix()})
	e.norm.add(none, "TOKEN-alg-none")
	expect(1, "header   alg none · kid (none) · typ (none)\n", "inspect", none, "--jwks", e.jwks)
	e.env.Clock.Advance(20 * time.Minute)
	expect(1, "expired 5m0s ago", "inspect", e.lone, "--jwks", e.jwks)

	say("a stopped server's data file answers for revocation")
	e.env.Clock.Advance(-20 * time.Minute)
	e.env.Stop(t)
	expect(1, "REFUSED: revoked (ancestor", "inspect", e.grand, "--jwks", e.jwks, "--db", e.env.Dir)
	expect(0, "revocation checked: not revoked", "inspect", e.lone, "--jwks", e.jwks, "--db", e.env.Dir)
	goldenCLI(t, "inspect.txt", tr.String(), e.norm)
}

// TestInspectJSON: the three verdicts as JSON (docs/operators.md), with the
// same exit statuses as text.
func TestInspectJSON(t *testing.T) {
	e := newInspectEnv(t)
	run := func(name string, code int, args ...string) map[string]any {
		t.Helper()
		out, stderr, got := runMain(t, "", append(args, "--format", "json")...)
		if got != code {
			t.Errorf("%s: exit %d, want %d: %s", name, got, code, stderr)
		}
		goldenCLI(t, name, out, e.norm)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", name, err, out)
		}
		return m
	}
	e.online(t)
	if m := run("inspect-valid.json", 0, "inspect", e.grand); m["verdict"] != verdictValid {
		t.Errorf("valid: %v", m["verdict"])
	}
	if _, _, code := runMain(t, "", "revoke", "--root", e.env.Claims(t, e.root).ID, "--reason", "task aborted"); code != 0 {
		t.Fatal("revoke failed")
	}
	if m := run("inspect-revoked.json", 1, "inspect", e.grand); m["verdict"] != verdictRefused {
		t.Errorf("revoked: %v", m["verdict"])
	}
	offline(t)
	if m := run("inspect-offline.json", 3, "inspect", e.lone, "--jwks", e.jwks); m["verdict"] != verdictRevocationUnknown {
		t.Errorf("offline: %v", m["verdict"])
	}
}
