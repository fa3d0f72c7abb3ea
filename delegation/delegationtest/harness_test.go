package delegationtest_test

import (
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

// TestTheHarnessRunsTheProductionWiring: the harness starts Mandate through
// the composition root serve uses, so a sealed key store, a policy
// directory (loaded, deciding, reloaded from disk) and the metrics endpoint
// work in every test exactly as in production.
func TestTheHarnessRunsTheProductionWiring(t *testing.T) {
	env := dt.New(t, dt.Options{
		KEK: []byte(strings.Repeat("k", 32)),
		Policies: []policy.File{{Name: "mint.cedar", Source: []byte(`
@id("mint") permit (principal, action == Action::"mint", resource);
@id("no-ops-tools") forbid (principal == Agent::"outsider", action, resource);`)}},
	})

	// Keys rest sealed, and rotation goes through the sealing layer.
	if _, ok := env.KeyStore.(*tokens.SealedKeyStore); !ok {
		t.Fatalf("key store is %T, want the sealed one", env.KeyStore)
	}
	if _, err := env.Svc.RotateKey(t.Context(), "ops", "", ""); err != nil {
		t.Fatal(err)
	}
	stored, err := env.DB.SigningKeys(t.Context())
	if err != nil || len(stored) != 2 {
		t.Fatalf("%d keys stored: %v", len(stored), err)
	}
	for _, k := range stored {
		if _, err := x509.ParsePKCS8PrivateKey(k.PKCS8); !k.Sealed || err == nil {
			t.Errorf("key %s is stored in clear", k.ID)
		}
	}

	// The policy directory decides token requests.
	if env.Policy == nil {
		t.Fatal("no policy engine")
	}
	env.Mint(t, "orchestrator", nil)
	r := env.Post(t, "token_endpoint", "outsider", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	if r.Status != 400 || !strings.Contains(r.String("error_description"), "no-ops-tools") {
		t.Fatalf("forbidden mint: %d %s", r.Status, r.Raw)
	}
	// ... and is reloaded from disk, as the watch (or SIGHUP) does.
	dir := env.Policy.Dir()
	if err := os.WriteFile(filepath.Join(dir, "mint.cedar"), []byte(`@id("mint") permit (principal, action == Action::"mint", resource);`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := env.Policy.Reload(); err != nil {
		t.Fatal(err)
	}
	env.Mint(t, "outsider", nil)

	// Metrics are served, as by serve.
	if m := env.Get(t, env.URL+"/metrics"); m.Status != 200 || !strings.Contains(string(m.Raw), "mandate_http_requests_total") {
		t.Errorf("metrics: %d", m.Status)
	}
}
