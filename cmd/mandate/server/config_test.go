package server

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// testHash is the bcrypt hash (cost 4) of "test-secret", as in testdata/config/valid.yaml.
const testHash = "$2a$04$ypxlCvXBjrq8/oU3d0c2BOgZ.nRtE5hybsdx5IfS9l7YZM.8NHdZe"

// adminClient is a clients entry with role admin, for configurations that
// should warn of nothing else.
const adminClient = "  - id: ops\n    secret_hash: \"" + testHash + "\"\n    role: admin\n"

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
		{"no depth", "tokens: {max_depth: 0}\n" + client, "config: tokens.max_depth: 0 is out of range: it must be between 1 and 32, such as 4"},
		{"negative depth", "tokens: {max_depth: -1}\n" + client, "config: tokens.max_depth: -1 is out of range"},
		{"huge depth", "tokens: {max_depth: 99}\n" + client, "config: tokens.max_depth: 99 is out of range: it must be between 1 and 32, such as 4"},
		{"zero ttl", "tokens: {delegated_ttl: 0s}\n" + client, "tokens.delegated_ttl"},
		{"bad alg", "signing: {alg: HS256}\n" + client, "signing.alg"},
		{"bad issuer", "issuer: mandate.example\n" + client, "issuer"},
		{"issuer with query", "issuer: https://m.example/?a=b\n" + client, "issuer"},
		{"bad listen", "listen: 8080\n" + client, "listen"},
		{"ephemeral without exchange", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    ephemeral: {scopes: [x]}\n", "clients[0] (a).ephemeral"},
		{"ephemeral without scopes", "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    ephemeral: {audiences: [x]}\n", "clients[0] (a).ephemeral.scopes"},
		{"negative rate limit", "rate_limit: {per_second: -1}\n" + client, "config: rate_limit.per_second: -1 is out of range: it must be between 0 (off) and 1000000, such as 100"},
		{"a rate limit over a million", "rate_limit: {per_second: 2e6}\n" + client, "config: rate_limit.per_second: 2000000 is out of range: it must be between 0 (off) and 1000000, such as 100"},
		{"a burst over ten million", "rate_limit: {burst: 1e8}\n" + client, "config: rate_limit.burst: 100000000 is out of range: it must be between 0 and 10000000, such as 200"},
		{"a revocation budget over a million", "rate_limit: {revocation_per_second: 1e7, revocation_burst: 10}\n" + client, "config: rate_limit.revocation_per_second: 10000000 is out of range: it must be between 0 (ten times rate_limit.per_second) and 1000000, such as 1000"},
		{"a revocation burst over ten million", "rate_limit: {revocation_burst: 20000000}\n" + client, "config: rate_limit.revocation_burst: 20000000 is out of range: it must be between 0 (ten times rate_limit.burst) and 10000000, such as 2000"},
		{"rate limit without burst", "rate_limit: {per_second: 5, burst: 0}\n" + client, "config: rate_limit.burst: 0 is too small when rate_limit.per_second is set: it must be at least 1, such as 200"},
		{"a kill switch slower than the grants", "rate_limit: {per_second: 50, burst: 10, revocation_per_second: 5, revocation_burst: 10}\n" + client, "config: rate_limit.revocation_per_second: 5 is below rate_limit.per_second (50): the kill switch must outlast a runaway loop; set it to at least 50"},
		{"a cache too small to hold a token", "cache: {max_bytes: 4096}\n" + client, "config: cache.max_bytes: 4096 is out of range: it must be between 1048576 (1 MiB) and 1073741824 (1 GiB), or 0 for the default (32 MiB), such as 67108864 (64 MiB)"},
		{"a cache over a GiB", "cache: {max_bytes: 2147483648}\n" + client, "config: cache.max_bytes: 2147483648 is out of range"},
		{"a negative cache", "cache: {max_bytes: -1}\n" + client, "config: cache.max_bytes: -1 is out of range"},
		{"too many denials to ever suspend", "deviation: {max_denials: 10001, window: 1m}\n" + client, "config: deviation.max_denials: 10001 is out of range: it must be between 0 (off) and 10000, such as 5"},
		{"listen on every interface without an issuer", "listen: \":8080\"\n" + client, `config: issuer is required when listen (":8080") binds every interface: set issuer to the URL clients use, such as https://mandate.example`},
		{"listen on 0.0.0.0 without an issuer", "listen: 0.0.0.0:8080\n" + client, `config: issuer is required when listen ("0.0.0.0:8080") binds every interface`},
		{"listen on :: without an issuer", "listen: \"[::]:8080\"\n" + client, `config: issuer is required when listen ("[::]:8080") binds every interface`},
		{"a tab indents a list", "clients:\n\t- id: a\n", "line 2: a tab indents this line; YAML indents with spaces"},
		{"a tab indents a key", "tokens:\n  root_ttl: 5m\n\tmax_depth: 3\n" + client, "line 3: a tab indents this line; YAML indents with spaces"},
		{"a key twice", "listen: 127.0.0.1:8080\nissuer: https://m.example\nlisten: 127.0.0.1:9090\n" + client, `line 3: key "listen" appears twice (first at line 1): keep one`},
		{"a deviation kind misspelt", "deviation: {max_denials: 3, window: 1m, count: [widening, forbiden]}\n" + client, `deviation.count: "forbiden" is not a kind`},
		{"a trusted proxy that is not a network", "http: {trusted_proxies: [\"10.0.0.0/33\"]}\n" + client, "http.trusted_proxies"},
		{"a revocation budget without burst", "rate_limit: {revocation_per_second: 500}\n" + client, "rate_limit.revocation_burst"},
		{"audit retention too short", "audit: {retention: 1h}\n" + client, "audit.retention"},
		{"deviation without a window", "deviation: {max_denials: 5}\n" + client, "deviation.window"},
		{"deviation window alone", "deviation: {window: 1m}\n" + client, "deviation.max_denials"},
		{"negative deviation", "deviation: {max_denials: -1, window: 1m}\n" + client, "config: deviation.max_denials: -1 is out of range: it must be between 0 (off) and 10000, such as 5"},
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
		{"trusted issuer without keys", client + "trusted_issuers:\n  - issuer: https://idp.example\n", "trusted_issuers[0]: give exactly one of jwks_file, jwks_url and discovery: true"},
		{"trusted issuer by plain HTTP", client + "trusted_issuers:\n  - issuer: https://idp.example\n    jwks_url: http://idp.example/jwks\n", "trusted_issuers[0].jwks_url"},
		{"trusted issuer by file and URL", client + "trusted_issuers:\n  - issuer: https://idp.example\n    jwks_url: https://idp.example/jwks\n    jwks_file: x.json\n", "trusted_issuers[0]: give exactly one"},
		{"workload issuer without issuer", client + "workload_issuers:\n  - jwks_file: k.json\n    rules: [{match: {sub: x}, client: orchestrator}]\n", "workload_issuers[0]: give issuer"},
		{"workload trust domain as a URL", client + "workload_issuers:\n  - trust_domain: spiffe://example.org\n    jwks_file: k.json\n    rules: [{match: {sub: x}, client: orchestrator}]\n", "workload_issuers[0].trust_domain"},
		{"workload discovery without issuer", client + "workload_issuers:\n  - trust_domain: example.org\n    discovery: true\n    rules: [{match: {sub: x}, client: orchestrator}]\n", "workload_issuers[0].discovery needs issuer"},
		{"workload ca_file with a file", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    ca_file: ca.pem\n    rules: [{match: {sub: x}, client: orchestrator}]\n", "workload_issuers[0].ca_file"},
		{"workload issuer without rules", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n", "workload_issuers[0].rules is empty"},
		{"workload rule matching everything", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n      - {client: orchestrator}\n", "workload_issuers[0].rules[0].match is empty"},
		{"workload rule naming client and agent", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n      - {match: {sub: x}, client: orchestrator, agent: \"a/{sub}\"}\n", "workload_issuers[0].rules[0]: a rule names exactly one of client and agent"},
		{"workload rule naming no client", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n      - {match: {sub: x}, client: nobody}\n", "workload_issuers[0].rules[0].client \"nobody\" is not a registered client"},
		{"workload template without a claim", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n      - {match: {sub: x}, agent: fixed}\n", "workload_issuers[0].rules[0]: agent template names no claim"},
		{"workload template capturing nothing", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n      - {match: {sub: \"a:*\"}, agent: \"k/{sub#2}\"}\n", "workload_issuers[0].rules[0]: agent template {sub#2}"},
		{"workload scope with a space", client + "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n      - {match: {sub: x}, agent: \"k/{sub}\", scopes: [\"a b\"]}\n", "workload_issuers[0].rules[0].scopes"},
		{"ID-JAG issuer not a URL", client + "id_jag_issuers:\n  - issuer: acme\n    jwks_file: k.json\n", "id_jag_issuers[0].issuer"},
		{"ID-JAG issuer without keys", client + "id_jag_issuers:\n  - issuer: https://login.acme.example\n", "id_jag_issuers[0]: give exactly one"},
		{"trusted issuer not a URL", client + "trusted_issuers:\n  - issuer: idp\n    jwks_file: x.json\n", "trusted_issuers[0].issuer"},
		{"Mandate's issuer as a client's audience", "issuer: https://m.example\nclients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    audiences: [https://m.example]\n", "clients[0] (a).audiences: \"https://m.example\" is Mandate's own issuer"},
		{"Mandate's issuer as an ephemeral audience", "issuer: https://m.example\nclients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    ephemeral: {scopes: [x], audiences: [https://m.example]}\n", "clients[0] (a).ephemeral.audiences"},
		{"not YAML", "clients: [\n", "config"},
		// Durations need a unit and numbers must be numbers, in the file as
		// in the environment (mapstructure took 15 for 15ns, true for 1).
		{"a duration without a unit", "tokens: {root_ttl: 15}\n" + client, "config: tokens.root_ttl: 15 needs a unit, such as 15m"},
		{"a fractional duration without a unit", "tokens: {retention: 1.5}\n" + client, "config: tokens.retention: 1.5 needs a unit, such as 1.5m"},
		{"a delegated ttl without a unit", "tokens: {delegated_ttl: 300}\n" + client, "config: tokens.delegated_ttl: 300 needs a unit, such as 300m"},
		{"a deviation window without a unit", "deviation: {max_denials: 3, window: 60}\n" + client, "config: deviation.window: 60 needs a unit"},
		{"an audit retention without a unit", "audit: {retention: 2160}\n" + client, "config: audit.retention: 2160 needs a unit"},
		{"a negative duration without a unit", "tokens: {root_ttl: -5}\n" + client, "config: tokens.root_ttl: -5 needs a unit (ms, s, m or h)"},
		{"a bool for a duration", "tokens: {root_ttl: true}\n" + client, `config: tokens.root_ttl: "true" is not a duration`},
		{"a list for a duration", "tokens: {root_ttl: [15m]}\n" + client, "config: tokens.root_ttl: must be a single value, not a list"},
		{"a map for a number", "tokens: {max_depth: {n: 4}}\n" + client, "config: tokens.max_depth: must be a single value"},
		{"days are no unit", "tokens: {retention: 2d}\n" + client, `config: tokens.retention: "2d" is not a duration`},
		{"a bool for max_depth", "tokens: {max_depth: true}\n" + client, `config: tokens.max_depth: "true" is not a number`},
		{"words for max_depth", "tokens: {max_depth: four}\n" + client, `config: tokens.max_depth: "four" is not a number`},
		{"a fraction for max_depth", "tokens: {max_depth: 3.5}\n" + client, "config: tokens.max_depth: 3.5 is not a whole number"},
		{"a hex max_depth", "tokens: {max_depth: \"0x10\"}\n" + client, `config: tokens.max_depth: "0x10" is not a number`},
		{"a huge max_depth", "tokens: {max_depth: 99999999999999999999}\n" + client, "config: tokens.max_depth: 1e+20 is too large a number"},
		{"a bool for per_second", "rate_limit: {per_second: true}\n" + client, `config: rate_limit.per_second: "true" is not a number`},
		{"words for per_second", "rate_limit: {per_second: fast}\n" + client, `config: rate_limit.per_second: "fast" is not a number`},
		{"per_second not a number", "rate_limit: {per_second: .nan}\n" + client, "config: rate_limit.per_second: NaN is not a finite number"},
		{"per_second infinite", "rate_limit: {per_second: .inf}\n" + client, "config: rate_limit.per_second: +Inf is not a finite number"},
		{"a bool for burst", "rate_limit: {burst: false}\n" + client, `config: rate_limit.burst: "false" is not a number`},
		{"a negative burst", "rate_limit: {per_second: 0, burst: -1}\n" + client, "config: rate_limit.burst: -1 is out of range: it must be between 0 and 10000000, such as 200"},
		{"a bool for the revocation budget", "rate_limit: {revocation_per_second: yes}\n" + client, `config: rate_limit.revocation_per_second: "yes" is not a number`},
		{"revocation budget infinite", "rate_limit: {revocation_per_second: .inf}\n" + client, "config: rate_limit.revocation_per_second: +Inf is not a finite number"},
		{"a negative revocation burst", "rate_limit: {revocation_burst: -1}\n" + client, "config: rate_limit.revocation_burst: -1 is out of range"},
		{"a fraction for the revocation burst", "rate_limit: {revocation_burst: 2.5}\n" + client, "config: rate_limit.revocation_burst: 2.5 is not a whole number"},
		{"a bool for max_denials", "deviation: {max_denials: true, window: 1m}\n" + client, `config: deviation.max_denials: "true" is not a number`},
		{"a bool for cache.max_bytes", "cache: {max_bytes: true}\n" + client, `config: cache.max_bytes: "true" is not a number`},
		{"units for cache.max_bytes", "cache: {max_bytes: 64MiB}\n" + client, `config: cache.max_bytes: "64MiB" is not a number`},
		// Every duration has a range.
		{"root ttl below a second", "tokens: {root_ttl: 500ms}\n" + client, "config: tokens.root_ttl: 500ms is out of range: it must be between 1s and 24h"},
		{"root ttl of 15ns", "tokens: {root_ttl: 15ns}\n" + client, "config: tokens.root_ttl: 15ns is out of range"},
		{"root ttl over a day", "tokens: {root_ttl: 48h}\n" + client, "config: tokens.root_ttl: 48h is out of range: it must be between 1s and 24h, such as 15m"},
		{"negative root ttl", "tokens: {root_ttl: -15m}\n" + client, "config: tokens.root_ttl: -15m is out of range"},
		{"delegated ttl over a day", "tokens: {root_ttl: 24h, delegated_ttl: 25h}\n" + client, "config: tokens.delegated_ttl: 25h is out of range: it must be between 1s and 24h, such as 5m"},
		{"delegated ttl below a second", "tokens: {delegated_ttl: 10ms}\n" + client, "config: tokens.delegated_ttl: 10ms is out of range"},
		{"token retention under a minute", "tokens: {retention: 30s}\n" + client, "config: tokens.retention: 30s is out of range: it must be between 1m and 8760h"},
		{"no token retention", "tokens: {retention: 0s}\n" + client, "config: tokens.retention: 0s is out of range"},
		{"token retention over a year", "tokens: {retention: 9000h}\n" + client, "config: tokens.retention: 9000h is out of range"},
		{"audit retention over ten years", "audit: {retention: 100000h}\n" + client, "config: audit.retention: 100000h is out of range: it must be at most 87600h"},
		{"deviation window over a day", "deviation: {max_denials: 5, window: 25h}\n" + client, "config: deviation.window: 25h is out of range: it must be at most 24h"},
		{"negative deviation window", "deviation: {max_denials: 5, window: -1m}\n" + client, "config: deviation.window must be a positive duration"},
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
	_, warnings, err := Load(writeConfig(t, "policy: {dir: ./p}\nclients:\n  - id: a\n    secret: dev-only\n    grants: [client_credentials]\n"+adminClient), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "hash-secret") || strings.Contains(warnings[0], "dev-only") {
		t.Errorf("warnings = %v", warnings)
	}
}

// TestFileAndEnvironmentRefuseAlike: a bad value is refused with the same
// words whether it comes from the YAML file or from a MANDATE_* variable
// (the file once took 15 for 15ns, and true for 1).
func TestFileAndEnvironmentRefuseAlike(t *testing.T) {
	client := "clients:\n  - id: orchestrator\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n"
	tests := []struct {
		key, env, yaml, want string
	}{
		{"tokens.root_ttl", "15", "tokens: {root_ttl: 15}\n", "config: tokens.root_ttl: 15 needs a unit, such as 15m"},
		{"tokens.root_ttl", "true", "tokens: {root_ttl: true}\n", `config: tokens.root_ttl: "true" is not a duration`},
		{"tokens.root_ttl", "48h", "tokens: {root_ttl: 48h}\n", "config: tokens.root_ttl: 48h is out of range"},
		{"tokens.delegated_ttl", "300", "tokens: {delegated_ttl: 300}\n", "config: tokens.delegated_ttl: 300 needs a unit"},
		{"tokens.retention", "0s", "tokens: {retention: 0s}\n", "config: tokens.retention: 0s is out of range"},
		{"audit.retention", "90", "audit: {retention: 90}\n", "config: audit.retention: 90 needs a unit"},
		{"tokens.max_depth", "true", "tokens: {max_depth: true}\n", `config: tokens.max_depth: "true" is not a number`},
		{"tokens.max_depth", "four", "tokens: {max_depth: four}\n", `config: tokens.max_depth: "four" is not a number`},
		{"tokens.max_depth", "2.5", "tokens: {max_depth: 2.5}\n", "config: tokens.max_depth: 2.5 is not a whole number"},
		{"rate_limit.per_second", "false", "rate_limit: {per_second: false}\n", `config: rate_limit.per_second: "false" is not a number`},
		{"rate_limit.burst", "lots", "rate_limit: {burst: lots}\n", `config: rate_limit.burst: "lots" is not a number`},
		{"deviation.max_denials", "true", "deviation: {max_denials: true}\n", `config: deviation.max_denials: "true" is not a number`},
		{"cache.max_bytes", "1.5", "cache: {max_bytes: 1.5}\n", "config: cache.max_bytes: 1.5 is not a whole number"},
		{"cache.max_bytes", "2147483648", "cache: {max_bytes: 2147483648}\n", "config: cache.max_bytes: 2147483648 is out of range"},
		{"rate_limit.per_second", "1e7", "rate_limit: {per_second: 1e7}\n", "config: rate_limit.per_second: 10000000 is out of range"},
		{"rate_limit.burst", "-1", "rate_limit: {burst: -1}\n", "config: rate_limit.burst: -1 is out of range"},
		{"deviation.max_denials", "20000", "deviation: {max_denials: 20000, window: 1m}\n", "config: deviation.max_denials: 20000 is out of range"},
		{"tokens.max_depth", "0", "tokens: {max_depth: 0}\n", "config: tokens.max_depth: 0 is out of range: it must be between 1 and 32, such as 4"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.env, func(t *testing.T) {
			_, _, fileErr := Load(writeConfig(t, tt.yaml+client), nil)
			t.Setenv("MANDATE_"+strings.ToUpper(strings.ReplaceAll(tt.key, ".", "_")), tt.env)
			_, _, envErr := Load(writeConfig(t, client), nil)
			if fileErr == nil || envErr == nil {
				t.Fatalf("accepted: file %v, environment %v", fileErr, envErr)
			}
			if fileErr.Error() != envErr.Error() {
				t.Errorf("file and environment differ:\nfile: %v\nenv:  %v", fileErr, envErr)
			}
			if !strings.Contains(fileErr.Error(), tt.want) {
				t.Errorf("error %q does not say %q", fileErr, tt.want)
			}
		})
	}
}

// TestValuesReadAsWritten: what the stricter reading still accepts, from
// the file and from the environment alike.
func TestValuesReadAsWritten(t *testing.T) {
	cfg, _, err := Load(writeConfig(t, "tokens: {root_ttl: 1h30m, delegated_ttl: 90s, max_depth: \"6\", retention: 1m}\n"+
		"rate_limit: {per_second: 2.5, burst: 5, revocation_per_second: 25, revocation_burst: 1e2}\n"+
		"deviation: {max_denials: 3, window: 24h}\ncache: {max_bytes: 1e9}\naudit: {retention: 87600h}\n"+
		"clients:\n  - id: a\n    secret: true\n    grants: [client_credentials]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := TokensConfig{RootTTL: 90 * time.Minute, DelegatedTTL: 90 * time.Second, MaxDepth: 6, Retention: time.Minute}
	if cfg.Tokens != want {
		t.Errorf("tokens = %+v, want %+v", cfg.Tokens, want)
	}
	if r := cfg.RateLimit; r.PerSecond != 2.5 || r.Burst != 5 || r.RevocationPerSecond != 25 || r.RevocationBurst != 100 {
		t.Errorf("rate_limit = %+v", r)
	}
	if cfg.Cache.MaxBytes != 1e9 || cfg.Deviation.Window != 24*time.Hour || cfg.Audit.Retention != 87600*time.Hour {
		t.Errorf("cache %d, window %v, audit %v", cfg.Cache.MaxBytes, cfg.Deviation.Window, cfg.Audit.Retention)
	}
	if cfg.Clients[0].Secret != "true" {
		t.Errorf("secret: true read as %q, not as its text (weak typing made it \"1\")", cfg.Clients[0].Secret)
	}
	t.Setenv("MANDATE_TOKENS_ROOT_TTL", "24h")
	t.Setenv("MANDATE_TOKENS_DELEGATED_TTL", "1s")
	t.Setenv("MANDATE_RATE_LIMIT_PER_SECOND", "0.5")
	t.Setenv("MANDATE_CACHE_MAX_BYTES", "1048576")
	cfg, _, err = Load(writeConfig(t, "clients:\n  - id: a\n    secret_hash: \""+testHash+"\"\n    grants: [client_credentials]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tokens.RootTTL != 24*time.Hour || cfg.Tokens.DelegatedTTL != time.Second || cfg.RateLimit.PerSecond != 0.5 || cfg.Cache.MaxBytes != 1<<20 {
		t.Errorf("from the environment: tokens %+v, rate %v, cache %d", cfg.Tokens, cfg.RateLimit.PerSecond, cfg.Cache.MaxBytes)
	}
}

// TestEveryProblemIsReported: Load names every bad key at once, not only the
// first, so one run of `mandate config check` finds them all.
func TestEveryProblemIsReported(t *testing.T) {
	_, _, err := Load(writeConfig(t, "tokens: {root_ttl: 15, max_depth: true}\nisuer: x\n"), nil)
	for _, want := range []string{"tokens.root_ttl: 15 needs a unit", "tokens.max_depth: \"true\"", "unknown key(s) isuer"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	_, _, err = Load(writeConfig(t, "listen: nope\ntokens: {root_ttl: 48h}\nclients:\n  - id: a b\n    grants: [password]\n"), nil)
	for _, want := range []string{"config: listen", "config: tokens.root_ttl", "config: clients[0].id", "config: clients[0].secret_hash", "config: clients[0].grants"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 5 {
		t.Errorf("%d problems reported, want 5:\n%v", n, err)
	}
}

// TestDelegatedTTLAboveRootTTLWarns: a delegated lifetime longer than the
// root's works (every child is cut at its parent's exp) but says nothing
// true, so it is a warning, not an error.
func TestDelegatedTTLAboveRootTTLWarns(t *testing.T) {
	_, warnings, err := Load(writeConfig(t, "policy: {dir: ./p}\ntokens: {root_ttl: 1m, delegated_ttl: 5m}\nclients:\n  - id: a\n    secret_hash: \""+testHash+"\"\n    grants: [client_credentials]\n"+adminClient), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "tokens.delegated_ttl (5m) is longer than tokens.root_ttl (1m)") {
		t.Errorf("warnings = %q", warnings)
	}
}

// TestYAMLProblemsAreOneLineEach: a file that is not YAML is refused with
// where and what, each problem on one line: a tab that indents a line is
// named as such (not the parser's "cannot start any token"), and a key
// written twice is one problem, not the parser's two-line list.
func TestYAMLProblemsAreOneLineEach(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"a tab indents a list item", "clients:\n\t- id: a\n", []string{"line 2: a tab indents this line; YAML indents with spaces"}},
		{"a tab after spaces", "tokens:\n  root_ttl: 5m\n \tmax_depth: 3\n", []string{"line 3: a tab indents this line; YAML indents with spaces"}},
		{"a key twice", "listen: a\nissuer: b\nlisten: c\n", []string{`line 3: key "listen" appears twice (first at line 1): keep one`}},
		{"two keys twice", "listen: a\nlisten: c\nissuer: x\nissuer: y\n", []string{
			`line 2: key "listen" appears twice (first at line 1): keep one`, `line 4: key "issuer" appears twice (first at line 3): keep one`}},
		{"a key twice in a flow map", "tokens: {root_ttl: 5m, root_ttl: 6m}\n", []string{`line 1: key "root_ttl" appears twice (first at line 1): keep one`}},
		{"an unclosed list", "clients: [\n", []string{"line 1: did not find expected node content"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.yaml)
			_, _, err := Load(path, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					got = append(got, e.Error())
				}
			} else {
				got = []string{err.Error()}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d problems, want %d: %q", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				if want := "config " + path + ": " + w; got[i] != want {
					t.Errorf("problem %d:\n got %q\nwant %q", i, got[i], want)
				}
			}
			if msg := strings.ReplaceAll(err.Error(), path, "FILE"); strings.Contains(msg, "While parsing config") || strings.Contains(msg, "yaml:") {
				t.Errorf("viper's or the YAML library's wrapping shows: %v", err)
			}
		})
	}
	// A tab that separates a key from its value is YAML.
	if _, _, err := Load(writeConfig(t, "listen:\t127.0.0.1:8080\nclients:\n  - {id: a, secret: s, grants: [client_credentials]}\n"), nil); err != nil {
		t.Errorf("a tab after a key refused: %v", err)
	}
}

// TestTypeProblemsComeFirstAndSaySo: Load's error matches ErrValueTypes when
// values of the wrong type stopped it (the range checks wait for them); an
// unknown key alone stops nothing, so it is reported with the range problems.
func TestTypeProblemsComeFirstAndSaySo(t *testing.T) {
	_, _, err := Load(writeConfig(t, "tokens: {root_ttl: 15, max_depth: 99}\nisuer: x\n"), nil)
	if !errors.Is(err, ErrValueTypes) {
		t.Errorf("a type problem: %v does not match ErrValueTypes", err)
	}
	if err == nil || strings.Contains(err.Error(), "max_depth") || !strings.Contains(err.Error(), "unknown key(s) isuer") {
		t.Errorf("type problems reported with the range ones, or without the unknown key: %v", err)
	}
	_, _, err = Load(writeConfig(t, "isuer: x\ntokens: {root_ttl: 48h, max_dept: 3}\nclients:\n  - {id: a, secret: s, grants: [client_credentials]}\n"), nil)
	if errors.Is(err, ErrValueTypes) {
		t.Errorf("only unknown keys and ranges: %v matches ErrValueTypes", err)
	}
	for _, want := range []string{"config: unknown key(s) isuer", "config: unknown key(s) max_dept in tokens", "config: tokens.root_ttl: 48h is out of range"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	_, _, err = Load(writeConfig(t, "tokens: {root_ttl: 48h}\nclients:\n  - {id: a, secret: s, grants: [client_credentials]}\n"), nil)
	if err == nil || errors.Is(err, ErrValueTypes) {
		t.Errorf("a range problem: %v", err)
	}
}

// TestLoopbackIssuerWhereServerListens: an issuer on this machine that is
// not where listen binds is a warning (clients would go nowhere), and a
// wildcard listen without an issuer is an error (no client can use
// http://0.0.0.0:8080).
func TestLoopbackIssuerWhereServerListens(t *testing.T) {
	const warning = "is not where the server listens"
	tests := []struct {
		issuer, listen string
		warns          bool
	}{
		{"http://127.0.0.1:9000", "127.0.0.1:8080", true},
		{"http://127.0.0.1:8080", "127.0.0.1:9000", true},
		{"http://127.0.0.1:8080", "127.0.0.2:8080", true},
		{"http://localhost:9000", "localhost:8080", true},
		{"http://127.0.0.1", "127.0.0.1:8080", true},  // port 80
		{"https://localhost", "127.0.0.1:8080", true}, // port 443
		{"http://[::1]:9000", "[::1]:8080", true},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", false},
		{"http://127.0.0.1:8080/mandate", "127.0.0.1:8080", false},
		{"http://localhost:8080", "127.0.0.1:8080", false},
		{"http://127.0.0.1:8080", "localhost:8080", false},
		{"http://127.0.0.1:8080", "0.0.0.0:8080", false},
		{"http://127.0.0.1:8080", ":8080", false},
		{"http://127.0.0.1:80", "127.0.0.1:80", false},
		{"http://127.0.0.1", "127.0.0.1:80", false},
		{"http://[::1]:8080", "[::1]:8080", false},
		{"http://127.0.0.1:9000", "127.0.0.1:0", false}, // a test's listener: serve binds any port
		{"https://mandate.example", "127.0.0.1:8080", false},
		{"https://mandate.example:8443", "0.0.0.0:8080", false},
	}
	for _, tt := range tests {
		t.Run(tt.issuer+" on "+tt.listen, func(t *testing.T) {
			_, warnings, err := Load(writeConfig(t, "issuer: "+tt.issuer+"\nlisten: \""+tt.listen+"\"\nclients:\n"+adminClient), nil)
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, w := range warnings {
				if strings.Contains(w, warning) {
					found = append(found, w)
				}
			}
			if tt.warns != (len(found) == 1) || len(found) > 1 {
				t.Fatalf("warnings %q, want a warning: %v", warnings, tt.warns)
			}
			if want := "issuer " + tt.issuer + " is not where the server listens (" + tt.listen + "): clients will not reach it"; tt.warns && found[0] != want {
				t.Errorf("warning %q, want %q", found[0], want)
			}
		})
	}
	for _, listen := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "0.0.0.0:0"} {
		_, _, err := Load(writeConfig(t, "listen: \""+listen+"\"\nclients:\n"+adminClient), nil)
		want := `config: issuer is required when listen ("` + listen + `") binds every interface: set issuer to the URL clients use, such as https://mandate.example`
		if err == nil || err.Error() != want {
			t.Errorf("listen %s without an issuer: %v, want %q", listen, err, want)
		}
	}
}

// TestNoAdminClientWarns: without a client of role admin the operator
// commands cannot work, which is worth a warning (not an error: a
// deployment may not want them).
func TestNoAdminClientWarns(t *testing.T) {
	const want = "no admin client: the operator commands (mandate lineage, revoke, tokens, keys, audit) will be refused; add a client with role: admin (mandate init writes one)"
	agent := "  - {id: a, secret_hash: \"" + testHash + "\", grants: [client_credentials]}\n"
	_, warnings, err := Load(writeConfig(t, "policy: {dir: ./p}\nclients:\n"+agent+"  - {id: rs, secret_hash: \""+testHash+"\", role: resource_server}\n"), nil)
	if err != nil || !slices.Equal(warnings, []string{want}) {
		t.Errorf("no admin: %v, warnings %q", err, warnings)
	}
	_, warnings, err = Load(writeConfig(t, "policy: {dir: ./p}\nclients:\n"+agent+adminClient), nil)
	if err != nil || len(warnings) != 0 {
		t.Errorf("with an admin: %v, warnings %q", err, warnings)
	}
	_, warnings, _ = Load(writeConfig(t, "policy: {dir: ./p}\n"), nil) // no client at all: an error says so
	if slices.Contains(warnings, want) {
		t.Errorf("no clients, and also a warning of no admin: %q", warnings)
	}
}

// TestUnknownEnvironmentWarns: a MANDATE_* variable that names no key is a
// warning (other tools may share the prefix), with the closest key's
// variable when one is two edits away; the CLI's own variables and those of
// real keys are not, and no value is ever shown.
func TestUnknownEnvironmentWarns(t *testing.T) {
	t.Setenv("MANDATE_TOKENS_ROOT_TLL", "5m")            // a transposition
	t.Setenv("MANDATE_RATELIMIT_BURST", "hunter2-value") // a missing _
	t.Setenv("MANDATE_FROBNICATE", "1")                  // nothing near
	t.Setenv("MANDATE_TOKENS_ROOT_XYZ", "1")             // three edits: no suggestion
	t.Setenv("MANDATE_UNRELATED_BUT_EMPTY", "")          // viper ignores it, so do we
	t.Setenv("MANDATE_TEST_POSTGRES", "required")        // the project's own test switches
	t.Setenv("MANDATE_BIN", "/x/mandate")
	t.Setenv("MANDATE_SERVER", "http://127.0.0.1:8080")
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", "s3cret-client")
	t.Setenv("MANDATE_SIGNING_KEK", "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=")
	t.Setenv("MANDATE_TOKENS_ROOT_TTL", "10m")
	t.Setenv("MANDATE_DEVIATION_COUNT", "depth") // a key, if one read from the file
	cfg, warnings, err := Load(writeConfig(t, "policy: {dir: ./p}\nclients:\n"+adminClient), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"MANDATE_FROBNICATE names no configuration key: it is ignored (each key's variable: README.md, \"Configuration reference\")",
		"MANDATE_RATELIMIT_BURST names no configuration key (did you mean MANDATE_RATE_LIMIT_BURST?)",
		"MANDATE_TOKENS_ROOT_TLL names no configuration key (did you mean MANDATE_TOKENS_ROOT_TTL?)",
		"MANDATE_TOKENS_ROOT_XYZ names no configuration key: it is ignored (each key's variable: README.md, \"Configuration reference\")",
	}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings:\n%q\nwant\n%q", warnings, want)
	}
	if cfg.Tokens.RootTTL != 10*time.Minute {
		t.Errorf("root_ttl %v: the real key's variable was not read", cfg.Tokens.RootTTL)
	}
	for _, w := range warnings {
		if strings.Contains(w, "hunter2") || strings.Contains(w, "s3cret") {
			t.Errorf("a warning shows a value: %q", w)
		}
	}
	// The warnings come with an error too: a bad file does not hide them.
	_, warnings, err = Load(writeConfig(t, "tokens: {max_depth: four}\n"), nil)
	if err == nil || len(warnings) != len(want) {
		t.Errorf("with a type problem: %v, warnings %q", err, warnings)
	}
	_, warnings, err = Load(writeConfig(t, "clients:\n\t- id: a\n"), nil)
	if err == nil || len(warnings) != len(want) {
		t.Errorf("with a file that is not YAML: %v, warnings %q", err, warnings)
	}
}

// TestNumbersAtTheirBounds: the largest value of each bounded number is
// accepted.
func TestNumbersAtTheirBounds(t *testing.T) {
	cfg, _, err := Load(writeConfig(t, "rate_limit: {per_second: 1e6, burst: 1e7, revocation_per_second: 1000000, revocation_burst: 10000000}\n"+
		"deviation: {max_denials: 10000, window: 1m}\ncache: {max_bytes: 1073741824}\ntokens: {max_depth: 32}\nclients:\n"+adminClient), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit.PerSecond != 1e6 || cfg.RateLimit.Burst != 1e7 || cfg.Deviation.MaxDenials != 10000 || cfg.Cache.MaxBytes != 1<<30 {
		t.Errorf("cfg = %+v", cfg)
	}
}

// TestServesIsValidated: clients[].serves (the audience exchange) holds
// absolute URIs, never Mandate's own issuer, each served by one client, on
// a client with the token_exchange grant and a ceiling to bound what it
// gets downstream; a good one reaches the core's registration.
func TestServesIsValidated(t *testing.T) {
	mcp := func(serves string) string {
		return "  - id: mcp\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    scopes: [\"orders:read:*\"]\n    audiences: [https://orders-api.example]\n    serves: " + serves + "\n"
	}
	const head = "issuer: https://m.example\nclients:\n"
	tests := []struct{ name, yaml, want string }{
		{"a relative reference", head + mcp("[mcp.orders.example/mcp]"), `config: clients[0] (mcp).serves: "mcp.orders.example/mcp" must be an absolute URI, such as https://mcp.orders.example/mcp`},
		{"a path alone", head + mcp("[/mcp]"), `clients[0] (mcp).serves: "/mcp" must be an absolute URI`},
		{"an https URI without a host", head + mcp("[\"https:///mcp\"]"), `clients[0] (mcp).serves: "https:///mcp" must name a host`},
		{"a fragment", head + mcp("[\"https://mcp.example/mcp#x\"]"), `clients[0] (mcp).serves: "https://mcp.example/mcp#x" must not have a fragment`},
		{"surrounding spaces", head + mcp("[\" https://mcp.example \"]"), `clients[0] (mcp).serves: " https://mcp.example " must be non-empty without surrounding spaces`},
		{"empty", head + mcp("[\"\"]"), `clients[0] (mcp).serves: "" must be non-empty`},
		{"Mandate's own issuer", head + mcp("[https://m.example]"), `clients[0] (mcp).serves: "https://m.example" is Mandate's own issuer, the audience of identity tokens`},
		{"listed twice", head + mcp("[https://mcp.example, https://mcp.example]"), `clients[0] (mcp).serves: "https://mcp.example" is listed twice`},
		{"without the token_exchange grant", head + "  - id: mcp\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n    scopes: [x]\n    audiences: [https://api.example]\n    serves: [https://mcp.example]\n",
			"config: clients[0] (mcp).serves needs the token_exchange grant"},
		{"without audiences", head + "  - id: mcp\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    scopes: [x]\n    serves: [https://mcp.example]\n",
			"config: clients[0] (mcp).serves needs scopes and audiences"},
		{"without scopes", head + "  - id: mcp\n    secret_hash: \"" + testHash + "\"\n    grants: [token_exchange]\n    audiences: [https://api.example]\n    serves: [https://mcp.example]\n",
			"config: clients[0] (mcp).serves needs scopes and audiences"},
		{"served by two clients", head + mcp("[https://mcp.example]") + strings.Replace(mcp("[https://other.example, https://mcp.example]"), "id: mcp", "id: mcp-2", 1),
			`config: clients[1] (mcp-2).serves: "https://mcp.example" is already served by client "mcp": one registration is the resource server for an audience`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(writeConfig(t, tt.yaml+adminClient), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant %q", err, tt.want)
			}
		})
	}
	cfg, warnings, err := Load(writeConfig(t, head+mcp("[https://mcp.orders.example/mcp, \"urn:example:mcp:orders\"]")+adminClient+"policy: {dir: ./p}\n"), nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("%v %v", err, warnings)
	}
	sc, err := cfg.serviceConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Clients[0].Serves; !slices.Equal(got, []string{"https://mcp.orders.example/mcp", "urn:example:mcp:orders"}) {
		t.Errorf("registration serves %v", got)
	}
}
