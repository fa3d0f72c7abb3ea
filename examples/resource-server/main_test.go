package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
)

// TestExampleAgainstARealMandate runs the example's API against a real Mandate
// server: a delegated read token reads, cannot write, and stops working when
// its task is revoked.
func TestExampleAgainstARealMandate(t *testing.T) {
	env := dt.New(t, dt.Options{})
	md := verifier.ResourceMetadata{Resource: "https://db.example", AuthorizationServers: []string{env.URL}}
	synced := make(chan struct{}, 16)
	v, err := verifier.Discover(context.Background(), verifier.Config{
		Issuer: env.URL, Audience: "https://db.example", ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"),
		Now: env.Clock.Now, OnSync: func(error) {
			select {
			case synced <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	api := httptest.NewServer(newAPI(v, md))
	defer api.Close()

	root := env.Mint(t, "orchestrator", nil)
	tok := env.Delegate(t, "orchestrator", root, "db-agent", url.Values{"scope": {"db:read:orders"}})
	call := func(method string) int {
		req, _ := http.NewRequest(method, api.URL+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(http.MethodGet); got != 200 {
		t.Fatalf("read: %d", got)
	}
	if got := call(http.MethodPost); got != 403 {
		t.Fatalf("write with a read token: %d", got)
	}
	resp, err := http.Get(api.URL + "/.well-known/oauth-protected-resource")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if doc["authorization_servers"].([]any)[0] != env.URL {
		t.Errorf("metadata = %v", doc)
	}
	env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}})
	deadline := time.After(5 * time.Second)
	for !v.Revoked(env.Claims(t, root).ID) {
		select {
		case <-synced:
		case <-deadline:
			t.Fatal("revocation did not reach the example API")
		}
	}
	if got := call(http.MethodGet); got != 401 {
		t.Fatalf("read after the task was revoked: %d", got)
	}
}

// TestAWrongSecretStopsTheExample: with a resource server secret Mandate
// refuses, the example does not start and keep answering 503; it exits at
// once with the reason.
func TestAWrongSecretStopsTheExample(t *testing.T) {
	env := dt.New(t, dt.Options{})
	t.Setenv("MANDATE_ISSUER", env.URL)
	t.Setenv("RS_AUDIENCE", "https://db.example")
	t.Setenv("RS_CLIENT_ID", "no-grants-rs")
	t.Setenv("RS_CLIENT_SECRET", "not-its-secret")
	t.Setenv("RS_LISTEN", "127.0.0.1:0")
	err := run(slog.New(slog.DiscardHandler))
	if !errors.Is(err, verifier.ErrFeedCredentials) || !strings.Contains(err.Error(), `cannot follow Mandate at `+env.URL+` as "no-grants-rs"`) {
		t.Fatalf("run with a wrong secret: %v", err)
	}
	// An agent's credentials (not a resource server) are refused the same way.
	t.Setenv("RS_CLIENT_ID", "orchestrator")
	t.Setenv("RS_CLIENT_SECRET", dt.Secret("orchestrator"))
	if err := run(slog.New(slog.DiscardHandler)); !errors.Is(err, verifier.ErrFeedCredentials) {
		t.Fatalf("run as an agent: %v", err)
	}
}
