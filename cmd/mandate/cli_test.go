package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
)

// runMain runs the CLI as main() would: stdout, then the error main prints
// on stderr ("mandate: ..."), and the exit status it maps the error to.
func runMain(t *testing.T, stdin string, args ...string) (out, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := newRootCmd(strings.NewReader(stdin), &o, &e)
	cmd.SetArgs(args)
	err := cmd.Execute()
	code, show := exitCode(err)
	if show {
		fmt.Fprintln(&e, "mandate:", err)
	}
	return o.String(), e.String(), code
}

// transcript records CLI runs as a shell session would show them, for a
// golden file.
type transcript struct{ bytes.Buffer }

// run runs the CLI and appends the command line, its output, its error and
// its exit status; it returns stdout and the exit status.
func (tr *transcript) run(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	out, stderr, code := runMain(t, stdin, args...)
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if a == "" || strings.ContainsAny(a, " \"'") {
			shown[i] = fmt.Sprintf("%q", a)
		}
	}
	fmt.Fprintf(tr, "$ mandate %s\n%s%s[exit %d]\n\n", strings.Join(shown, " "), out, stderr, code)
	return out, code
}

// closedPort is an address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestTyposAndStrayArgumentsFail: an unknown subcommand or a stray argument
// is an error (exit 2) with cobra's suggestions, in every command group, so
// a CI step with a typo fails instead of printing help and passing.
func TestTyposAndStrayArgumentsFail(t *testing.T) {
	t.Setenv("MANDATE_SERVER", "")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "verfy"}, "unknown command \"verfy\" for \"mandate audit\"\n\nDid you mean this?\n\tverify"},
		{[]string{"audit", "tial"}, "unknown command \"tial\" for \"mandate audit\"\n\nDid you mean this?\n\ttail"},
		{[]string{"keys", "rotat"}, "unknown command \"rotat\" for \"mandate keys\"\n\nDid you mean this?\n\trotate"},
		{[]string{"keys", "lis"}, "unknown command \"lis\" for \"mandate keys\"\n\nDid you mean this?\n\tlist"},
		{[]string{"tokens", "lst"}, "unknown command \"lst\" for \"mandate tokens\"\n\nDid you mean this?\n\tlist"},
		{[]string{"policy", "chek"}, "unknown command \"chek\" for \"mandate policy\"\n\nDid you mean this?\n\tcheck"},
		{[]string{"config", "chek"}, "unknown command \"chek\" for \"mandate config\"\n\nDid you mean this?\n\tcheck"},
		{[]string{"lineag", "x"}, "unknown command \"lineag\" for \"mandate\"\n\nDid you mean this?\n\tlineage\n"},
		// no suggestion when nothing is close
		{[]string{"audit", "xyzzy"}, `unknown command "xyzzy" for "mandate audit"`},
		// stray arguments
		{[]string{"tokens", "list", "extra"}, `unknown command "extra" for "mandate tokens list"`},
		{[]string{"keys", "list", "extra"}, `unknown command "extra" for "mandate keys list"`},
		{[]string{"keys", "rotate", "extra"}, `unknown command "extra" for "mandate keys rotate"`},
		{[]string{"audit", "tail", "extra"}, `unknown command "extra" for "mandate audit tail"`},
		{[]string{"audit", "verify", "extra"}, `unknown command "extra" for "mandate audit verify"`},
		{[]string{"policy", "check", "extra"}, `unknown command "extra" for "mandate policy check"`},
		{[]string{"hash-secret", "extra"}, `unknown command "extra" for "mandate hash-secret"`},
		{[]string{"bench", "extra"}, `unknown command "extra" for "mandate bench"`},
		{[]string{"lineage"}, "accepts 1 arg(s), received 0"},
		{[]string{"lineage", "a", "b"}, "accepts 1 arg(s), received 2"},
		{[]string{"inspect", "a", "b"}, "accepts 1 arg(s), received 2"},
		{[]string{"revoke", "a", "b", "--reason", "r"}, "accepts at most 1 arg(s), received 2"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, stderr, code := runMain(t, "", tt.args...)
			if code != exitError || stderr != "mandate: "+tt.want+"\n" {
				t.Errorf("exit %d, stderr:\n%q\nwant exit 2 and\n%q", code, stderr, "mandate: "+tt.want+"\n")
			}
			if out != "" {
				t.Errorf("printed help or data on an error:\n%s", out)
			}
		})
	}
}

// TestBareGroupPrintsHelp: a group named alone prints its help (exit 0), the
// negative side of the rule above.
func TestBareGroupPrintsHelp(t *testing.T) {
	for _, g := range []string{"audit", "keys", "tokens", "policy"} {
		out, stderr, code := runMain(t, "", g)
		if code != exitOK || stderr != "" || !strings.Contains(out, "Available Commands:") {
			t.Errorf("mandate %s: exit %d, stderr %q\n%s", g, code, stderr, out)
		}
	}
}

// TestEveryCommandDeclaresItsArgs walks the command tree: a group refuses
// unknown subcommands (groupCmd), a leaf declares what arguments it takes,
// and a command with --format validates it before running.
func TestEveryCommandDeclaresItsArgs(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			path := sub.CommandPath()
			switch {
			case sub.Args == nil:
				t.Errorf("%s declares no Args", path)
			case sub.HasSubCommands() && sub.RunE == nil:
				t.Errorf("%s: a group without RunE prints help and exits 0 on a typo (use groupCmd)", path)
			case sub.Flags().Lookup("format") != nil && sub.PreRunE == nil:
				t.Errorf("%s: --format not validated (use addFormatFlag)", path)
			}
			walk(sub)
		}
	}
	walk(newRootCmd(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
}

// TestFormatIsValidatedEverywhere: every command that prints data refuses a
// --format it cannot print, with one message, before sending or reading
// anything (the server here is a closed port: reaching it would say so).
func TestFormatIsValidatedEverywhere(t *testing.T) {
	t.Setenv("MANDATE_SERVER", "http://"+closedPort(t))
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", "x")
	for _, tt := range []struct {
		args    []string
		allowed string
	}{
		{[]string{"lineage", "jti"}, "tree, json, dot"},
		{[]string{"tokens", "list"}, "table, json"},
		{[]string{"keys", "list"}, "table, json"},
		{[]string{"keys", "rotate"}, "text, json"},
		{[]string{"revoke", "jti", "--reason", "r"}, "text, json"},
		{[]string{"inspect", "a.b.c"}, "text, json"},
		{[]string{"audit", "tail"}, "text, json"},
		{[]string{"audit", "verify"}, "text, json"},
		{[]string{"policy", "check", "--request", "-", "--dir", "."}, "text, json"},
		{[]string{"bench"}, "text, json"},
	} {
		for _, bad := range []string{"garbage", "JSON", ""} {
			args := append(append([]string{}, tt.args...), "--format", bad)
			_, stderr, code := runMain(t, "", args...)
			want := fmt.Sprintf("mandate: --format %q is not one of %s\n", bad, tt.allowed)
			if code != exitError || stderr != want {
				t.Errorf("mandate %s: exit %d, %q; want %q", strings.Join(args, " "), code, stderr, want)
			}
		}
	}
}

// TestExitCodes: errDenied is 1, errRevocationUnknown 3 (both already
// printed), anything else 2 (printed by main), wrapped or not.
func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		show bool
	}{
		{nil, 0, false},
		{errDenied, 1, false},
		{fmt.Errorf("x: %w", errDenied), 1, false},
		{errRevocationUnknown, 3, false},
		{fmt.Errorf("x: %w", errRevocationUnknown), 3, false},
		{errors.New("boom"), 2, true},
		{errReadOnly, 2, true},
	} {
		if code, show := exitCode(tt.err); code != tt.code || show != tt.show {
			t.Errorf("exitCode(%v) = %d, %v; want %d, %v", tt.err, code, show, tt.code, tt.show)
		}
	}
}

// TestMainExitStatuses runs the binary itself (TestMain's child mode) and
// reads the process's exit status: 0, 1, 2 and 3 as documented.
func TestMainExitStatuses(t *testing.T) {
	// The child runs on the real clock: so does this server.
	env := dt.New(t, dt.Options{Clock: dt.NewClock(time.Now())})
	jwks := writeJWKS(t, env)
	tok := env.Mint(t, "orchestrator", nil)
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		code int
	}{
		{"help", []string{"keys"}, nil, 0},
		{"typo", []string{"keys", "rotat"}, nil, 2},
		{"valid, revocation checked", []string{"inspect", tok}, []string{"MANDATE_SERVER=" + env.URL, "MANDATE_CLIENT_ID=ops", "MANDATE_CLIENT_SECRET=" + dt.Secret("ops")}, 0},
		{"refused", []string{"inspect", tok + "x", "--jwks", jwks}, nil, 1},
		{"revocation unknown", []string{"inspect", tok, "--jwks", jwks}, nil, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(os.Environ(), testChildEnv+"=1", "MANDATE_SERVER=", "MANDATE_CLIENT_ID=", "MANDATE_CLIENT_SECRET=")
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, out)
			}
		})
	}
}

// TestNetworkHints: a server that cannot be reached, an address without a
// scheme, wrong credentials and a non-admin client each say what to check.
func TestNetworkHints(t *testing.T) {
	env := dt.New(t, dt.Options{})
	closed := "http://" + closedPort(t)
	var tr transcript
	for _, tt := range []struct {
		server, id, secret string
		args               []string
		want               string
	}{
		{closed, "ops", "x", []string{"tokens", "list"},
			`cannot reach the server at ` + closed + `: connection refused — is "mandate serve" running there? (set --server or MANDATE_SERVER)`},
		{closed, "", "", []string{"inspect", handMade(t, map[string]any{"alg": "EdDSA", "kid": "k1"}, map[string]any{"jti": "j1"})},
			`cannot reach the server at ` + closed + `: connection refused — is "mandate serve" running there? (set --server or MANDATE_SERVER)`},
		{"localhost:8080", "ops", "x", []string{"keys", "list"}, `MANDATE_SERVER "localhost:8080" must look like http://host:port`},
		{"127.0.0.1:8080", "ops", "x", []string{"audit", "verify"}, `MANDATE_SERVER "127.0.0.1:8080" must look like http://host:port`},
		{"ftp://host", "ops", "x", []string{"audit", "verify"}, `MANDATE_SERVER "ftp://host" must look like http://host:port`},
		{env.URL, "ops", "wrong", []string{"tokens", "list"}, `the server refused the admin credentials (MANDATE_CLIENT_ID/MANDATE_CLIENT_SECRET)`},
		{env.URL, "orchestrator", dt.Secret("orchestrator"), []string{"tokens", "list"}, `client "orchestrator" is not an admin client (role: admin in the config)`},
	} {
		t.Setenv("MANDATE_SERVER", tt.server)
		t.Setenv("MANDATE_CLIENT_ID", tt.id)
		t.Setenv("MANDATE_CLIENT_SECRET", tt.secret)
		_, stderr, code := runMain(t, "", tt.args...)
		if code != exitError || stderr != "mandate: "+tt.want+"\n" {
			t.Errorf("%s %v: exit %d, %q; want %q", tt.server, tt.args, code, stderr, tt.want)
		}
		fmt.Fprintf(&tr, "# MANDATE_SERVER=%s MANDATE_CLIENT_ID=%s\n", tt.server, tt.id)
		tr.run(t, "", tt.args...)
	}
	// An explicit --jwks URL is named as such.
	t.Setenv("MANDATE_SERVER", "")
	if _, stderr, code := runMain(t, "", "inspect", handMade(t, map[string]any{"alg": "EdDSA"}, map[string]any{"jti": "j1"}), "--jwks", closed+"/jwks.json"); code != exitError ||
		stderr != "mandate: cannot fetch the JWKS at "+closed+"/jwks.json: connection refused (check --jwks)\n" {
		t.Errorf("--jwks URL unreachable: exit %d, %q", code, stderr)
	}
	// --server says which setting was wrong.
	t.Setenv("MANDATE_SERVER", "")
	if _, stderr, _ := runMain(t, "", "keys", "list", "--server", "localhost:8080"); stderr != "mandate: --server \"localhost:8080\" must look like http://host:port\n" {
		t.Errorf("--server without a scheme: %q", stderr)
	}
	goldenCLI(t, "network-hints.txt", tr.String(), nil)
}

// TestHashSecretCost: a cost bcrypt would not honour is refused; the others
// are honoured.
func TestHashSecretCost(t *testing.T) {
	for _, bad := range []string{"3", "0", "-1", "32"} {
		_, stderr, code := runMain(t, "s3cret\n", "hash-secret", "--cost", bad)
		if want := "mandate: --cost " + bad + " is outside bcrypt's 4..31 (default 10)\n"; code != exitError || stderr != want {
			t.Errorf("--cost %s: exit %d, %q", bad, code, stderr)
		}
	}
	for _, c := range []int{4, 5} {
		out, _, code := runMain(t, "s3cret\n", "hash-secret", "--cost", fmt.Sprint(c))
		h := strings.TrimSpace(out)
		got, err := bcrypt.Cost([]byte(h))
		if code != exitOK || err != nil || got != c || bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
			t.Errorf("--cost %d: exit %d, cost %d (%v)", c, code, got, err)
		}
	}
	if _, stderr, _ := runMain(t, "", "bench", "--bcrypt-cost", "3"); stderr != "mandate: --bcrypt-cost 3 is outside bcrypt's 4..31 (default 10)\n" {
		t.Errorf("bench --bcrypt-cost 3: %q", stderr)
	}
}

// TestReadOnlyDBRefusesWrites: --db opens the file read-only; revoke (every
// form, even one that would find nothing to revoke) and keys rotate refuse.
func TestReadOnlyDBRefusesWrites(t *testing.T) {
	dir := fixedStore(t)
	for _, args := range [][]string{
		{"revoke", "tok-db-agent", "--reason", "x"},
		{"revoke", "--holder", "nobody-holds-this", "--reason", "x"}, // exited 0: nothing listed, nothing refused
		{"revoke", "--subject", "orchestrator", "--reason", "x"},
		{"revoke", "--root", "task-root", "--reason", "x", "--format", "json"},
		{"keys", "rotate"},
		{"keys", "rotate", "--compromised", "--reason", "x"},
	} {
		out, stderr, code := runMain(t, "", append(args, "--db", dir)...)
		if code != exitError || stderr != "mandate: "+errReadOnly.Error()+"\n" || out != "" {
			t.Errorf("%v: exit %d, %q\n%s", args, code, stderr, out)
		}
	}
	// The reads still work.
	if _, stderr, code := runMain(t, "", "keys", "list", "--db", dir); code != exitOK {
		t.Errorf("keys list --db: exit %d %s", code, stderr)
	}
}

// TestUnknownJTIIsNamedOnce: a jti with no record is named once, by the
// admin API and by a data file alike.
func TestUnknownJTIIsNamedOnce(t *testing.T) {
	env := dt.New(t, dt.Options{})
	want := "mandate: no token with jti \"NOPE\" (never issued here, or collected after tokens.retention)\n"
	var tr transcript
	t.Setenv("MANDATE_SERVER", env.URL)
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("ops"))
	for _, args := range [][]string{
		{"lineage", "NOPE"},
		{"revoke", "NOPE", "--reason", "x"},
		{"revoke", "--root", "NOPE", "--reason", "x"},
		{"lineage", "NOPE", "--db", fixedStore(t)},
	} {
		tr.run(t, "", args...)
		if _, stderr, code := runMain(t, "", args...); code != exitError || stderr != want {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	goldenCLI(t, "unknown-jti.txt", tr.String(), nil)
}

// writeJWKS writes the server's JWKS into a file, for offline inspection.
func writeJWKS(t *testing.T, env *dt.Env) string {
	t.Helper()
	r := env.Get(t, env.URL+"/.well-known/jwks.json")
	if r.Status != 200 {
		t.Fatalf("jwks: %d", r.Status)
	}
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, r.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// handMade assembles a token from a header and claims, with an empty
// signature: what an attacker or a broken client might send.
func handMade(t *testing.T, hdr, claims map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return dt.JWS(hdr, base64.RawURLEncoding.EncodeToString(raw), nil)
}

// TestServerURLCarriesNoCredentials: a server address with credentials in
// it (MANDATE_SERVER=http://ops:pw@host, --server, a URL without a scheme)
// is refused, naming the variables the credentials belong in, and its
// password appears in no output of any command; nor does a --jwks URL's.
func TestServerURLCarriesNoCredentials(t *testing.T) {
	env := dt.New(t, dt.Options{})
	clockNow = env.Clock.Now
	t.Cleanup(func() { clockNow = time.Now })
	const pw = "hunter2-not-for-printing"
	host := strings.TrimPrefix(env.URL, "http://")
	tok := env.Mint(t, "orchestrator", nil)
	norm := (&normalizer{}).add(tok, "TOKEN").add(env.Claims(t, tok).ID, "JTI").add(env.Keys.CurrentKeyID(), "KID")
	var tr transcript
	const refused = "MANDATE_SERVER must not carry credentials: set MANDATE_CLIENT_ID and MANDATE_CLIENT_SECRET"
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("ops"))
	for _, server := range []string{"http://ops:" + pw + "@" + host, "ops:" + pw + "@" + host, "ftp://ops:" + pw + "@" + host, "http://ops:" + pw + "@" + host + "/?x=1"} {
		t.Setenv("MANDATE_SERVER", server)
		fmt.Fprintf(&tr, "# MANDATE_SERVER=%s\n", redactURL(server))
		for _, args := range [][]string{{"tokens", "list"}, {"lineage", "NOPE"}, {"inspect", tok}, {"revoke", "NOPE", "--reason", "x"}, {"audit", "verify"}} {
			out, stderr, code := runMain(t, "", args...)
			if code != exitError || stderr != "mandate: "+refused+"\n" || strings.Contains(out+stderr, pw) {
				t.Errorf("%s %v: exit %d, %q\n%s", redactURL(server), args, code, stderr, out)
			}
		}
		tr.run(t, "", "tokens", "list")
	}
	t.Setenv("MANDATE_SERVER", "")
	_, stderr, code := runMain(t, "", "keys", "list", "--server", "http://ops:"+pw+"@"+host)
	if want := "mandate: --server must not carry credentials: set MANDATE_CLIENT_ID and MANDATE_CLIENT_SECRET\n"; code != exitError || stderr != want {
		t.Errorf("--server with credentials: exit %d, %q", code, stderr)
	}
	// A --jwks URL may carry credentials (a protected JWKS); they are not
	// printed. (The transcript shows the command line redacted: only what
	// the CLI prints is checked.)
	closed := closedPort(t)
	for _, tt := range []struct {
		jwks, want string
		args       []string
		code       int
	}{
		{"http://u:" + pw + "@" + closed + "/jwks.json", "mandate: cannot fetch the JWKS at http://u:xxxxx@" + closed + "/jwks.json: connection refused (check --jwks)\n", nil, exitError},
		{"http://u:" + pw + "@" + host + "/.well-known/jwks.json", "signature by http://u:xxxxx@" + host + "/.well-known/jwks.json,", nil, exitRevocationUnknown},
		{"http://u:" + pw + "@" + host + "/.well-known/jwks.json", `"jwks": "http://u:xxxxx@` + host + `/.well-known/jwks.json"`, []string{"--format", "json"}, exitRevocationUnknown},
		{"http://u:" + pw + "@" + host + "/nothing-here.json", "mandate: JWKS http://u:xxxxx@" + host + "/nothing-here.json: HTTP 404\n", nil, exitError},
	} {
		args := append([]string{"inspect", tok, "--jwks", tt.jwks}, tt.args...)
		out, stderr, code := runMain(t, "", args...)
		if code != tt.code || !strings.Contains(out+stderr, tt.want) || strings.Contains(out+stderr, pw) {
			t.Errorf("--jwks %s: exit %d, want %d and %q:\n%s%s", redactURL(tt.jwks), code, tt.code, tt.want, out, stderr)
		}
		args[3] = redactURL(tt.jwks)
		fmt.Fprintf(&tr, "$ mandate %s\n%s%s[exit %d]\n\n", strings.Join(args, " "), out, stderr, code)
	}
	goldenCLI(t, "server-credentials.txt", tr.String(), norm)
}

// TestServerURLNotMandates: an address that is not Mandate's own URL says
// so: a path Mandate does not serve under, or a proxy, answers 404 on the
// admin API's paths, and that is never taken for "no record of this token";
// a query or fragment is refused before anything is sent; an https://
// address of a server speaking http names the scheme to use.
func TestServerURLNotMandates(t *testing.T) {
	env := dt.New(t, dt.Options{})
	clockNow = env.Clock.Now
	t.Cleanup(func() { clockNow = time.Now })
	tok := env.Mint(t, "orchestrator", nil)
	jwks := writeJWKS(t, env)
	plain := httptest.NewServer(http.NotFoundHandler()) // a non-JSON 404, as a proxy would answer
	t.Cleanup(plain.Close)
	norm := (&normalizer{}).add(tok, "TOKEN").add(env.Claims(t, tok).ID, "JTI").add(env.Keys.CurrentKeyID(), "KID")
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("ops"))
	var tr transcript
	noEndpoint := func(base, endpoint string) string {
		return "the server at " + base + " has no " + endpoint + " endpoint: is MANDATE_SERVER Mandate's own URL (its issuer)?"
	}
	https := "https://" + strings.TrimPrefix(env.URL, "http://")
	for _, tt := range []struct {
		server string
		args   []string
		want   string
	}{
		{env.URL + "/mandate", []string{"tokens", "list"}, noEndpoint(env.URL+"/mandate", "/admin/tokens")},
		{env.URL + "/mandate", []string{"lineage", "NOPE"}, noEndpoint(env.URL+"/mandate", "/admin/lineage/:jti")},
		{env.URL + "/mandate", []string{"revoke", "NOPE", "--reason", "x"}, noEndpoint(env.URL+"/mandate", "/admin/revoke")},
		{env.URL + "/mandate", []string{"inspect", tok}, noEndpoint(env.URL+"/mandate", "/.well-known/jwks.json")},
		// /admin/admin/... passes the admin API's authentication, then 404s: the router's not_found
		{env.URL + "/admin", []string{"lineage", "NOPE"}, noEndpoint(env.URL+"/admin", "/admin/lineage/:jti")},
		{plain.URL, []string{"keys", "list"}, noEndpoint(plain.URL, "/admin/keys")},
		{plain.URL, []string{"lineage", "NOPE"}, noEndpoint(plain.URL, "/admin/lineage/:jti")},
		{env.URL + "?x=1", []string{"tokens", "list"}, `MANDATE_SERVER "` + env.URL + `?x=1" must not carry a query or fragment: give Mandate's own URL (its issuer), such as https://mandate.example`},
		{env.URL + "/?", []string{"tokens", "list"}, `MANDATE_SERVER "` + env.URL + `/?" must not carry a query or fragment: give Mandate's own URL (its issuer), such as https://mandate.example`},
		{env.URL + "#top", []string{"audit", "verify"}, `MANDATE_SERVER "` + env.URL + `#top" must not carry a query or fragment: give Mandate's own URL (its issuer), such as https://mandate.example`},
		{https, []string{"tokens", "list"}, "the server at " + https + " speaks http, not https: use " + env.URL},
		{https, []string{"inspect", tok}, "the server at " + https + " speaks http, not https: use " + env.URL},
	} {
		t.Setenv("MANDATE_SERVER", tt.server)
		fmt.Fprintf(&tr, "# MANDATE_SERVER=%s\n", tt.server)
		out, code := tr.run(t, "", tt.args...)
		_, stderr, _ := runMain(t, "", tt.args...)
		if code != exitError || stderr != "mandate: "+tt.want+"\n" || out != "" {
			t.Errorf("%s %v: exit %d, %q; want\n%q", tt.server, tt.args, code, stderr, tt.want)
		}
	}
	// inspect with a JWKS file: revocation unknown, and why (the server was
	// reached: not "offline").
	t.Setenv("MANDATE_SERVER", env.URL+"/mandate")
	fmt.Fprintf(&tr, "# MANDATE_SERVER=%s\n", env.URL+"/mandate")
	out, code := tr.run(t, "", "inspect", tok, "--jwks", jwks)
	if code != exitRevocationUnknown || !strings.Contains(out, "revocation unknown (the server could not answer)") ||
		!strings.Contains(out, "revocation not checked: "+noEndpoint(env.URL+"/mandate", "/admin/keys")) {
		t.Errorf("inspect --jwks FILE, the server at a path: exit %d\n%s", code, out)
	}
	// The server's own URL still finds what it has no record of.
	t.Setenv("MANDATE_SERVER", env.URL+"/")
	if _, stderr, code := runMain(t, "", "lineage", "NOPE"); code != exitError || !strings.Contains(stderr, `no token with jti "NOPE"`) {
		t.Errorf("lineage of an unknown jti: exit %d, %q", code, stderr)
	}
	goldenCLI(t, "server-url.txt", tr.String(), norm.add(plain.URL, "http://PLAIN").add(https, "https://127.0.0.1:PORT"))
}

// TestConfigFileAsArgument: serve and config check take the configuration
// with --config; a file given as an argument gets that flag, not "unknown
// command"; any other argument is still refused as one.
func TestConfigFileAsArgument(t *testing.T) {
	var tr transcript
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "check", "mandate.yaml"}, "pass the configuration with --config mandate.yaml"},
		{[]string{"serve", "mandate.yaml"}, "pass the configuration with --config mandate.yaml"},
		{[]string{"serve", "/etc/mandate/Mandate.YML"}, "pass the configuration with --config /etc/mandate/Mandate.YML"},
		{[]string{"config", "check", "mandate.yaml", "--format", "json"}, "pass the configuration with --config mandate.yaml"},
		{[]string{"serve", "extra"}, `unknown command "extra" for "mandate serve"`},
		{[]string{"config", "check", "extra"}, `unknown command "extra" for "mandate config check"`},
	} {
		out, stderr, code := runMain(t, "", tt.args...)
		if code != exitError || stderr != "mandate: "+tt.want+"\n" || out != "" {
			t.Errorf("mandate %s: exit %d, %q; want %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
		tr.run(t, "", tt.args...)
	}
	goldenCLI(t, "config-file-argument.txt", tr.String(), nil)
}

// TestCountsMustBePositive: a page size or a number of records below 1 is
// refused before anything is sent (the server is a closed port: reaching it
// would say so), not passed on for the server to interpret.
func TestCountsMustBePositive(t *testing.T) {
	t.Setenv("MANDATE_SERVER", "http://"+closedPort(t))
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", "x")
	var tr transcript
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "tail", "-n", "-5"}, "-n must be at least 1 (got -5)"},
		{[]string{"audit", "tail", "-n", "0"}, "-n must be at least 1 (got 0)"},
		{[]string{"audit", "tail", "-f", "-n", "0"}, "-n must be at least 1 (got 0)"},
		{[]string{"tokens", "list", "--limit", "-1"}, "--limit must be at least 1 (got -1)"},
		{[]string{"tokens", "list", "--limit", "0", "--all"}, "--limit must be at least 1 (got 0)"},
	} {
		tr.run(t, "", tt.args...)
		out, stderr, code := runMain(t, "", tt.args...)
		if code != exitError || stderr != "mandate: "+tt.want+"\n" || out != "" {
			t.Errorf("mandate %s: exit %d, %q; want %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
	goldenCLI(t, "counts.txt", tr.String(), nil)
}

// TestWritersDoNotOfferDB: revoke and keys rotate write, so their help does
// not offer --db (which opens a file read-only); given all the same, it is
// refused with the reason (TestReadOnlyDBRefusesWrites).
func TestWritersDoNotOfferDB(t *testing.T) {
	for _, args := range [][]string{{"revoke", "--help"}, {"keys", "rotate", "--help"}} {
		out, _, code := runMain(t, "", args...)
		if code != exitOK || strings.Contains(out, "--db string") || !strings.Contains(out, "--server") ||
			!strings.Contains(out, "a stopped server's file (--db) is") {
			t.Errorf("mandate %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	for _, args := range [][]string{{"lineage", "--help"}, {"keys", "list", "--help"}, {"inspect", "--help"}} {
		if out, _, _ := runMain(t, "", args...); !strings.Contains(out, "--db string") {
			t.Errorf("mandate %s: a reader lost --db\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestHelpUnknownTopic: `mandate help TOPIC` for a topic that does not
// exist exits 2 (cobra's own help command prints "Unknown help topic" and
// exits 0, so a script's typo would pass), with suggestions; a known topic
// prints its help. newHelpCmd is installed here as newRootCmd (main.go)
// must install it: root.SetHelpCommand(newHelpCmd()).
func TestHelpUnknownTopic(t *testing.T) {
	runMain := func(t *testing.T, stdin string, args ...string) (string, string, int) {
		var o, e bytes.Buffer
		cmd := newRootCmd(strings.NewReader(stdin), &o, &e)
		cmd.SetHelpCommand(newHelpCmd())
		cmd.SetArgs(args)
		err := cmd.Execute()
		code, show := exitCode(err)
		if show {
			fmt.Fprintln(&e, "mandate:", err)
		}
		return o.String(), e.String(), code
	}
	var tr bytes.Buffer
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "foo"}, `unknown help topic "foo"`},
		{[]string{"help", "lineag"}, "unknown help topic \"lineag\"\n\nDid you mean this?\n\tlineage"},
		{[]string{"help", "audit", "verfy"}, "unknown help topic \"audit verfy\"\n\nDid you mean this?\n\tverify"},
		{[]string{"help", "inspect", "TOKEN"}, `unknown help topic "inspect TOKEN"`},
	} {
		out, stderr, code := runMain(t, "", tt.args...)
		fmt.Fprintf(&tr, "$ mandate %s\n%s%s[exit %d]\n\n", strings.Join(tt.args, " "), out, stderr, code)
		if code != exitError || stderr != "mandate: "+tt.want+"\n" || out != "" {
			t.Errorf("mandate %s: exit %d, %q\n%s", strings.Join(tt.args, " "), code, stderr, out)
		}
	}
	for _, args := range [][]string{{"help"}, {"help", "audit", "verify"}, {"help", "revoke"}} {
		out, stderr, code := runMain(t, "", args...)
		if code != exitOK || stderr != "" || !strings.Contains(out, "Usage:") {
			t.Errorf("mandate %s: exit %d, %q\n%s", strings.Join(args, " "), code, stderr, out)
		}
	}
	goldenCLI(t, "help-unknown-topic.txt", tr.String(), nil)
}

// TestOperatorsDocErrorsAreReal: every error docs/operators.md lists under
// "Connecting" is one the CLI prints, as a golden transcript records it
// (the doc's 127.0.0.1:8080 is the transcripts' 127.0.0.1:PORT).
func TestOperatorsDocErrorsAreReal(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operators.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "## Connecting")
	_, block, _ := strings.Cut(section, "not Go's error:\n\n```\n")
	block, _, _ = strings.Cut(block, "```")
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "cli-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var shown strings.Builder
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		shown.Write(raw)
	}
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) < 5 {
		t.Fatalf("the Connecting section's error list was not found:\n%s", block)
	}
	for _, l := range lines {
		if want := "mandate: " + strings.ReplaceAll(l, "127.0.0.1:8080", "127.0.0.1:PORT") + "\n"; !strings.Contains(shown.String(), want) {
			t.Errorf("docs/operators.md lists an error no golden transcript shows:\n%s", l)
		}
	}
}
