package authz_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/chain/authz"
	"github.com/mandate-auth/mandate/chain/echomw"
	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

const dbAudience = "https://db.example"

var ordersTable = policy.Entity{Type: "Table", ID: "orders"}

// offline is a verifier over the test server's keys with no feed: per-call
// policy needs nothing else.
func offline(t *testing.T, env *dt.Env) *verifier.Verifier {
	t.Helper()
	v, err := verifier.New(verifier.Config{Issuer: env.URL, Audience: dbAudience, Realm: "db", Now: env.Clock.Now},
		env.Keys, verifier.NewRevocationSet())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type answer struct {
	status      int
	authn, body string
}

func get(t *testing.T, u, authz string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", authz)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)}
}

// TestPerCallPolicy: the resource server's own Cedar policy decides, locally,
// what a verified chain may do, on net/http and on echo.
func TestPerCallPolicy(t *testing.T) {
	calls, err := policy.LoadDir("../../testdata/policies/api")
	if err != nil {
		t.Fatal(err)
	}
	env := dt.New(t, dt.Options{})
	v := offline(t, env)
	az, err := authz.New(v, calls, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := env.Mint(t, "orchestrator", nil)
	child := env.Delegate(t, "orchestrator", root, "researcher", url.Values{"scope": {"db:read:* tools:search"}})
	grand := env.Delegate(t, "researcher", child, "db-agent", url.Values{"scope": {"db:read:orders"}, "audience": {dbAudience}})
	tools := env.Mint(t, "researcher", url.Values{"scope": {"tools:search"}, "audience": {dbAudience}})
	deep := env.Forge(t, grand, func(c *jwt.Claims) { c.Lineage = append(c.Lineage, "x", "y") })

	c, err := v.Verify(context.Background(), grand)
	if err != nil {
		t.Fatal(err)
	}
	if d := az.Authorize(c, policy.ActionCall, ordersTable); !d.Allow || d.Policies[0] != "orders-read" {
		t.Errorf("Authorize = %+v", d)
	}

	mux := http.NewServeMux()
	mux.Handle("/orders", v.Middleware(az.Require(policy.ActionCall, ordersTable)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))))
	std := httptest.NewServer(mux)
	defer std.Close()
	e := echo.New()
	e.GET("/orders", func(c echo.Context) error { return c.String(200, "ok") }, echomw.Verify(v), echomw.Require(v, az.Check(policy.ActionCall, ordersTable)))
	ech := httptest.NewServer(e)
	defer ech.Close()

	for name, u := range map[string]string{"net/http": std.URL + "/orders", "echo": ech.URL + "/orders"} {
		if a := get(t, u, "Bearer "+grand); a.status != 200 {
			t.Errorf("%s: permitted chain: %+v", name, a)
		}
		a := get(t, u, "Bearer "+tools)
		if a.status != 403 || !strings.Contains(a.authn, `error="insufficient_scope", error_description="no policy permits this request"`) {
			t.Errorf("%s: no read scope: %+v", name, a)
		}
		a = get(t, u, "Bearer "+deep)
		if a.status != 403 || !strings.Contains(a.body, `"policies":["orders-depth-limit"]`) {
			t.Errorf("%s: too deep: %+v", name, a)
		}
	}
	if _, err := authz.New(v, nil, nil); err != authz.ErrNoPolicy {
		t.Errorf("no policy: %v", err)
	}
}
