package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
)

// configGolden compares out with cmd/mandate/testdata/golden/name, or
// rewrites it with -update (go test ./cmd/mandate -run Golden -update).
func configGolden(t *testing.T, name string, out []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/mandate -run Golden -update to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, out, want)
	}
}

// clearMandateEnv unsets every MANDATE_* variable for the test, so the
// machine's environment cannot change what a check prints.
func clearMandateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MANDATE_") {
			t.Setenv(k, "") // viper takes an empty variable for an unset one
		}
	}
}

const validConfig = "../../testdata/config/valid.yaml"

// badConfig has problems of every stage: types (a duration without a unit,
// a bool for a number), an unknown key; and, once those are fixed, ranges.
const badConfig = "tokens: {root_ttl: 15, max_depth: true}\nrate_limit: {per_second: fast}\nisuer: https://mandate.example\n" +
	"clients:\n  - id: a\n    secret: s\n    grants: [client_credentials]\n"

func TestConfigCheckGolden(t *testing.T) {
	clearMandateEnv(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(bad, []byte(badConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ranges := filepath.Join(dir, "ranges.yaml")
	if err := os.WriteFile(ranges, []byte("tokens: {root_ttl: 48h, delegated_ttl: 500ms, retention: 30s}\naudit: {retention: 100000h}\n"+
		"deviation: {max_denials: 3, window: 25h}\nrate_limit: {burst: -1, per_second: 0}\nclients:\n  - id: a b\n    grants: [password]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		golden string
		ok     bool
	}{
		{"valid", nil, []string{"--config", validConfig, "config", "check"}, "config-check-valid.txt", true},
		{"valid as json", nil, []string{"--config", validConfig, "config", "check", "--format", "json"}, "config-check-valid.json", true},
		{"environment and flags", map[string]string{"MANDATE_TOKENS_ROOT_TTL": "1h", "MANDATE_SIGNING_KEK": "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
			"MANDATE_RATE_LIMIT_PER_SECOND": "0"}, []string{"--config", validConfig, "config", "check", "--listen", "127.0.0.1:7000"}, "config-check-env.txt", true},
		{"types and unknown keys", nil, []string{"--config", bad, "config", "check"}, "config-check-types.txt", false},
		{"types as json", nil, []string{"--config", bad, "config", "check", "--format", "json"}, "config-check-types.json", false},
		{"ranges", nil, []string{"--config", ranges, "config", "check"}, "config-check-ranges.txt", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out, err := runCLI(t, "", tt.args...)
			if tt.ok != (err == nil) || errors.Is(err, errDenied) {
				t.Fatalf("err = %v\n%s", err, out)
			}
			if !tt.ok && !strings.Contains(err.Error(), "serve would refuse it") {
				t.Errorf("err = %v", err)
			}
			configGolden(t, tt.golden, []byte(strings.ReplaceAll(out, dir+string(filepath.Separator), "")))
		})
	}
}

// TestConfigCheckJSONShape: the JSON answer is {"ok", "config", "warnings",
// "errors", "note"} with lists never null, as docs/operators.md says.
func TestConfigCheckJSONShape(t *testing.T) {
	clearMandateEnv(t)
	for _, tc := range []struct {
		path string
		ok   bool
	}{{validConfig, true}, {writeConfig(t, badConfig), false}} {
		out, _ := runCLI(t, "", "--config", tc.path, "config", "check", "--format", "json")
		var r map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(r) != 5 || string(r["ok"]) != map[bool]string{true: "true", false: "false"}[tc.ok] {
			t.Errorf("%s: keys or ok wrong: %s", tc.path, out)
		}
		for _, k := range []string{"warnings", "errors"} {
			if !strings.HasPrefix(string(r[k]), "[") {
				t.Errorf("%s: %s = %s, want a list", tc.path, k, r[k])
			}
		}
		if tc.ok == (string(r["config"]) == "null") {
			t.Errorf("%s: config = %s", tc.path, r["config"])
		}
		if !strings.HasPrefix(string(r["note"]), `"`) {
			t.Errorf("%s: note = %s, want a string", tc.path, r["note"])
		}
	}
}

// TestConfigCheckMasksSecrets: neither a plain secret, nor a hash, nor the
// KEK is ever printed, in either format.
func TestConfigCheckMasksSecrets(t *testing.T) {
	clearMandateEnv(t)
	const kek = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
	t.Setenv("MANDATE_SIGNING_KEK", kek)
	path := writeConfig(t, "clients:\n  - id: plain\n    secret: hunter2-plain\n    grants: [client_credentials]\n"+
		"  - id: hashed\n    secret_hash: \""+testHash+"\"\n    role: admin\n")
	for _, format := range []string{"text", "json"} {
		out, err := runCLI(t, "", "--config", path, "config", "check", "--format", format)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for _, secret := range []string{"hunter2-plain", testHash, testHash[7:29], kek} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output shows %q:\n%s", format, secret, out)
			}
		}
		for _, want := range []string{"***", "bcrypt(cost 4)"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", format, want, out)
			}
		}
	}
}

// TestConfigCheckReadsTheNamedFiles: a configuration whose values are right
// but whose JWKS or policy files serve could not read is refused too,
// every such file named.
func TestConfigCheckReadsTheNamedFiles(t *testing.T) {
	clearMandateEnv(t)
	empty := t.TempDir() // a policy directory without policies
	path := writeConfig(t, "policy: {dir: "+empty+"}\nclients:\n  - id: k\n    jwks_file: missing.json\n    grants: [client_credentials]\n"+
		"trusted_issuers:\n  - issuer: https://idp.example\n    jwks_file: also-missing.json\n")
	out, err := runCLI(t, "", "--config", path, "config", "check")
	if err == nil {
		t.Fatalf("accepted:\n%s", out)
	}
	for _, want := range []string{"3 problem(s)", "config: client k: jwks_file", "config: trusted_issuers[0].jwks_file", "config: policy.dir: policy: no *.cedar files"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestConfigCheckWithoutAFile: without --config the check reads the
// defaults and the environment, which register no client.
func TestConfigCheckWithoutAFile(t *testing.T) {
	clearMandateEnv(t)
	out, err := runCLI(t, "", "config", "check")
	if err == nil || !strings.Contains(out, "no --config file") || !strings.Contains(out, "config: clients is empty") {
		t.Errorf("err = %v\n%s", err, out)
	}
}

func TestConfigCheckRefusesABadFormat(t *testing.T) {
	if _, err := runCLI(t, "", "--config", validConfig, "config", "check", "--format", "yaml"); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("err = %v", err)
	}
	if _, err := runCLI(t, "", "config", "check", "extra"); err == nil {
		t.Error("an argument was accepted")
	}
}

// TestConfigGroupRefusesUnknownCommands: `mandate config` alone prints its
// help; a typo under it is an error, not help with exit 0.
func TestConfigGroupRefusesUnknownCommands(t *testing.T) {
	out, err := runCLI(t, "", "config")
	if err != nil || !strings.Contains(out, "Available Commands:") {
		t.Errorf("mandate config: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "config", "chek"); err == nil || !strings.Contains(err.Error(), `unknown command "chek"`) {
		t.Errorf("mandate config chek: %v", err)
	}
}

// TestConfigCheckShowsEveryKey: every key server.Config reads (its
// mapstructure names, nested and in client and trusted-issuer entries)
// appears in config check's JSON, so a key added to the configuration cannot
// be left out of what the check shows.
func TestConfigCheckShowsEveryKey(t *testing.T) {
	clearMandateEnv(t)
	out, err := runCLI(t, "", "--config", validConfig, "config", "check", "--format", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// What config check leaves out on purpose: reserved keys serve refuses.
	skip := map[string]bool{}
	// What an entry shows only when it sets it: one of the three ways to
	// authenticate, the ephemeral block and serves (TestConfigCheckShowsServes).
	optional := map[string]bool{"clients.secret": true, "clients.secret_hash": true, "clients.jwks_file": true, "clients.ephemeral": true, "clients.serves": true,
		// an issuer names one key source, an issuer or a trust domain, and a rule one of client and agent (with a ceiling)
		"workload_issuers.issuer": true, "workload_issuers.trust_domain": true,
		"workload_issuers.rules.client": true, "workload_issuers.rules.agent": true, "workload_issuers.rules.scopes": true,
		"workload_issuers.rules.audiences": true, "workload_issuers.rules.groups": true}
	for _, p := range []string{"trusted_issuers.", "workload_issuers.", "id_jag_issuers."} {
		for _, k := range []string{"jwks_file", "jwks_url", "discovery", "ca_file"} {
			optional[p+k] = true
		}
	}
	var walk func(prefix string, typ reflect.Type, shown map[string]any)
	walk = func(prefix string, typ reflect.Type, shown map[string]any) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == ",squash" {
				walk(prefix, f.Type, shown)
				continue
			}
			if name == "" || skip[prefix+name] {
				continue
			}
			v, ok := shown[name]
			if !ok {
				if !optional[prefix+name] {
					t.Errorf("config check does not show %s%s", prefix, name)
				}
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct && ft.Name() != "Duration":
				if m, ok := v.(map[string]any); ok {
					walk(prefix+name+".", ft, m)
				} else if v != nil {
					t.Errorf("%s%s is shown as %T, not an object", prefix, name, v)
				}
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				list, _ := v.([]any)
				if len(list) == 0 {
					t.Errorf("%s%s: the valid test configuration has no entries to check", prefix, name)
				}
				for _, e := range list {
					if m, ok := e.(map[string]any); ok {
						walk(prefix+name+".", ft.Elem(), m)
					}
				}
			}
		}
	}
	walk("", reflect.TypeOf(server.Config{}), r.Config)
}

// TestConfigCheckShowsServes: a client that serves audiences (the audience
// exchange) shows them in text and JSON; a client that serves nothing shows
// no serves at all.
func TestConfigCheckShowsServes(t *testing.T) {
	clearMandateEnv(t)
	cfg := writeConfig(t, "issuer: https://m.example\nclients:\n"+
		"  - {id: mcp-orders, secret_hash: \""+testHash+"\", grants: [token_exchange], scopes: [\"orders:read:*\"], audiences: [https://orders-api.example], serves: [https://mcp.orders.example/mcp]}\n"+
		"  - {id: ops, secret_hash: \""+testHash+"\", role: admin}\n")
	out, err := runCLI(t, "", "--config", cfg, "config", "check")
	if err != nil || !strings.Contains(out, "    serves            https://mcp.orders.example/mcp\n") || strings.Count(out, "serves") != 1 {
		t.Errorf("text: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "--config", cfg, "config", "check", "--format", "json")
	var r checkReport
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || !reflect.DeepEqual(r.Config.Clients[0].Serves, []string{"https://mcp.orders.example/mcp"}) ||
		strings.Count(out, `"serves"`) != 1 {
		t.Errorf("json: %v\n%s", err, out)
	}
}

// TestConfigCheckSaysTypeProblemsComeFirst: when problems of the values'
// types hide the others, the report says so (text and JSON), so "1
// problem(s)" is not taken for the whole story; a report of range problems
// says nothing of the kind.
func TestConfigCheckSaysTypeProblemsComeFirst(t *testing.T) {
	clearMandateEnv(t)
	const note = "fix these first: the other keys are checked once every value has its type"
	typed := writeConfig(t, "tokens: {root_ttl: 15, max_depth: 99}\nclients:\n  - {id: a, secret: s, grants: [client_credentials]}\n")
	out, err := runCLI(t, "", "--config", typed, "config", "check")
	if err == nil || !strings.Contains(out, "1 problem(s)") || !strings.Contains(out, "  - config: tokens.root_ttl: 15 needs a unit, such as 15m\n"+note+"\n") {
		t.Errorf("err = %v\n%s", err, out)
	}
	var r checkReport
	out, _ = runCLI(t, "", "--config", typed, "config", "check", "--format", "json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Note != note || len(r.Errors) != 1 {
		t.Errorf("%v\n%s", err, out)
	}
	ranged := writeConfig(t, "tokens: {max_depth: 99}\nisuer: x\nclients:\n  - {id: a, secret: s, grants: [client_credentials]}\n")
	out, err = runCLI(t, "", "--config", ranged, "config", "check")
	if err == nil || strings.Contains(out, "fix these first") || !strings.Contains(out, "2 problem(s)") || !strings.Contains(out, "unknown key(s) isuer") {
		t.Errorf("ranges and an unknown key: %v\n%s", err, out)
	}
	out, _ = runCLI(t, "", "--config", ranged, "config", "check", "--format", "json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Note != "" {
		t.Errorf("%v\n%s", err, out)
	}
}

// TestConfigCheckYAMLProblems: a file that is not YAML is reported in words
// an operator can act on, each problem once and on one line: not viper's
// "While parsing config", and a key written twice is one problem.
func TestConfigCheckYAMLProblems(t *testing.T) {
	clearMandateEnv(t)
	for _, tc := range []struct {
		yaml, want string
	}{
		{"clients:\n\t- id: a\n", "line 2: a tab indents this line; YAML indents with spaces"},
		{"listen: 127.0.0.1:8080\nissuer: https://m.example\nlisten: 127.0.0.1:9090\n", `line 3: key "listen" appears twice (first at line 1): keep one`},
	} {
		path := writeConfig(t, tc.yaml)
		want := "config " + path + ": " + tc.want
		out, err := runCLI(t, "", "--config", path, "config", "check")
		if err == nil || !strings.Contains(err.Error(), "1 problem(s)") || !strings.Contains(out, ": 1 problem(s)") {
			t.Errorf("err = %v\n%s", err, out)
		}
		if !strings.Contains(out, "\n  - "+want+"\n") || strings.Contains(out, "While parsing") {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
		var r checkReport
		out, _ = runCLI(t, "", "--config", path, "config", "check", "--format", "json")
		if err := json.Unmarshal([]byte(out), &r); err != nil || !slices.Equal(r.Errors, []string{want}) {
			t.Errorf("json: %v, errors %q, want %q", err, r.Errors, want)
		}
	}
}

// TestProblemsKeepsAnErrorWhole: a joined error is one problem per error, and
// a single error of several lines is one problem, its lines joined.
func TestProblemsKeepsAnErrorWhole(t *testing.T) {
	got := problems(errors.Join(errors.New("config: a"), errors.New("yaml: unmarshal errors:\n  line 3: b")))
	if want := []string{"config: a", "yaml: unmarshal errors: line 3: b"}; !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

// TestConfigCheckIssuerFromListen: without an issuer, the one shown is the
// one serve would use: http://<listen>, with port 0 the port serve binds, and
// none at all (an error) when listen binds every interface.
func TestConfigCheckIssuerFromListen(t *testing.T) {
	clearMandateEnv(t)
	admin := "clients:\n  - {id: ops, secret_hash: \"" + testHash + "\", role: admin}\n"
	out, err := runCLI(t, "", "--config", writeConfig(t, "listen: 127.0.0.1:0\n"+admin), "config", "check")
	if err != nil || !strings.Contains(out, "\nissuer                            http://127.0.0.1:<the port serve binds> (from listen)\n") {
		t.Errorf("port 0: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "--config", writeConfig(t, "listen: 127.0.0.1:9000\n"+admin), "config", "check")
	if err != nil || !strings.Contains(out, "\nissuer                            http://127.0.0.1:9000 (from listen)\n") {
		t.Errorf("a port: %v\n%s", err, out)
	}
	for _, listen := range []string{":8080", "0.0.0.0:8080"} {
		out, err = runCLI(t, "", "--config", writeConfig(t, "listen: \""+listen+"\"\n"+admin), "config", "check")
		want := `config: issuer is required when listen ("` + listen + `") binds every interface: set issuer to the URL clients use, such as https://mandate.example`
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("listen %s: %v\n%s", listen, err, out)
		}
		if _, err := runCLI(t, "", "--config", writeConfig(t, "listen: \""+listen+"\"\n"+admin), "config", "check", "--issuer", "https://mandate.example"); err != nil {
			t.Errorf("listen %s with --issuer: %v", listen, err)
		}
	}
}

// TestConfigCheckWarns: the warnings Load adds reach config check — a
// loopback issuer serve does not listen at, no admin client, and a MANDATE_*
// variable that names no key (its value never shown).
func TestConfigCheckWarns(t *testing.T) {
	clearMandateEnv(t)
	t.Setenv("MANDATE_TOKENS_ROOT_TLL", "5m")
	path := writeConfig(t, "issuer: http://127.0.0.1:9000\nlisten: 127.0.0.1:8080\nclients:\n  - {id: a, secret_hash: \""+testHash+"\", grants: [client_credentials]}\n")
	out, err := runCLI(t, "", "--config", path, "config", "check")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"  - MANDATE_TOKENS_ROOT_TLL names no configuration key (did you mean MANDATE_TOKENS_ROOT_TTL?)\n",
		"  - issuer http://127.0.0.1:9000 is not where the server listens (127.0.0.1:8080): clients will not reach it\n",
		"  - no admin client: the operator commands (mandate lineage, revoke, tokens, keys, audit) will be refused; add a client with role: admin (mandate init writes one)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestConfigCheckMasksTheDSN: a PostgreSQL DSN is shown with its password
// masked, in text and JSON, and data_dir is noted unused.
func TestConfigCheckMasksTheDSN(t *testing.T) {
	clearMandateEnv(t)
	const pw = "Pw-k3y-in-dsn"
	t.Setenv("MANDATE_STORE_POSTGRES_DSN", "postgres://mandate:"+pw+"@db1:5432,db2:5432/mandate?target_session_attrs=read-write")
	t.Setenv("MANDATE_SIGNING_KEK", "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=")
	for _, format := range []string{"text", "json"} {
		out, err := runCLI(t, "", "--config", validConfig, "config", "check", "--format", format)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, out)
		}
		if strings.Contains(out, pw) || !strings.Contains(out, "postgres://mandate:***@db1:5432,db2:5432/mandate?target_session_attrs=read-write") {
			t.Errorf("%s: the DSN is not shown masked:\n%s", format, out)
		}
		if format == "text" && !strings.Contains(out, "unused: the store is PostgreSQL") {
			t.Errorf("data_dir not noted unused:\n%s", out)
		}
	}
}

// TestDBRefusesADSN: --db reads bbolt files only; a DSN is refused with
// what to do instead, and its text (which may hold a password) is not
// repeated.
func TestDBRefusesADSN(t *testing.T) {
	clearMandateEnv(t)
	for _, dsn := range []string{"postgres://m:Pw-secret@db/mandate", "host=db user=m password=Pw-secret"} {
		_, err := runCLI(t, "", "tokens", "list", "--db", dsn)
		if !errors.Is(err, errDBIsPostgres) || strings.Contains(err.Error(), "Pw-secret") {
			t.Errorf("--db %s: %v", dsn, err)
		}
	}
}
