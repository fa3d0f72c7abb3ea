package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// testKEK is a valid signing.kek for the PostgreSQL tests.
var testKEK = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))

// pgSecret is the password of the role the tests' DSNs log in as: it must
// show up nowhere.
const pgSecret = "Pw-9f3k-not-for-logs"

// TestPostgresConfig: store.postgres is one of dsn and dsn_file (the file
// private, relative to the config file), a DSN that parses, and the KEK;
// a DSN with a password in the config file warns; data_dir is then not
// needed. No error repeats the DSN's password.
func TestPostgresConfig(t *testing.T) {
	dir := t.TempDir()
	client := "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n" + adminClient + "policy: {dir: ./p}\n"
	dsn := "postgres://mandate:" + pgSecret + "@db.internal:5432/mandate"
	private := filepath.Join(dir, "dsn")
	os.WriteFile(private, []byte(dsn+"\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte(dsn), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("MANDATE_SIGNING_KEK", testKEK)

	for name, tt := range map[string]struct{ yaml, want string }{
		"both":              {"store: {postgres: {dsn: \"host=db\", dsn_file: " + private + "}}\n", "store.postgres.dsn or store.postgres.dsn_file, not both"},
		"file others read":  {"store: {postgres: {dsn_file: " + loose + "}}\n", "chmod 600"},
		"empty file":        {"store: {postgres: {dsn_file: " + empty + "}}\n", "is empty"},
		"missing file":      {"store: {postgres: {dsn_file: " + filepath.Join(dir, "none") + "}}\n", "store.postgres.dsn_file"},
		"DSN that is wrong": {"store: {postgres: {dsn: \"host=/tmp password='" + pgSecret + "\"}}\n", "store.postgres.dsn: store/postgres: invalid DSN"},
		"replica alone":     {"store: {postgres: {replica: r1}}\n", "store.postgres.replica is set but no database is"},
	} {
		_, _, err := Load(writeConfig(t, tt.yaml+client), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), pgSecret) {
			t.Errorf("%s: the error repeats the password: %v", name, err)
		}
	}

	// Without the KEK, PostgreSQL is refused, saying what to set.
	t.Setenv("MANDATE_SIGNING_KEK", "")
	t.Setenv("MANDATE_STORE_POSTGRES_DSN", "host=db user=mandate dbname=mandate")
	if _, _, err := Load(writeConfig(t, client), nil); err == nil || !strings.Contains(err.Error(), "key-encryption key is required") || !strings.Contains(err.Error(), "MANDATE_SIGNING_KEK") {
		t.Errorf("PostgreSQL without a KEK: %v", err)
	}

	// From the environment, with the KEK: valid, data_dir not needed.
	t.Setenv("MANDATE_SIGNING_KEK", testKEK)
	t.Setenv("MANDATE_DATA_DIR", "")
	cfg, warnings, err := Load(writeConfig(t, client), nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("DSN from the environment: %v %v", err, warnings)
	}
	if got, _ := cfg.Store.Postgres.ReadDSN(); got != "host=db user=mandate dbname=mandate" {
		t.Errorf("DSN = %q", got)
	}
	t.Setenv("MANDATE_STORE_POSTGRES_DSN", "")

	// From a file named relative to the config file.
	cfgPath := filepath.Join(dir, "mandate.yaml")
	os.WriteFile(cfgPath, []byte("store: {postgres: {dsn_file: dsn, replica: r1}}\n"+client), 0o600)
	cfg, _, err = Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cfg.Store.Postgres.ReadDSN(); got != dsn || cfg.Store.Postgres.Replica != "r1" {
		t.Errorf("DSN file: %q, replica %q", got, cfg.Store.Postgres.Replica)
	}
	if m := cfg.Store.Postgres.MaskedDSN(); strings.Contains(m, pgSecret) || !strings.Contains(m, "mandate:***@db.internal") {
		t.Errorf("masked DSN: %s", m)
	}

	// Written in the config file with its password: a warning (not the password).
	_, warnings, err = Load(writeConfig(t, "store: {postgres: {dsn: \""+dsn+"\"}}\n"+client), nil)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "MANDATE_STORE_POSTGRES_DSN") || strings.Contains(warnings[0], pgSecret) {
		t.Errorf("a password in the file: %v %v", err, warnings)
	}
	if _, warnings, _ = Load(writeConfig(t, "store: {postgres: {dsn: \"host=db user=m\"}}\n"+client), nil); len(warnings) != 0 {
		t.Errorf("a DSN without a password in the file: %v", warnings)
	}
}

// pgRole makes a database of the package's cluster owned by a role that
// logs in with pgSecret, and returns a DSN with the password in it.
func pgRole(t *testing.T) string {
	t.Helper()
	c := pgtest.Need(t)
	ctx := context.Background()
	name, err := c.CreateDatabase(ctx, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	role := "r_" + name
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD '" + pgSecret + "'",
		"ALTER DATABASE " + name + " OWNER TO " + role,
	} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("postgres://%s:%s@/%s?host=%s&sslmode=disable", role, pgSecret, name, url.QueryEscape(c.Dir()))
}

// TestServeOnPostgres: with store.postgres, Start runs on PostgreSQL — keys
// sealed, tokens and revocations in the database, /readyz, the pool's
// metrics instead of bbolt's — and the DSN's password is in no log line,
// no store name, no error (a wrong password included).
func TestServeOnPostgres(t *testing.T) {
	dsn := pgRole(t)
	cfg := testConfig("")
	cfg.Store.Postgres = PostgresConfig{DSN: dsn, Replica: "r1"}
	cfg.Signing.KEK = testKEK
	var logs bytes.Buffer
	s, err := Start(cfg, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Store.(*postgres.DB); !ok {
		t.Fatalf("store is %T", s.Store)
	}
	if !strings.Contains(s.StoreName, "postgres database") || !strings.Contains(s.StoreName, `replica "r1"`) {
		t.Errorf("store name: %s", s.StoreName)
	}
	tok := call(t, s, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}})
	if tok["status"] != 200 {
		t.Fatalf("mint: %v", tok)
	}
	if r := call(t, s, "/oauth2/revoke", "orchestrator", url.Values{"token": {tok["access_token"].(string)}}); r["status"] != 200 {
		t.Fatalf("revoke: %v", r)
	}
	if r := call(t, s, "/oauth2/introspect", "rs", url.Values{"token": {tok["access_token"].(string)}}); r["active"] != false {
		t.Errorf("introspection of a revoked token: %v", r)
	}
	for path, want := range map[string]string{"/readyz": `"ready"`, PathMetrics: "mandate_store_pool_acquires_total "} {
		resp, err := http.Get("http://" + s.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, want %s", path, resp.StatusCode, want)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"store":"postgres database`) {
		t.Errorf("the start line does not name the store: %s", logs.String())
	}

	// A wrong password: refused, and the error says which database.
	bad := *cfg
	bad.Store.Postgres.DSN = strings.Replace(dsn, pgSecret, pgSecret+"x", 1)
	_, err = Start(&bad, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err == nil || !strings.Contains(err.Error(), "store.postgres") {
		t.Errorf("a wrong password: %v", err)
	}
	for _, text := range []string{logs.String(), s.StoreName, fmt.Sprint(err)} {
		if strings.Contains(text, pgSecret) {
			t.Errorf("the password shows: %s", text)
		}
	}
}
