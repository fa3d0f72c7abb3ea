package httpapi_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

// TestNoTokenLargerThanAVerifierAccepts: a token that would exceed 16 KiB
// (here from a registration with many long audiences) is refused before
// anything is stored, and what the refusal writes is bounded.
func TestNoTokenLargerThanAVerifierAccepts(t *testing.T) {
	var auds []string
	for i := range 60 {
		auds = append(auds, fmt.Sprintf("https://api-%02d.example/%s", i, strings.Repeat("p", 280)))
	}
	clients := append(dt.DefaultClients(), dt.Client{ID: "wide", Grants: dt.Both, Scopes: []string{"db:read:*"}, Audiences: auds})
	env := dt.New(t, dt.Options{Clients: clients})
	before, _ := env.Bolt.Stats(env.Clock.Now())
	r := env.Post(t, "token_endpoint", "wide", url.Values{"grant_type": {oauth.GrantClientCredentials}})
	expectError(t, r, 400, oauth.CodeInvalidRequest)
	if !strings.Contains(r.String("error_description"), fmt.Sprintf("more than the %d any verifier accepts", tokens.MaxTokenSize)) {
		t.Errorf("description: %s", r.Raw)
	}
	if after, _ := env.Bolt.Stats(env.Clock.Now()); after.Tokens != before.Tokens {
		t.Errorf("a refused token was stored: %d → %d records", before.Tokens, after.Tokens)
	}
	// A narrower request from the same client is fine.
	env.Mint(t, "wide", url.Values{"audience": {auds[0]}})

	// What a refusal writes to the audit trail is bounded, however large the request.
	var huge []string
	for i := range 17 {
		huge = append(huge, fmt.Sprintf("db:read:%02d%s", i, strings.Repeat("y", 238)))
	}
	expectError(t, env.Post(t, "token_endpoint", "researcher", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {strings.Join(huge, " ")}}), 400, oauth.CodeInvalidScope)
	recs, err := env.DB.AuditTail(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if rec.Type == store.AuditRefused && len(rec.Reason)+len(rec.Scope)+len(rec.Grant) > 600 {
			t.Errorf("a refusal wrote %d bytes of reason: %.80s…", len(rec.Reason), rec.Reason)
		}
	}
}
