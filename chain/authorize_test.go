package chain_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/echomw"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

var ordersTable = policy.Entity{Type: "Table", ID: "orders"}

// TestPerCallPolicy: the resource server's own Cedar policy decides, locally,
// what a verified chain may do, on net/http and on echo.
func TestPerCallPolicy(t *testing.T) {
	calls, err := policy.LoadDir("../testdata/policies/api")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *chain.VerifierConfig) { c.Policy = calls })
	_, _, grand := chainOf(t, r.env)
	tools := r.env.Mint(t, "researcher", url.Values{"scope": {"tools:search"}, "audience": {dbAudience}})
	deep := r.env.Forge(t, grand, func(c *tokens.Claims) { c.Lineage = append(c.Lineage, "x", "y") })

	c, err := r.v.Verify(context.Background(), grand)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := r.v.Authorize(c, policy.ActionCall, ordersTable); err != nil || !d.Allow || d.Policies[0] != "orders-read" {
		t.Errorf("Authorize = %+v, %v", d, err)
	}

	mux := http.NewServeMux()
	mux.Handle("/orders", r.v.Middleware(r.v.RequirePermission(policy.ActionCall, ordersTable)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))))
	std := httptest.NewServer(mux)
	defer std.Close()
	e := echo.New()
	e.GET("/orders", func(c echo.Context) error { return c.String(200, "ok") }, echomw.Verify(r.v), echomw.RequirePermission(r.v, policy.ActionCall, ordersTable))
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
	v2 := newRig(t, nil).v
	if _, err := v2.Authorize(c, policy.ActionCall, ordersTable); err != chain.ErrNoPolicy {
		t.Errorf("no policy: %v", err)
	}
}
