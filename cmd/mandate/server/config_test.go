package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// testHash is the bcrypt hash (cost 4) of "test-secret", as in testdata/config/valid.yaml.
const testHash = "$2a$04$ypxlCvXBjrq8/oU3d0c2BOgZ.nRtE5hybsdx5IfS9l7YZM.8NHdZe"

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadValidConfig(t *testing.T) {
	path := filepath.Join("..", "..", "..", "testdata", "config", "valid.yaml")
	cfg, warnings, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "policy.dir is not set") {
		t.Errorf("warnings: %v (want only the missing policy directory)", warnings)
	}
	if cfg.Issuer != "https://mandate.example" || cfg.Listen != "127.0.0.1:9090" || cfg.Signing.Alg != "ES256" {
		t.Errorf("cfg = %+v", cfg)
	}
	if cfg.Tokens != (TokensConfig{RootTTL: 10 * time.Minute, DelegatedTTL: 2 * time.Minute, MaxDepth: 3, Retention: time.Hour}) {
		t.Errorf("tokens = %+v", cfg.Tokens)
	}
	if want := filepath.Join(filepath.Dir(path), "data"); cfg.DataDir != want {
		t.Errorf("data_dir = %q, want %q (relative to the config file)", cfg.DataDir, want)
	}
	if len(cfg.Clients) != 4 || cfg.Clients[0].Groups[0] != "orchestrators" || cfg.Clients[1].Role != "resource_server" {
		t.Errorf("clients = %+v", cfg.Clients)
	}
	sc, err := cfg.serviceConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.TrustedIssuers) != 1 || sc.TrustedIssuers[0].Keys == nil {
		t.Errorf("trusted issuers = %+v", sc.TrustedIssuers)
	}
	if !sc.Clients[0].Secret.Check("test-secret") || sc.Clients[0].Secret.Check("wrong") {
		t.Error("secret hash not wired")
	}
	if k := sc.Clients[2]; k.Secret != nil || k.Keys == nil {
		t.Errorf("keyed client: secret %v keys %v (jwks_file relative to the config file)", k.Secret, k.Keys)
	}
}

func TestEnvironmentAndFlagsOverrideTheFile(t *testing.T) {
	path := filepath.Join("..", "..", "..", "testdata", "config", "valid.yaml")
	t.Setenv("MANDATE_TOKENS_MAX_DEPTH", "2")
	t.Setenv("MANDATE_TOKENS_ROOT_TTL", "1h")
	t.Setenv("MANDATE_LISTEN", "127.0.0.1:7000")
	t.Setenv("MANDATE_DATA_DIR", "/var/lib/mandate")
	flags := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	flags.String("listen", "", "")
	flags.String("data-dir", "", "")
	flags.String("issuer", "", "")
	if err := flags.Parse([]string{"--listen", "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Load(path, flags)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tokens.MaxDepth != 2 || cfg.Tokens.RootTTL != time.Hour {
		t.Errorf("env did not override: %+v", cfg.Tokens)
	}
	if cfg.Listen != "127.0.0.1:7001" {
		t.Errorf("listen = %q, flag should win over env and file", cfg.Listen)
	}
	if cfg.DataDir != "/var/lib/mandate" {
		t.Errorf("data_dir = %q", cfg.DataDir)
	}
}

func TestDefaultsWithoutAFile(t *testing.T) {
	t.Setenv("MANDATE_DATA_DIR", "")
	_, _, err := Load("", nil)
	if err == nil || !strings.Contains(err.Error(), "clients") {
		t.Fatalf("no clients: %v", err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	client := "clients:\n  - id: orchestrator\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n"
	tests := []struct {
		name, yaml, wantKey string
	}{
		{"unknown top-level key", "isuer: https://x\n" + client, "isuer"},
		{"unknown nested key", "tokens: {max_dept: 3}\n" + client, "max_dept"},
		{"unknown client key", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    scope: [x]\n", "scope"},
		{"bad duration", "tokens: {root_ttl: forever}\n" + client, "root_ttl"},
		{"negative depth", "tokens: {max_depth: 0}\n" + client, "tokens.max_depth"},
		{"huge depth", "tokens: {max_depth: 99}\n" + client, "tokens.max_depth"},
		{"zero ttl", "tokens: {delegated_ttl: 0s}\n" + client, "tokens.delegated_ttl"},
		{"bad alg", "signing: {alg: HS256}\n" + client, "signing.alg"},
		{"bad issuer", "issuer: mandate.example\n" + client, "issuer"},
		{"issuer with query", "issuer: https://m.example/?a=b\n" + client, "issuer"},
		{"bad listen", "listen: 8080\n" + client, "listen"},
		{"ephemeral without exchange", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    ephemeral: {scopes: [x]}\n", "clients[0] (a).ephemeral"},
		{"ephemeral without scopes", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    ephemeral: {audiences: [x]}\n", "clients[0] (a).ephemeral.scopes"},
		{"negative rate limit", "rate_limit: {per_second: -1}\n" + client, "rate_limit.per_second"},
		{"rate limit without burst", "rate_limit: {per_second: 5, burst: 0}\n" + client, "rate_limit.burst"},
		{"a kill switch slower than the grants", "rate_limit: {per_second: 50, burst: 10, revocation_per_second: 5, revocation_burst: 10}\n" + client, "rate_limit.revocation_per_second must not be below"},
		{"a cache too small to hold a token", "cache: {max_bytes: 4096}\n" + client, "cache.max_bytes"},
		{"a deviation kind misspelt", "deviation: {max_denials: 3, window: 1m, count: [widening, forbiden]}\n" + client, `deviation.count: "forbiden" is not a kind`},
		{"a trusted proxy that is not a network", "http: {trusted_proxies: [\"10.0.0.0/33\"]}\n" + client, "http.trusted_proxies"},
		{"a revocation budget without burst", "rate_limit: {revocation_per_second: 500}\n" + client, "rate_limit.revocation_burst"},
		{"audit retention too short", "audit: {retention: 1h}\n" + client, "audit.retention"},
		{"deviation without a window", "deviation: {max_denials: 5}\n" + client, "deviation.window"},
		{"deviation window alone", "deviation: {window: 1m}\n" + client, "deviation.max_denials"},
		{"negative deviation", "deviation: {max_denials: -1, window: 1m}\n" + client, "deviation.max_denials"},
		{"no clients", "listen: 127.0.0.1:1\n", "clients"},
		{"client without id", "clients:\n  - secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n", "clients[0].id"},
		{"duplicate client", client + "  - id: orchestrator\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n", "clients[1]"},
		{"not a bcrypt hash", "clients:\n  - id: a\n    secret_hash: sha256:abc\n    grants: [client_credentials]\n", "clients[0] (a).secret_hash"},
		{"no secret", "clients:\n  - id: a\n    grants: [client_credentials]\n", "clients[0] (a).secret_hash"},
		{"secret and keys", "clients:\n  - id: a\n    jwks_file: k.json\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n", "clients[0] (a): set one of"},
		{"both secrets", "clients:\n  - id: a\n    secret: x\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n", "clients[0] (a)"},
		{"unknown grant", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [password]\n", "clients[0] (a).grants"},
		{"unknown role", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    role: root\n", "clients[0] (a).role"},
		{"useless client", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n", "clients[0] (a)"},
		{"scope with a space", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    scopes: [\"a b\"]\n", "clients[0] (a).scopes"},
		{"client id with a space", "clients:\n  - id: a b\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n", "clients[0].id"},
		{"trusted issuer without keys", client + "trusted_issuers:\n  - issuer: https://idp.example\n", "trusted_issuers[0].jwks_file"},
		{"trusted issuer by URL", client + "trusted_issuers:\n  - issuer: https://idp.example\n    jwks_url: https://idp.example/jwks\n", "trusted_issuers[0].jwks_url"},
		{"trusted issuer not a URL", client + "trusted_issuers:\n  - issuer: idp\n    jwks_file: x.json\n", "trusted_issuers[0].issuer"},
		{"Mandate's issuer as a client's audience", "issuer: https://m.example\nclients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    audiences: [https://m.example]\n", "clients[0] (a).audiences: \"https://m.example\" is Mandate's own issuer"},
		{"Mandate's issuer as an ephemeral audience", "issuer: https://m.example\nclients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    ephemeral: {scopes: [x], audiences: [https://m.example]}\n", "clients[0] (a).ephemeral.audiences"},
		{"not YAML", "clients: [\n", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(writeConfig(t, tt.yaml), nil)
			if err == nil {
				t.Fatal("bad config accepted")
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("error %q does not name %q", err, tt.wantKey)
			}
		})
	}
	t.Run("missing client jwks file", func(t *testing.T) {
		cfg, _, err := Load(writeConfig(t, client+"  - id: k\n    jwks_file: missing.json\n    grants: [client_credentials]\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.serviceConfig(); err == nil || !strings.Contains(err.Error(), "client k: jwks_file") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing jwks file", func(t *testing.T) {
		cfg, _, err := Load(writeConfig(t, client+"trusted_issuers:\n  - issuer: https://idp.example\n    jwks_file: missing.json\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.serviceConfig(); err == nil || !strings.Contains(err.Error(), "trusted_issuers[0].jwks_file") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestPlainSecretWarns(t *testing.T) {
	_, warnings, err := Load(writeConfig(t, "policy: {dir: ./p}\nclients:\n  - id: a\n    secret: dev-only\n    grants: [client_credentials]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "hash-secret") || strings.Contains(warnings[0], "dev-only") {
		t.Errorf("warnings = %v", warnings)
	}
}
