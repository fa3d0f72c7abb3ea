package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
)

// FuzzTokenEndpoint sends arbitrary form bodies and Authorization headers to the
// real token endpoint. Whatever the input, the server must answer with a
// well-formed OAuth response (never a 5xx, never a panic), must not echo the
// secret, and must only issue a token to a caller that authenticated.
func FuzzTokenEndpoint(f *testing.F) {
	env := dt.New(f, dt.Options{})
	root := env.Mint(f, "orchestrator", nil)
	actor := env.Identity(f, "researcher")
	good := dt.BasicAuth("orchestrator", dt.Secret("orchestrator"))
	f.Add(good, "grant_type=client_credentials&scope=db:read:orders")
	f.Add(good, dt.ExchangeForm(root, actor, url.Values{"scope": {"db:read:x"}}).Encode())
	f.Add(good, dt.ExchangeForm(root, "", url.Values{"audience": {"https://db.example", "https://db.example"}}).Encode())
	f.Add(good, "grant_type=client_credentials&scope=a&scope=b")
	f.Add("Basic "+strings.Repeat("A", 100), "grant_type=client_credentials")
	f.Add("", "client_id=orchestrator&client_secret=x&grant_type=client_credentials")
	f.Add(good, "grant_type=%zz")
	f.Add(good, "grant_type="+url.QueryEscape(oauth.GrantTokenExchange)+"&subject_token=a.b.c&subject_token_type="+url.QueryEscape(oauth.TokenTypeJWT))
	handler := env.Handler
	f.Fuzz(func(t *testing.T, authz, body string) {
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for authz=%q body=%q: %s", rec.Code, authz, body, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("non-JSON answer %d: %q", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), dt.Secret("orchestrator")) {
			t.Fatal("secret echoed")
		}
		if rec.Code == http.StatusOK {
			if out["access_token"] == nil {
				t.Fatalf("200 without a token: %s", rec.Body)
			}
			if !carriesSecret(authz) && !strings.Contains(body, "client_secret=") {
				t.Fatalf("token issued without valid credentials: authz=%q body=%q", authz, body)
			}
			return
		}
		if out["error"] == nil {
			t.Fatalf("%d without an OAuth error: %s", rec.Code, rec.Body)
		}
	})
}

// carriesSecret reports whether an Authorization header holds Basic credentials
// with the orchestrator's secret, however the scheme is capitalised or spaced.
func carriesSecret(authz string) bool {
	scheme, rest, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return false
	}
	_, secret, _ := strings.Cut(string(raw), ":")
	plain, err := url.QueryUnescape(secret)
	return err == nil && plain == dt.Secret("orchestrator")
}

// FuzzJWTBearerGrant: with workload and ID-JAG issuers configured, no body
// gets a 5xx or a non-OAuth answer, and a token is issued only for a
// platform token or ID-JAG the platform signed (or a client's secret):
// nothing the fuzzer composes passes for one.
func FuzzJWTBearerGrant(f *testing.F) {
	k8s, idp := dt.NewPlatform(f, "https://k8s.example"), dt.NewPlatform(f, "https://login.acme.example")
	clients := append(dt.DefaultClients(), dt.Client{ID: "portal", Grants: []string{delegation.GrantNameJWTBearer}, Scopes: []string{"db:read:*"}})
	env := dt.New(f, dt.Options{Clients: clients, Configure: func(cfg *server.Config, write func(string, []byte) string) {
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{{Issuer: k8s.Issuer, KeySource: server.KeySource{JWKSFile: write("k8s.json", k8s.JWKS)},
			Rules: []server.WorkloadRuleConfig{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"}, Agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}",
				Scopes: []string{"db:read:*"}}}}}
		cfg.IDJAGIssuers = []server.IDJAGIssuerConfig{{Issuer: idp.Issuer, KeySource: server.KeySource{JWKSFile: write("idp.json", idp.JWKS)}}}
	}})
	sa := k8s.ServiceAccountToken(f, env.URL, "agents", "researcher", "j1", env.Clock.Now())
	bearer := url.QueryEscape(oauth.GrantJWTBearer)
	f.Add("", "grant_type="+bearer+"&assertion="+sa)
	f.Add("", "grant_type="+bearer+"&assertion="+sa+"&assertion="+sa)
	f.Add("", "grant_type="+bearer+"&assertion="+sa+"&client_id=k8s%2Fagents%2Fresearcher&scope=db:read:x")
	f.Add("", "grant_type=client_credentials&audience="+url.QueryEscape(env.URL)+"&client_assertion_type="+url.QueryEscape(delegation.ClientAssertionType)+"&client_assertion="+sa)
	f.Add(dt.BasicAuth("portal", dt.Secret("portal")), "grant_type="+bearer+"&assertion="+sa)
	f.Add("", "grant_type="+bearer+"&assertion=eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2s4cy5leGFtcGxlIn0.")
	handler := env.Handler
	f.Fuzz(func(t *testing.T, authz, body string) {
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for authz=%q body=%q: %s", rec.Code, authz, body, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("non-JSON answer %d: %q", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if out["error"] == nil {
				t.Fatalf("%d without an OAuth error: %s", rec.Code, rec.Body)
			}
			return
		}
		form, _ := url.ParseQuery(body)
		signed := form.Get("assertion") == sa || form.Get("client_assertion") == sa
		if !signed && !strings.Contains(body, "client_secret=") && authz == "" {
			t.Fatalf("token issued for no signed assertion: body=%q", body)
		}
	})
}
