package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// withJWKS writes a one-key JWKS as k.json beside the config file at path.
func withJWKS(t *testing.T, path string) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	writeJWKS(t, path, priv)
	return path
}

// writeJWKS writes priv's public key, kid k1, as k.json beside path.
func writeJWKS(t *testing.T, path string, priv ed25519.PrivateKey) {
	t.Helper()
	pub, _ := jwk.FromRaw(priv.Public())
	_ = pub.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	raw, _ := json.Marshal(set)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "k.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

const workloadClients = `issuer: https://mandate.example
clients:
  - id: orchestrator
    secret_hash: "` + testHash + `"
    grants: [client_credentials, token_exchange]
    scopes: [db:read:*]
    ephemeral: {scopes: [db:read:*]}
  - id: k8s/agents/fixed
    secret_hash: "` + testHash + `"
    grants: [jwt_bearer]
  - id: reader
    secret_hash: "` + testHash + `"
    grants: [client_credentials]
`

// TestGeneratedNamesCannotCollide: what the core checks at start (a
// generated name that could be a client's, or a name in an ephemeral
// namespace, or one name with two ceilings) is refused by config check
// (CheckFiles) as by serve.
func TestGeneratedNamesCannotCollide(t *testing.T) {
	issuer := "workload_issuers:\n  - issuer: https://k8s.example\n    jwks_file: k.json\n    rules:\n"
	for _, tt := range []struct{ name, rules, want string }{
		{"a client's id", `      - {match: {sub: "system:serviceaccount:agents:*"}, agent: "k8s/{ns}/{sa}"}` + "\n", `could make "k8s/agents/fixed", a registered client's id`},
		{"an ephemeral namespace", `      - {match: {sub: "a:*"}, agent: "{ns}/{sa}"}` + "\n", `ephemeral namespace`},
		{"two ceilings for one name", `      - {match: {sub: "a:*"}, agent: "w/{ns}/{sa}", scopes: [db:read:*]}` + "\n" +
			`      - {match: {sub: "b:*"}, agent: "w/agents/{sa}", scopes: [db:write:*]}` + "\n", "could make the same name with different scopes"},
		{"a client rule with a ceiling", `      - {match: {sub: x}, client: orchestrator, scopes: [db:read:*]}` + "\n", "takes its scopes, audiences and groups from the registration"},
		{"a client that could not use its token", `      - {match: {sub: x}, client: reader}` + "\n", "may use neither the jwt_bearer nor the token_exchange grant"},
		{"Mandate's issuer as an audience", `      - {match: {sub: x}, agent: "w/{sub}", audiences: ["https://mandate.example"]}` + "\n", "is Mandate's own issuer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := Load(withJWKS(t, writeConfig(t, workloadClients+issuer+tt.rules)), nil)
			if err != nil {
				t.Fatalf("validation already refuses it: %v", err)
			}
			err = cfg.CheckFiles()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckFiles = %v, want %q", err, tt.want)
			}
			cfg.DataDir = t.TempDir()
			if _, err := Start(cfg, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("same ceiling, distinct prefixes: accepted", func(t *testing.T) {
		rules := `      - {match: {sub: "a:*"}, agent: "w/{ns}/{sa}", scopes: [db:read:*]}` + "\n" +
			`      - {match: {sub: "b:*"}, agent: "w/agents/{sa}", scopes: [db:read:*]}` + "\n" +
			`      - {match: {sub: "c:*"}, agent: "v/{sa}", scopes: [db:write:*]}` + "\n"
		cfg, _, err := Load(withJWKS(t, writeConfig(t, workloadClients+issuer+rules)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.CheckFiles(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMatchKeepsTheClaimNamesCase: claims are named case-sensitively
// (RFC 7519 §4), though viper folds map keys.
func TestMatchKeepsTheClaimNamesCase(t *testing.T) {
	yaml := workloadClients + "workload_issuers:\n  - issuer: https://ci.example\n    jwks_file: k.json\n    rules:\n" +
		`      - {match: {repositoryOwner: acme, "kubernetes.io.namespace": agents}, agent: "ci/{repositoryOwner}"}` + "\n"
	cfg, _, err := Load(withJWKS(t, writeConfig(t, yaml)), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.WorkloadIssuers[0].Rules[0].Match
	if m["repositoryOwner"] != "acme" || m["kubernetes.io.namespace"] != "agents" || len(m) != 2 {
		t.Errorf("match = %v", m)
	}
	if err := cfg.CheckFiles(); err != nil {
		t.Fatal(err)
	}
}

// TestAWorkloadClientNeedsNoSecret: a registered client a workload rule
// names authenticates with its platform token alone; a client with no
// secret that no rule names is refused at load.
func TestAWorkloadClientNeedsNoSecret(t *testing.T) {
	yaml := `clients:
  - id: orchestrator
    grants: [jwt_bearer, token_exchange]
    scopes: [db:read:*]
  - id: ops
    secret_hash: "` + testHash + `"
    role: admin
workload_issuers:
  - issuer: https://k8s.example
    jwks_file: k.json
    rules:
      - {match: {sub: "system:serviceaccount:ops:orchestrator"}, client: orchestrator}
`
	path := writeConfig(t, yaml)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	writeJWKS(t, path, priv)
	cfg, _, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	srv, err := Start(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": "https://k8s.example", "sub": "system:serviceaccount:ops:orchestrator",
		"aud": srv.URL, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k1"}`)) + "." + base64.RawURLEncoding.EncodeToString(claims)
	tok := in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {tok}}
	resp, err := http.PostForm(srv.URL+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "access_token") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// No secret means no secret: Basic with an empty one is refused.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("orchestrator", "")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("empty secret: %d", resp.StatusCode)
	}

	unnamed := strings.Replace(yaml, "client: orchestrator}", "agent: \"k8s/{sub}\"}", 1)
	_, _, err = Load(writeConfig(t, unnamed), nil)
	if err == nil || !strings.Contains(err.Error(), "clients[0] (orchestrator).secret_hash is required") {
		t.Fatalf("a client without a secret that no rule names: %v", err)
	}
}

// TestIssuersThatWouldConfuseIdentitiesAreRefused: configurations that
// would let one platform's workloads pass for another's, accept a
// platform's tokens for itself, or an ID-JAG made for another server.
func TestIssuersThatWouldConfuseIdentitiesAreRefused(t *testing.T) {
	k8s := func(issuer, extra, agent string) string {
		return "  - issuer: " + issuer + "\n    jwks_file: k.json\n" + extra + "    rules:\n      - {match: {sub: \"system:serviceaccount:agents:*\"}, agent: \"" + agent + "\", scopes: [db:read:*]}\n"
	}
	for _, tt := range []struct{ name, yaml, want string }{
		{"two clusters making one name", "workload_issuers:\n" + k8s("https://prod.example", "", "k8s/{kubernetes.io.serviceaccount.name}") + k8s("https://dev.example", "", "k8s/{kubernetes.io.serviceaccount.name}"),
			"could make the same name for two issuers' workloads"},
		{"a platform's own audience", "workload_issuers:\n" + k8s("https://k8s.example", "    audience: https://k8s.example\n", "k8s/{sub}"), "is the issuer's own"},
		{"a year-long lifetime", "workload_issuers:\n" + k8s("https://k8s.example", "    max_lifetime: 8760h\n", "k8s/{sub}"), "max_lifetime 8760h0m0s is longer than 24h0m0s"},
		{"one trust domain twice", "workload_issuers:\n  - trust_domain: example.org\n    jwks_file: k.json\n    rules: [{match: {sub: \"spiffe://example.org/a/*\"}, agent: \"a/{sub#1}\"}]\n" +
			"  - issuer: https://spire.example.org\n    trust_domain: example.org\n    jwks_file: k.json\n    rules: [{match: {sub: \"spiffe://example.org/b/*\"}, agent: \"b/{sub#1}\"}]\n", `trust_domain "example.org" listed twice`},
		{"a workload issuer that is also an ID-JAG issuer", "workload_issuers:\n" + k8s("https://login.acme.example", "", "k8s/{sub}") +
			"id_jag_issuers:\n  - issuer: https://login.acme.example\n    jwks_file: k.json\n", "is also an id_jag_issuers entry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := Load(withJWKS(t, writeConfig(t, workloadClients+tt.yaml)), nil)
			if err != nil {
				t.Fatalf("validation already refuses it: %v", err)
			}
			if err := cfg.CheckFiles(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckFiles = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("an ID-JAG audience other than Mandate's issuer cannot be configured", func(t *testing.T) {
		_, _, err := Load(withJWKS(t, writeConfig(t, workloadClients+"id_jag_issuers:\n  - issuer: https://login.acme.example\n    jwks_file: k.json\n    audience: https://other-as.example\n")), nil)
		if err == nil || !strings.Contains(err.Error(), "audience") {
			t.Fatalf("an ID-JAG issuer's audience: %v", err)
		}
	})
}
