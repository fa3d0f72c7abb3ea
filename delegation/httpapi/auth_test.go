package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

var ccForm = url.Values{"grant_type": {oauth.GrantClientCredentials}}

func TestMetadataAdvertisesEveryEndpoint(t *testing.T) {
	env := dt.New(t, dt.Options{})
	for _, f := range []string{"issuer", "token_endpoint", "jwks_uri", "revocation_endpoint",
		"introspection_endpoint", "grant_types_supported", "token_endpoint_auth_methods_supported", "revocation_feed_endpoint"} {
		if _, ok := env.Metadata[f]; !ok {
			t.Errorf("metadata lacks %s", f)
		}
	}
	if env.Metadata["issuer"] != env.URL {
		t.Errorf("issuer = %v, want %s", env.Metadata["issuer"], env.URL)
	}
	methods := env.Metadata["token_endpoint_auth_methods_supported"].([]any)
	if len(methods) != 3 || methods[0] != "client_secret_basic" || methods[1] != "client_secret_post" || methods[2] != "private_key_jwt" {
		t.Errorf("auth methods = %v: only what works may be advertised", methods)
	}
	grants := env.Metadata["grant_types_supported"].([]any)
	if len(grants) != 2 || grants[0] != oauth.GrantClientCredentials || grants[1] != oauth.GrantTokenExchange {
		t.Errorf("grants = %v", grants)
	}
}

func TestJWKSPublishesTheSigningKey(t *testing.T) {
	env := dt.New(t, dt.Options{})
	r := env.Get(t, env.Endpoint(t, "jwks_uri"))
	if r.Status != http.StatusOK {
		t.Fatalf("jwks: %d", r.Status)
	}
	keys := r.JSON["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("want one key, got %d", len(keys))
	}
	k := keys[0].(map[string]any)
	if k["kid"] != env.Keys.CurrentKeyID() || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kty"] != "OKP" {
		t.Errorf("jwk = %v", k)
	}
	if _, private := k["d"]; private {
		t.Fatal("JWKS leaks the private key")
	}
}

func TestClientAuthentication(t *testing.T) {
	env := dt.New(t, dt.Options{})
	post := func(mutate func(*http.Request)) dt.Response {
		body := ccForm.Encode()
		req, _ := http.NewRequest(http.MethodPost, env.Endpoint(t, "token_endpoint"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		mutate(req)
		if req.ContentLength != int64(len(body)) {
			req.ContentLength = -1
		}
		return env.Do(t, req)
	}
	withBody := func(req *http.Request, form url.Values) {
		s := form.Encode()
		req.Body = ioNopCloser(s)
		req.ContentLength = int64(len(s))
	}
	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", dt.BasicAuth(id, secret)) }
	}
	tests := []struct {
		name       string
		mutate     func(*http.Request)
		wantStatus int
		wantError  string
	}{
		{"basic with form-urlencoded id and secret", basic("orchestrator", dt.Secret("orchestrator")), 200, ""},
		{"post", func(r *http.Request) {
			withBody(r, url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"orchestrator"}, "client_secret": {dt.Secret("orchestrator")}})
		}, 200, ""},
		{"basic without url-encoding the secret", func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("orchestrator:"+dt.Secret("orchestrator"))))
		}, 401, oauth.CodeInvalidClient},
		{"wrong secret", basic("orchestrator", "nope"), 401, oauth.CodeInvalidClient},
		{"another client's secret", basic("orchestrator", dt.Secret("researcher")), 401, oauth.CodeInvalidClient},
		{"unknown client", basic("ghost", dt.Secret("ghost")), 401, oauth.CodeInvalidClient},
		{"empty secret", basic("orchestrator", ""), 401, oauth.CodeInvalidClient},
		{"no credentials", func(*http.Request) {}, 401, oauth.CodeInvalidClient},
		{"post with a wrong secret", func(r *http.Request) {
			withBody(r, url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"orchestrator"}, "client_secret": {"nope"}})
		}, 401, oauth.CodeInvalidClient},
		{"post with another client's secret", func(r *http.Request) {
			withBody(r, url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"orchestrator"}, "client_secret": {dt.Secret("researcher")}})
		}, 401, oauth.CodeInvalidClient},
		{"post without secret", func(r *http.Request) {
			withBody(r, url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"orchestrator"}})
		}, 401, oauth.CodeInvalidClient},
		{"bearer scheme", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, 401, oauth.CodeInvalidClient},
		{"malformed basic", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, 401, oauth.CodeInvalidClient},
		{"both basic and post", func(r *http.Request) {
			r.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
			withBody(r, url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"orchestrator"}, "client_secret": {dt.Secret("orchestrator")}})
		}, 400, oauth.CodeInvalidRequest},
		{"body client_id differs from basic", func(r *http.Request) {
			r.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
			withBody(r, url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {"researcher"}})
		}, 400, oauth.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.mutate)
			if r.Status != tt.wantStatus || r.Error() != tt.wantError {
				t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.Error(), r.Raw, tt.wantStatus, tt.wantError)
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") != `Basic realm="mandate"` {
				t.Errorf("401 without WWW-Authenticate challenge: %q", r.Header.Get("WWW-Authenticate"))
			}
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", r.Header.Get("Cache-Control"))
			}
			if strings.Contains(string(r.Raw), "secret-for") {
				t.Errorf("response echoes a secret: %s", r.Raw)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	env := dt.New(t, dt.Options{})
	tok := env.Endpoint(t, "token_endpoint")
	send := func(contentType, body string) dt.Response {
		req, _ := http.NewRequest(http.MethodPost, tok, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
		return env.Do(t, req)
	}
	tests := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"json body", "application/json", `{"grant_type":"client_credentials"}`, 400, oauth.CodeInvalidRequest},
		{"form with charset", "application/x-www-form-urlencoded; charset=UTF-8", "grant_type=client_credentials", 200, ""},
		{"malformed form", "application/x-www-form-urlencoded", "grant_type=%zz", 400, oauth.CodeInvalidRequest},
		{"repeated scope", "application/x-www-form-urlencoded", "grant_type=client_credentials&scope=tools:*&scope=db:read:*", 400, oauth.CodeInvalidRequest},
		{"repeated grant_type", "application/x-www-form-urlencoded", "grant_type=client_credentials&grant_type=client_credentials", 400, oauth.CodeInvalidRequest},
		{"oversized body", "application/x-www-form-urlencoded", "grant_type=client_credentials&pad=" + strings.Repeat("a", 70<<10), 413, oauth.CodeInvalidRequest},
		{"missing grant_type", "application/x-www-form-urlencoded", "scope=tools:*", 400, oauth.CodeInvalidRequest},
		{"unknown grant_type", "application/x-www-form-urlencoded", "grant_type=password", 400, oauth.CodeUnsupportedGrantType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(tt.ctype, tt.body)
			if r.Status != tt.status || r.Error() != tt.code {
				t.Fatalf("got %d %q %s, want %d %q", r.Status, r.Error(), r.Raw, tt.status, tt.code)
			}
		})
	}
	t.Run("query string is not read", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, tok+"?grant_type=client_credentials", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", dt.BasicAuth("orchestrator", dt.Secret("orchestrator")))
		if r := env.Do(t, req); r.Status != 400 || r.Error() != oauth.CodeInvalidRequest {
			t.Fatalf("got %d %s", r.Status, r.Raw)
		}
	})
	t.Run("GET on the token endpoint", func(t *testing.T) {
		if r := env.Get(t, tok); r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("got %d", r.Status)
		}
	})
}

func TestHealthAndReadiness(t *testing.T) {
	env := dt.New(t, dt.Options{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := env.Get(t, env.URL+p); r.Status != 200 {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	env.DB.Close()
	if r := env.Get(t, env.URL+"/readyz"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz with a closed store: %d", r.Status)
	}
}

// TestAuthenticationCacheNeverAdmitsAWrongSecret: a remembered success
// speeds up the right secret only; a wrong one is refused, before and after
// the cache entry expires.
func TestAuthenticationCacheNeverAdmitsAWrongSecret(t *testing.T) {
	env := dt.New(t, dt.Options{})
	mint := func(secret string) int {
		req, _ := http.NewRequest(http.MethodPost, env.Endpoint(t, "token_endpoint"), strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", dt.BasicAuth("orchestrator", secret))
		return env.Do(t, req).Status
	}
	right := dt.Secret("orchestrator")
	for i, tt := range []struct {
		secret  string
		advance time.Duration
		want    int
	}{{right, 0, 200}, {right, 0, 200}, {"wrong", 0, 401}, {right + "x", 0, 401}, {"", 0, 401}, {right, delegation.AuthCacheTTL, 200}, {"wrong", delegation.AuthCacheTTL, 401}} {
		env.Clock.Advance(tt.advance)
		if got := mint(tt.secret); got != tt.want {
			t.Errorf("step %d: %d, want %d", i, got, tt.want)
		}
	}
}

// TestRevocationAndIntrospectionAuthenticateAndTakeOneToken: the other form
// endpoints refuse wrong credentials with 401 invalid_client and a repeated
// token parameter with invalid_request, changing nothing.
func TestRevocationAndIntrospectionAuthenticateAndTakeOneToken(t *testing.T) {
	env := dt.New(t, dt.Options{})
	tok, other := env.Mint(t, "orchestrator", nil), env.Mint(t, "orchestrator", nil)
	send := func(endpoint, id, secret string, form url.Values) dt.Response {
		req, _ := http.NewRequest(http.MethodPost, env.Endpoint(t, endpoint), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", dt.BasicAuth(id, secret))
		return env.Do(t, req)
	}
	for _, tt := range []struct {
		endpoint, client, secret string
		form                     url.Values
		status                   int
		code                     string
	}{
		{"revocation_endpoint", "orchestrator", "nope", url.Values{"token": {tok}}, 401, oauth.CodeInvalidClient},
		{"introspection_endpoint", "no-grants-rs", "nope", url.Values{"token": {tok}}, 401, oauth.CodeInvalidClient},
		{"introspection_endpoint", "no-grants-rs", dt.Secret("orchestrator"), url.Values{"token": {tok}}, 401, oauth.CodeInvalidClient},
		{"revocation_endpoint", "orchestrator", dt.Secret("orchestrator"), url.Values{"token": {tok, other}}, 400, oauth.CodeInvalidRequest},
		{"introspection_endpoint", "no-grants-rs", dt.Secret("no-grants-rs"), url.Values{"token": {tok, other}}, 400, oauth.CodeInvalidRequest},
	} {
		r := send(tt.endpoint, tt.client, tt.secret, tt.form)
		if r.Status != tt.status || r.Error() != tt.code {
			t.Errorf("%s as %s with %d tokens: %d %s", tt.endpoint, tt.client, len(tt.form["token"]), r.Status, r.Raw)
		}
	}
	if !active(t, env, tok) || !active(t, env, other) {
		t.Error("a refused revocation revoked something")
	}
}
