package verifier_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/echomw"
	"github.com/mandate-auth/mandate/chain/verifier"
)

type answer struct {
	status int
	authn  string
	body   string
	retry  string
}

func get(t *testing.T, url, authz string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, strings.Join(resp.Header.Values("WWW-Authenticate"), " | "), strings.TrimSpace(string(b)), resp.Header.Get("Retry-After")}
}

// protectedServers returns the same protected API twice: on net/http and on echo.
func protectedServers(t *testing.T, v *verifier.Verifier) map[string]string {
	handler := func(c *chain.Chain) string { return c.Holder + " for " + c.Subject }
	mux := http.NewServeMux()
	mux.Handle("/orders", v.Middleware(v.RequireScope("db:read:orders")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verifier.FromContext(r.Context())
		io.WriteString(w, handler(c))
	}))))
	std := httptest.NewServer(mux)
	t.Cleanup(std.Close)

	e := echo.New()
	e.GET("/orders", func(c echo.Context) error {
		ch, _ := echomw.Chain(c)
		if fromReq, _ := verifier.FromContext(c.Request().Context()); fromReq != ch {
			t.Error("echo middleware did not put the chain in the request context")
		}
		return c.String(http.StatusOK, handler(ch))
	}, echomw.Verify(v), echomw.RequireScope(v, "db:read:orders"))
	ech := httptest.NewServer(e)
	t.Cleanup(ech.Close)
	return map[string]string{"net/http": std.URL + "/orders", "echo": ech.URL + "/orders"}
}

func TestMiddlewareAnswersPerRFC6750(t *testing.T) {
	r := newRig(t, nil)
	_, _, grand := chainOf(t, r.env)
	wrongScope := r.env.Mint(t, "researcher", url.Values{"scope": {"tools:search"}, "audience": {dbAudience}})
	otherAud := r.env.Mint(t, "researcher", url.Values{"audience": {"https://tools.example"}})
	for name, u := range protectedServers(t, r.v) {
		t.Run(name, func(t *testing.T) {
			ok := get(t, u, "Bearer "+grand)
			if ok.status != 200 || ok.body != "db-agent for orchestrator" {
				t.Fatalf("valid token: %+v", ok)
			}
			tests := []struct {
				name, authz string
				status      int
				challenge   string
			}{
				{"no token", "", 401, `Bearer realm="db", resource_metadata="https://db.example/.well-known/oauth-protected-resource"`},
				{"basic credentials", "Basic YTpi", 401, `Bearer realm="db", resource_metadata=`},
				{"empty bearer", "Bearer ", 400, `error="invalid_request"`},
				{"garbage", "Bearer abc.def.ghi", 401, `error="invalid_token", error_description="malformed token`},
				{"tampered", "Bearer " + grand[:len(grand)-4] + "AAAA", 401, `error="invalid_token", error_description="invalid token signature`},
				{"missing scope", "Bearer " + wrongScope, 403, `error="insufficient_scope", error_description="the token does not grant db:read:orders", scope="db:read:orders"`},
				{"wrong audience", "Bearer " + otherAud, 401, `error_description="token not meant for this audience: aud does not include https://db.example"`},
			}
			for _, tt := range tests {
				a := get(t, u, tt.authz)
				if a.status != tt.status || !strings.Contains(a.authn, tt.challenge) {
					t.Errorf("%s: %d %q, want %d containing %q", tt.name, a.status, a.authn, tt.status, tt.challenge)
				}
				if strings.Contains(a.body, grand) {
					t.Errorf("%s: response echoes the token", tt.name)
				}
				if strings.Contains(a.authn, `\`) {
					t.Errorf("%s: challenge has an escape RFC 6750 does not allow: %s", tt.name, a.authn)
				}
			}
			if a := get(t, u, "Bearer "+wrongScope); !strings.Contains(a.body, `"scope":"db:read:orders"`) {
				t.Errorf("403 body should name the missing scope: %s", a.body)
			}
		})
	}
	// Stale revocation data: 503, not 401, since the token may well be valid.
	r.net.set(true)
	r.until(t, 5*time.Second, func() bool { return r.last != nil })
	r.env.Clock.Advance(31 * time.Second)
	for name, u := range protectedServers(t, r.v) {
		a := get(t, u, "Bearer "+grand)
		var body map[string]string
		_ = json.Unmarshal([]byte(a.body), &body)
		if a.status != http.StatusServiceUnavailable || a.retry == "" || body["error"] != "temporarily_unavailable" {
			t.Errorf("%s stale: %+v", name, a)
		}
	}
}

func TestResourceMetadata(t *testing.T) {
	md := verifier.ResourceMetadata{Resource: "https://api.example/mcp", AuthorizationServers: []string{"https://mandate.example"}, ScopesSupported: []string{"tools:*"}}
	if p := verifier.ResourceMetadataPath(md.Resource); p != "/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("path = %q", p)
	}
	if u := md.URL(); u != "https://api.example/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("url = %q", u)
	}
	if p := verifier.ResourceMetadataPath("https://api.example"); p != "/.well-known/oauth-protected-resource" {
		t.Errorf("root path = %q", p)
	}
	if p := verifier.ResourceMetadataPath("https://api.example/a%20b/?t=1"); p != "/.well-known/oauth-protected-resource/a%20b?t=1" {
		t.Errorf("escaped path with query = %q", p)
	}
	rec := httptest.NewRecorder()
	md.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%v %s", err, rec.Body)
	}
	if got["resource"] != md.Resource || got["authorization_servers"].([]any)[0] != "https://mandate.example" ||
		got["bearer_methods_supported"].([]any)[0] != "header" {
		t.Errorf("document = %v", got)
	}
	rec = httptest.NewRecorder()
	md.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}
