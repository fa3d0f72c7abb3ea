package delegation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

// openKeys opens a store for t and a key ring in it, for delegation.New.
func openKeys(t *testing.T) (*bolt.DB, *tokens.KeyRing) {
	t.Helper()
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := tokens.OpenKeyRing(context.Background(), db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return db, keys
}

// TestNoRegistrationGrantsMandatesOwnAudience: Mandate's issuer is the
// audience of identity tokens, which carry no scope; a registration listing
// it (for the client or its ephemeral agents) would let scoped tokens look
// like identity tokens, so New refuses it.
func TestNoRegistrationGrantsMandatesOwnAudience(t *testing.T) {
	db, keys := openKeys(t)
	for name, reg := range map[string]delegation.Registration{
		"audiences": {ID: "a", Secret: delegation.NewPlainSecret("s"), Grants: []string{delegation.GrantNameClientCredentials},
			Scopes: []string{"x"}, Audiences: []string{"https://api.example", "https://m.example"}},
		"ephemeral audiences": {ID: "a", Secret: delegation.NewPlainSecret("s"), Grants: []string{delegation.GrantNameTokenExchange},
			Ephemeral: &delegation.Ephemeral{Scopes: []string{"x"}, Audiences: []string{"https://m.example"}}},
	} {
		_, err := delegation.New(delegation.Config{Issuer: "https://m.example", RootTTL: time.Minute, DelegatedTTL: time.Minute, MaxDepth: 2,
			Clients: []delegation.Registration{reg}}, keys, db)
		if err == nil || !strings.Contains(err.Error(), `audience "https://m.example" is Mandate's own issuer`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestServesIsOneClientsAndNeverMandates: New refuses a registration that
// serves Mandate's own issuer (every identity token would become
// exchangeable) and an audience two registrations serve (which of them is
// the resource server would be ambiguous).
func TestServesIsOneClientsAndNeverMandates(t *testing.T) {
	db, keys := openKeys(t)
	mcp := func(id string, serves ...string) delegation.Registration {
		return delegation.Registration{ID: id, Secret: delegation.NewPlainSecret("s"), Grants: []string{delegation.GrantNameTokenExchange},
			Scopes: []string{"x"}, Audiences: []string{"https://api.example"}, Serves: serves}
	}
	for name, tt := range map[string]struct {
		clients []delegation.Registration
		want    string
	}{
		"Mandate's issuer":     {[]delegation.Registration{mcp("a", "https://m.example")}, `client "a": serves "https://m.example", Mandate's own issuer`},
		"an empty audience":    {[]delegation.Registration{mcp("a", "")}, `client "a": serves an empty audience`},
		"served by two":        {[]delegation.Registration{mcp("a", "https://mcp.example"), mcp("b", "https://x.example", "https://mcp.example")}, `client "b": serves "https://mcp.example", which client "a" already serves`},
		"one client, two URIs": {[]delegation.Registration{mcp("a", "https://mcp.example", "https://mcp2.example")}, ""},
	} {
		_, err := delegation.New(delegation.Config{Issuer: "https://m.example", RootTTL: time.Minute, DelegatedTTL: time.Minute, MaxDepth: 2,
			Clients: tt.clients}, keys, db)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
