package main

import (
	"encoding/json"
	"fmt"
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
	out := expect(0, "revocation checked: not revoked (the token and 2 ancestors, at "+e.env.URL+")", "inspect", e.grand)
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
	expect(0, "revocation checked: not revoked (the token, a root: no ancestor, at ", "inspect", e.root)
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

// TestInspectRefusesACompromisedKey: a token signed by a key withdrawn by an
// emergency rotation is refused (exit 1, naming the key and when) whenever
// the server or its data file is at hand, even against a JWKS saved before
// the rotation that still lists the key; offline, nothing says the key was
// withdrawn, and the verdict stays "revocation unknown" (exit 3).
func TestInspectRefusesACompromisedKey(t *testing.T) {
	e := newInspectEnv(t) // its JWKS file is saved before the rotation
	kid := e.env.Keys.CurrentKeyID()
	e.env.Clock.Advance(time.Minute)
	if _, _, err := e.env.Svc.RotateCompromisedKey(t.Context(), "ops", "", "", "key file in a leaked backup"); err != nil {
		t.Fatal(err)
	}
	e.norm.add(e.env.Keys.CurrentKeyID(), "KID-new")
	var tr transcript
	want := "verdict  REFUSED: signed by key " + kid + ", withdrawn as compromised at 2026-11-27T09:01:03Z\n"

	tr.WriteString("# the JWKS saved before the rotation, the server at hand: refused\n")
	e.online(t)
	if out, code := tr.run(t, "", "inspect", e.grand, "--jwks", e.jwks); code != exitDenied || !strings.Contains(out, want) {
		t.Errorf("--jwks file and a server: exit %d\n%s", code, out)
	}
	out, _, code := runMain(t, "", "inspect", e.lone, "--jwks", e.jwks, "--format", "json")
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != exitDenied || r.Verdict != verdictRefused ||
		r.Revocation.Status != "key-compromised" || r.Revocation.KeyWithdrawnAt == nil || !r.Revocation.Checked {
		t.Errorf("JSON: exit %d, %v\n%s", code, err, out)
	}
	tr.WriteString("# the server's own JWKS no longer lists the key\n")
	if out, code := tr.run(t, "", "inspect", e.grand); code != exitDenied || !strings.Contains(out, "signature: ") {
		t.Errorf("the server's JWKS: exit %d\n%s", code, out)
	}
	tr.WriteString("# offline: nothing says the key was withdrawn\n")
	offline(t)
	if out, code := tr.run(t, "", "inspect", e.grand, "--jwks", e.jwks); code != exitRevocationUnknown || strings.Contains(out, "valid:") {
		t.Errorf("offline: exit %d\n%s", code, out)
	}
	tr.WriteString("# the stopped server's data file knows\n")
	e.env.Stop(t)
	if out, code := tr.run(t, "", "inspect", e.grand, "--jwks", e.jwks, "--db", e.env.Dir); code != exitDenied || !strings.Contains(out, want) {
		t.Errorf("--db: exit %d\n%s", code, out)
	}
	goldenCLI(t, "inspect-compromised-key.txt", tr.String(), e.norm)
}

// TestInspectReadsWhatIsPasted: a token pasted with its Authorization
// scheme (Bearer or DPoP, any case, with or without "Authorization:") is
// read as the token; a whole token response is answered with what to pass,
// without echoing the token; a token without iat or exp shows "(none)", not
// 1970; a root's check says "no ancestor".
func TestInspectReadsWhatIsPasted(t *testing.T) {
	e := newInspectEnv(t)
	e.online(t)
	var tr transcript
	for _, pasted := range []string{"Bearer " + e.lone, "bearer " + e.lone, "DPoP " + e.lone, "dpop  " + e.lone + "\n",
		"Authorization: Bearer " + e.lone} {
		out, stderr, code := runMain(t, "", "inspect", pasted)
		if code != exitOK || stderr != "" || !strings.Contains(out, "jti      "+e.env.Claims(t, e.lone).ID+"\n") {
			t.Errorf("inspect %q: exit %d, %q\n%s", e.norm.apply(pasted), code, stderr, out)
		}
	}
	tr.run(t, "", "inspect", "Bearer "+e.lone)
	resp := `{"access_token":"` + e.lone + `","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":900}`
	_, stderr, code := runMain(t, "", "inspect", resp)
	if code != exitError || stderr != "mandate: this looks like a token response: pass its access_token\n" {
		t.Errorf("a token response: exit %d, %q", code, stderr)
	}
	if strings.Contains(stderr, e.lone) {
		t.Error("the token is echoed")
	}
	tr.WriteString("# a token response pasted whole\n$ mandate inspect '{\"access_token\":\"TOKEN-lone\",...}'\n" + stderr + fmt.Sprintf("[exit %d]\n\n", code))

	tr.WriteString("# no iat, no exp (refused: a token must expire)\n")
	offline(t)
	bare := handMade(t, map[string]any{"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}, map[string]any{"iss": e.env.URL, "sub": "orchestrator",
		"sub_iss": e.env.URL, "client_id": "orchestrator", "aud": []string{"https://db.example"}, "scope": "db:read:*", "jti": "bare-jti", "lineage": []string{}})
	e.norm.add(bare, "TOKEN-bare")
	out, code := tr.run(t, "", "inspect", bare, "--jwks", e.jwks)
	if code != exitDenied || !strings.Contains(out, "issued   (none)\nexpires  (none)\n") || strings.Contains(out, "1970") {
		t.Errorf("no iat/exp: exit %d\n%s", code, out)
	}
	tr.WriteString("# a root: no ancestor to check\n")
	e.online(t)
	if out, code := tr.run(t, "", "inspect", e.root); code != exitOK || !strings.Contains(out, "revocation checked: not revoked (the token, a root: no ancestor, at "+e.env.URL+")") {
		t.Errorf("a root: exit %d\n%s", code, out)
	}
	if out, _ := tr.run(t, "", "inspect", e.child); !strings.Contains(out, "(the token and 1 ancestor, at ") {
		t.Errorf("one ancestor:\n%s", out)
	}
	goldenCLI(t, "inspect-pasted.txt", tr.String(), e.norm)
}

// TestInspectNamesRefusedCredentials: a server that was reached but refused
// the admin credentials, or whose client is not an admin, is named in the
// verdict, not called offline (exit 3 all the same: revocation unknown).
func TestInspectNamesRefusedCredentials(t *testing.T) {
	e := newInspectEnv(t)
	for _, tt := range []struct{ id, secret, because string }{
		{"ops", "wrong", "the server refused the admin credentials (MANDATE_CLIENT_ID/MANDATE_CLIENT_SECRET)"},
		{"orchestrator", dt.Secret("orchestrator"), `client "orchestrator" is not an admin client (role: admin in the config)`},
	} {
		t.Setenv("MANDATE_SERVER", e.env.URL)
		t.Setenv("MANDATE_CLIENT_ID", tt.id)
		t.Setenv("MANDATE_CLIENT_SECRET", tt.secret)
		out, _, code := runMain(t, "", "inspect", e.grand)
		if code != exitRevocationUnknown || !strings.Contains(out, "verdict  valid signature; revocation unknown (the server refused the admin credentials)\n") ||
			!strings.Contains(out, "revocation not checked: "+tt.because+"\n") || strings.Contains(out, "offline") {
			t.Errorf("%s: exit %d\n%s", tt.id, code, out)
		}
	}
}
