package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// hugeDates are NumericDates beyond ±2^53 (or not numbers). Before the one
// NumericDate type, a trusted issuer's token with such an exp was clamped
// to the year 5138 and accepted, while an ephemeral agent's was clamped to
// 1970 and called expired; now every reader calls them malformed.
var hugeDates = []any{1e16, -1e16, json.Number("9007199254740993"), json.Number("18446744073709551616"), "tomorrow"}

// TestAHugeNumericDateIsMalformedEverywhere: every token Mandate's token
// endpoint reads refuses a date beyond ±2^53, with its own error code.
func TestAHugeNumericDateIsMalformedEverywhere(t *testing.T) {
	t.Run("subject_token signed by Mandate", func(t *testing.T) {
		env := dt.New(t, dt.Options{})
		root := env.Mint(t, "orchestrator", nil)
		for _, claim := range []string{"exp", "nbf", "iat"} {
			payload := strings.Split(dt.Tamper(t, root, func(c map[string]any) { c[claim] = json.Number("9007199254740993") }), ".")[1]
			forged := dt.JWS(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": env.Keys.CurrentKeyID()}, payload, dt.Ed25519Signer(env.SigningKey(t)))
			r := env.Exchange(t, "orchestrator", forged, "", nil)
			expectError(t, r, 400, oauth.CodeInvalidRequest)
			if !strings.Contains(r.String("error_description"), "subject_token is not a valid Mandate token: malformed token") {
				t.Errorf("%s: %s", claim, r.Raw)
			}
		}
	})
	t.Run("trusted issuer's subject token", func(t *testing.T) {
		env, p := externalEnv(t)
		for _, d := range hugeDates {
			tok := p.sign(t, userToken(dt.Start.Add(time.Hour), func(c map[string]any) { c["exp"] = d }))
			r := env.Exchange(t, "orchestrator", tok, "", nil)
			expectError(t, r, 400, oauth.CodeInvalidRequest)
			if !strings.Contains(r.String("error_description"), "subject_token claims are malformed") {
				t.Errorf("exp %v: %s", d, r.Raw)
			}
		}
	})
	t.Run("private_key_jwt assertion", func(t *testing.T) {
		env, key := keyedEnv(t)
		now := env.Clock.Now()
		for i, d := range hugeDates {
			a := key.sign(t, "k1", map[string]any{"iss": "keyed", "sub": "keyed", "aud": env.URL, "exp": d, "iat": now.Unix(), "jti": "h" + string(rune('a'+i))})
			r := env.Post(t, "token_endpoint", "", url.Values{"grant_type": {oauth.GrantClientCredentials},
				"client_assertion_type": {delegation.ClientAssertionType}, "client_assertion": {a}})
			expectError(t, r, 401, oauth.CodeInvalidClient)
		}
	})
	t.Run("ephemeral agent's actor token", func(t *testing.T) {
		env := dt.New(t, dt.Options{})
		root := env.Mint(t, "orchestrator", nil)
		for _, claim := range []string{"exp", "iat"} {
			for _, d := range hugeDates {
				f := dt.ExchangeForm(root, "", url.Values{"scope": {"db:read:orders"}})
				f.Set("actor_token", agentToken(t, env, newKey(t), func(c map[string]any) { c[claim] = d }))
				f.Set("actor_token_type", oauth.TokenTypeJWT)
				r := env.Post(t, "token_endpoint", "orchestrator", f)
				expectError(t, r, 400, oauth.CodeInvalidRequest)
				if !strings.Contains(r.String("error_description"), "malformed") {
					t.Errorf("%s %v: %s", claim, d, r.Raw)
				}
			}
		}
	})
	t.Run("DPoP proof", func(t *testing.T) {
		env := dt.New(t, dt.Options{})
		key := newKey(t)
		proof, err := key.Proof(http.MethodPost, env.Endpoint(t, "token_endpoint"), "", "", time.Unix(1e16, 0))
		if err != nil {
			t.Fatal(err)
		}
		r := env.PostDPoP(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {oauth.GrantClientCredentials}}, proof)
		expectError(t, r, 400, oauth.CodeInvalidDPoPProof)
	})
	if jwt.MaxNumericDate != 1<<53 {
		t.Fatal("the bound is 2^53")
	}
}
