package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
)

// initClientIDs are the clients mandate init registers, in the file's order.
var initClientIDs = []string{"ops", "orchestrator", "researcher", "db-agent", "orders-api"}

// runInit runs mandate init --format json in dir and returns the secrets it
// printed.
func runInit(t *testing.T, dir string, args ...string) (map[string]string, error) {
	t.Helper()
	out, err := runCLI(t, "", append([]string{"init", "--dir", dir, "--format", "json"}, args...)...)
	if err != nil {
		return nil, err
	}
	var r struct {
		Config  string            `json:"config"`
		Server  string            `json:"server"`
		Secrets map[string]string `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Config != filepath.Join(dir, "mandate.yaml") {
		t.Errorf("config = %q", r.Config)
	}
	return r.Secrets, nil
}

// TestInitWritesAWorkingConfig: the file is 0600, loads as serve would load
// it, registers the five clients, and holds only hashes, each verifying the
// secret printed for it.
func TestInitWritesAWorkingConfig(t *testing.T) {
	clearMandateEnv(t)
	dir := filepath.Join(t.TempDir(), "new") // created by init
	secrets, err := runInit(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mandate.yaml")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	cfg, warnings, err := server.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "policy.dir is not set") {
		t.Errorf("warnings: %q (want only the missing policy directory)", warnings)
	}
	if cfg.Issuer != "http://127.0.0.1:8080" || cfg.Listen != "127.0.0.1:8080" || cfg.DataDir != filepath.Join(dir, "mandate-data") {
		t.Errorf("issuer %q, listen %q, data_dir %q", cfg.Issuer, cfg.Listen, cfg.DataDir)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	secretShape := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`) // 32 bytes, base64url
	for _, cl := range cfg.Clients {
		ids = append(ids, cl.ID)
		secret := secrets[cl.ID]
		if !secretShape.MatchString(secret) {
			t.Errorf("%s: secret %q is not 32 random bytes in base64url", cl.ID, secret)
		}
		if cl.Secret != "" || cl.SecretHash == "" {
			t.Errorf("%s: registered with a plain secret or without a hash", cl.ID)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(cl.SecretHash), []byte(secret)); err != nil {
			t.Errorf("%s: the printed secret does not verify against its hash: %v", cl.ID, err)
		}
		if strings.Contains(string(raw), secret) {
			t.Errorf("%s: the file holds the plain secret", cl.ID)
		}
		for other, s := range secrets {
			if other != cl.ID && s == secret {
				t.Errorf("%s and %s share a secret", cl.ID, other)
			}
		}
	}
	if !slices.Equal(ids, initClientIDs) || len(secrets) != len(initClientIDs) {
		t.Errorf("clients %v, secrets for %d, want %v", ids, len(secrets), initClientIDs)
	}
	roles := map[string]string{}
	for _, cl := range cfg.Clients {
		roles[cl.ID] = cl.Role
	}
	if roles["ops"] != "admin" || roles["orders-api"] != "resource_server" || roles["orchestrator"] != "" {
		t.Errorf("roles = %v", roles)
	}
}

// TestInitPrintsTheSecretsOnce: the text answer gives each secret, the
// next commands and the operator's environment.
func TestInitPrintsTheSecretsOnce(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "", "init", "--dir", dir, "--issuer", "https://mandate.example")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mandate.yaml")
	cfg, _, err := server.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer != "https://mandate.example" {
		t.Errorf("issuer = %q", cfg.Issuer)
	}
	line := regexp.MustCompile(`(?m)^  (\S+) +([A-Za-z0-9_-]{43})  `)
	found := map[string]string{}
	for _, m := range line.FindAllStringSubmatch(out, -1) {
		found[m[1]] = m[2]
	}
	for _, cl := range cfg.Clients {
		if bcrypt.CompareHashAndPassword([]byte(cl.SecretHash), []byte(found[cl.ID])) != nil {
			t.Errorf("%s: no printed secret verifies:\n%s", cl.ID, out)
		}
		if n := strings.Count(out, found[cl.ID]); cl.ID != "ops" && n != 1 {
			t.Errorf("%s: its secret is printed %d times", cl.ID, n)
		}
	}
	for _, want := range []string{"Wrote " + path + " (mode 0600).", "mandate config check --config " + path, "mandate serve --config " + path,
		"export MANDATE_SERVER=https://mandate.example MANDATE_CLIENT_ID=ops MANDATE_CLIENT_SECRET=" + found["ops"] + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestInitNeverOverwritesWithoutForce: a second init fails (exit 2, not a
// denial) and leaves the file as it was; with --force it replaces it whole,
// still 0600, and the old secrets stop working.
func TestInitNeverOverwritesWithoutForce(t *testing.T) {
	dir := t.TempDir()
	first, err := runInit(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mandate.yaml")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = runInit(t, dir)
	if err == nil || errors.Is(err, errDenied) || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("the refused init changed the file")
	}
	if err := os.Chmod(path, 0o644); err != nil { // as if someone had loosened it
		t.Fatal(err)
	}
	second, err := runInit(t, dir, "--force")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("after --force: %v, mode %v", err, st.Mode().Perm())
	}
	cfg, _, err := server.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range cfg.Clients {
		if bcrypt.CompareHashAndPassword([]byte(cl.SecretHash), []byte(second[cl.ID])) != nil || bcrypt.CompareHashAndPassword([]byte(cl.SecretHash), []byte(first[cl.ID])) == nil {
			t.Errorf("%s: the new secret does not verify, or the old one still does", cl.ID)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".mandate.yaml.*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestInitRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init", "--dir", dir, "--issuer", "mandate.example"},
		{"init", "--dir", dir, "--issuer", "https://m.example/?a=b"},
		{"init", "--dir", dir, "--format", "yaml"},
		{"init", "--dir", dir, "extra"},
		{"init", "--dir", dir, "--listen", "8080"},
		{"init", "--dir", dir, "--listen", "127.0.0.1:0"},         // no client could know the port
		{"init", "--dir", dir, "--listen", "127.0.0.1:http"},      // a port is a number
		{"init", "--dir", dir, "--listen", "0.0.0.0:8080"},        // every interface: which URL?
		{"init", "--dir", dir, "--listen", ":8080"},               // the same
		{"init", "--dir", dir, "--issuer", "", "--listen", ":80"}, // an empty issuer is no issuer
	} {
		if _, err := runCLI(t, "", args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mandate.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused init wrote the file: %v", err)
	}
}

// TestInitConfigServesTheWalkThrough starts Mandate on the starter
// configuration (on a free port) and runs the README's story with the
// printed secrets: the orchestrator mints a root, the researcher shows its
// identity token, the orchestrator delegates to it, orders-api introspects
// the child, a widening is refused, and ops reads the keys.
func TestInitConfigServesTheWalkThrough(t *testing.T) {
	clearMandateEnv(t)
	dir := t.TempDir()
	secrets, err := runInit(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := server.Load(filepath.Join(dir, "mandate.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, server.Options{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	base := "http://" + ln.Addr().String()
	post := func(client, path string, form url.Values) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client, secrets[client])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	const tokenType = "urn:ietf:params:oauth:token-type:access_token"
	status, root := post("orchestrator", "/oauth2/token", url.Values{"grant_type": {"client_credentials"}})
	if status != http.StatusOK || root["scope"] != "db:read:* tools:*" {
		t.Fatalf("root: %d %v", status, root)
	}
	status, id := post("researcher", "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "audience": {cfg.Issuer}})
	if status != http.StatusOK {
		t.Fatalf("identity token: %d %v", status, id)
	}
	status, child := post("orchestrator", "/oauth2/token", url.Values{
		"grant_type":    {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {root["access_token"].(string)}, "subject_token_type": {tokenType},
		"actor_token": {id["access_token"].(string)}, "actor_token_type": {tokenType},
		"scope": {"db:read:orders"}})
	if status != http.StatusOK {
		t.Fatalf("delegation: %d %v", status, child)
	}
	status, info := post("orders-api", "/oauth2/introspect", url.Values{"token": {child["access_token"].(string)}})
	if status != http.StatusOK || info["active"] != true || info["client_id"] != "researcher" {
		t.Fatalf("introspection: %d %v", status, info)
	}
	status, wide := post("researcher", "/oauth2/token", url.Values{
		"grant_type":    {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {child["access_token"].(string)}, "subject_token_type": {tokenType},
		"scope": {"db:write:orders"}})
	if status != http.StatusBadRequest || wide["error"] != "invalid_scope" {
		t.Fatalf("widening: %d %v", status, wide)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/keys", nil)
	req.SetBasicAuth("ops", secrets["ops"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ops on the admin API: %d", resp.StatusCode)
	}
}

// TestInitListensWhereTheIssuerIs: the issuer init writes, and prints as
// MANDATE_SERVER, is where the configuration listens: a loopback --issuer
// without --listen moves listen to its host and port (it once kept
// 127.0.0.1:8080, so MANDATE_SERVER pointed at nothing), and --listen
// without --issuer makes the issuer http://<listen>. The configurations load
// without the warning of an issuer nobody listens at, and a bound server
// answers at the printed MANDATE_SERVER.
func TestInitListensWhereTheIssuerIs(t *testing.T) {
	clearMandateEnv(t)
	tests := []struct {
		args           []string
		issuer, listen string
	}{
		{[]string{"--issuer", "http://127.0.0.1:9000"}, "http://127.0.0.1:9000", "127.0.0.1:9000"},
		{[]string{"--issuer", "http://localhost:9100/mandate"}, "http://localhost:9100/mandate", "localhost:9100"},
		{[]string{"--issuer", "http://[::1]:9200"}, "http://[::1]:9200", "[::1]:9200"},
		{[]string{"--issuer", "http://127.0.0.1"}, "http://127.0.0.1", "127.0.0.1:80"},
		{[]string{"--issuer", "https://mandate.example"}, "https://mandate.example", "127.0.0.1:8080"}, // behind a TLS terminator
		{[]string{"--listen", "127.0.0.1:7000"}, "http://127.0.0.1:7000", "127.0.0.1:7000"},
		{[]string{"--issuer", "https://mandate.example", "--listen", "0.0.0.0:8443"}, "https://mandate.example", "0.0.0.0:8443"},
		{[]string{"--issuer", "http://127.0.0.1:9000", "--listen", "127.0.0.1:9000"}, "http://127.0.0.1:9000", "127.0.0.1:9000"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			out, err := runCLI(t, "", append([]string{"init", "--dir", dir}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			cfg, warnings, err := server.Load(filepath.Join(dir, "mandate.yaml"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Issuer != tt.issuer || cfg.Listen != tt.listen {
				t.Errorf("issuer %q listen %q, want %q %q", cfg.Issuer, cfg.Listen, tt.issuer, tt.listen)
			}
			if !strings.Contains(out, "export MANDATE_SERVER="+tt.issuer+" ") {
				t.Errorf("MANDATE_SERVER is not the issuer:\n%s", out)
			}
			for _, w := range warnings {
				if strings.Contains(w, "is not where the server listens") {
					t.Errorf("warning: %s", w)
				}
			}
		})
	}
	t.Run("both given, apart", func(t *testing.T) { // as asked; config check says what is wrong
		dir := t.TempDir()
		if _, err := runCLI(t, "", "init", "--dir", dir, "--issuer", "http://127.0.0.1:9000", "--listen", "127.0.0.1:8080"); err != nil {
			t.Fatal(err)
		}
		_, warnings, err := server.Load(filepath.Join(dir, "mandate.yaml"), nil)
		if err != nil || !slices.Contains(warnings, "issuer http://127.0.0.1:9000 is not where the server listens (127.0.0.1:8080): clients will not reach it") {
			t.Errorf("%v, warnings %q", err, warnings)
		}
	})
	t.Run("the server answers at MANDATE_SERVER", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close() // free for serve to bind, as the configuration says
		dir := t.TempDir()
		issuer := "http://127.0.0.1:" + strconv.Itoa(port)
		if _, err := runInit(t, dir, "--issuer", issuer); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := server.Load(filepath.Join(dir, "mandate.yaml"), nil)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.Start(cfg, server.Options{}) // binds cfg.Listen
		if err != nil {
			t.Skipf("the free port was taken meanwhile: %v", err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
		resp, err := http.Get(issuer + "/.well-known/jwks.json")
		if err != nil {
			t.Fatalf("MANDATE_SERVER %s does not answer: %v", issuer, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s/.well-known/jwks.json: %d", issuer, resp.StatusCode)
		}
	})
}
