package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
)

func testConfig(dir string) *Config {
	return &Config{
		Issuer:  "http://mandate.test",
		Listen:  "127.0.0.1:0",
		DataDir: dir,
		Signing: SigningConfig{Alg: "EdDSA"},
		Tokens:  TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: 4, Retention: time.Hour},
		Audit:   AuditConfig{Retention: 24 * time.Hour},
		Clients: []ClientConfig{
			{ID: "orchestrator", SecretHash: testHash, Grants: []string{"client_credentials", "token_exchange"}, Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}},
			{ID: "researcher", SecretHash: testHash, Grants: []string{"client_credentials", "token_exchange"}, Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}},
			{ID: "rs", SecretHash: testHash, Role: "resource_server"},
		},
	}
}

func call(t *testing.T, s *Server, path, client string, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, "test-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{"status": resp.StatusCode}
	_ = json.Unmarshal(raw, &out)
	out["status"] = resp.StatusCode
	return out
}

func startTest(t *testing.T, cfg *Config) *Server {
	t.Helper()
	s, err := Start(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRestartKeepsKeysTokensAndRevocations(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s := startTest(t, cfg)
	kid := s.Keys.CurrentKeyID()
	mint := func(s *Server, client string) string {
		r := call(t, s, "/oauth2/token", client, url.Values{"grant_type": {"client_credentials"}})
		if r["status"] != 200 {
			t.Fatalf("mint: %v", r)
		}
		return r["access_token"].(string)
	}
	kept := mint(s, "orchestrator")
	revoked := mint(s, "orchestrator")
	child := call(t, s, "/oauth2/token", "orchestrator", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {revoked}, "subject_token_type": {oauth.TokenTypeAccessToken},
		"actor_token":      {call(t, s, "/oauth2/token", "researcher", url.Values{"grant_type": {"client_credentials"}, "audience": {s.URL}})["access_token"].(string)},
		"actor_token_type": {oauth.TokenTypeAccessToken},
	})["access_token"].(string)
	if r := call(t, s, "/oauth2/revoke", "orchestrator", url.Values{"token": {revoked}}); r["status"] != 200 {
		t.Fatalf("revoke: %v", r)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	s = startTest(t, cfg)
	defer s.Shutdown(context.Background())
	if s.Keys.CurrentKeyID() != kid {
		t.Fatalf("restart changed the signing key: %s → %s", kid, s.Keys.CurrentKeyID())
	}
	if r := call(t, s, "/oauth2/introspect", "rs", url.Values{"token": {kept}}); r["active"] != true {
		t.Errorf("token lost across restart: %v", r)
	}
	for name, tok := range map[string]string{"revoked": revoked, "child of revoked": child} {
		if r := call(t, s, "/oauth2/introspect", "rs", url.Values{"token": {tok}}); r["active"] != false {
			t.Errorf("%s active after restart: %v", name, r)
		}
	}
	if r := call(t, s, "/oauth2/token", "researcher", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {child}, "subject_token_type": {oauth.TokenTypeAccessToken},
	}); r["error"] != oauth.CodeInvalidRequest {
		t.Errorf("exchange of a revoked chain after restart: %v", r)
	}
	claims, err := s.Keys.Verify(kept)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.Token(context.Background(), claims.ID); err != nil {
		t.Errorf("record lost across restart: %v", err)
	}
}

func TestServeLoadsPoliciesAndRefusesBrokenOnes(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.Policy.Dir = dir
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte("permit (principal, action resource);"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "p.cedar:1:") {
		t.Fatalf("broken policy: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`@id("only-mint") permit (principal, action == Action::"mint", resource);`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTest(t, cfg)
	defer s.Shutdown(context.Background())
	root := call(t, s, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}})
	if root["status"] != 200 {
		t.Fatalf("mint: %v", root)
	}
	r := call(t, s, "/oauth2/token", "orchestrator", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {root["access_token"].(string)}, "subject_token_type": {oauth.TokenTypeAccessToken},
	})
	if r["error"] != "invalid_request" || !strings.Contains(r["error_description"].(string), "no policy permits") {
		t.Errorf("exchange under a mint-only policy: %v", r)
	}
}

func TestPolicyReloadsAreAudited(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.Policy.Dir = dir
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`@id("all") permit (principal, action, resource);`)
	s := startTest(t, cfg)
	defer s.Shutdown(context.Background())
	write(`permit (principal, action resource);`)
	_ = s.Policy.Reload()
	write(`@id("all") permit (principal, action, resource); @id("x") forbid (principal, action == Action::"delegate", resource);`)
	_ = s.Policy.Reload()
	recs, err := s.Store.AuditTail(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var reloads []string
	for _, r := range recs {
		if r.Type == "policy_reloaded" {
			reloads = append(reloads, r.Code+"|"+r.Reason)
		}
	}
	if len(reloads) < 2 || !strings.HasPrefix(reloads[0], "rejected|") || !strings.Contains(reloads[len(reloads)-1], "2 policies loaded") {
		t.Errorf("reload audit = %v", reloads)
	}
}

// TestServeBoundsHeaders: serve's own http.Server answers oversized headers
// with 431 before any handler runs.
func TestServeBoundsHeaders(t *testing.T) {
	s := startTest(t, testConfig(t.TempDir()))
	defer s.Shutdown(context.Background())
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 40<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 KiB of headers: %d", resp.StatusCode)
	}
}
