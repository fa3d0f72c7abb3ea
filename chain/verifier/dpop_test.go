package verifier_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/chain/echomw"
	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// boundChain builds orchestrator → researcher → db-agent with every token
// bound to its holder's key, and returns the db-agent's token and key.
func boundChain(t testing.TB, env *dt.Env) (string, *tokens.DPoPKey) {
	t.Helper()
	keys := map[string]*tokens.DPoPKey{}
	mint := func(client string, extra url.Values) string {
		k, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
		keys[client] = k
		form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
		for n, v := range extra {
			form[n] = v
		}
		r := env.PostDPoP(t, "token_endpoint", client, form, env.Proof(t, k))
		if r.Status != 200 {
			t.Fatalf("mint %s: %s", client, r.Raw)
		}
		return r.String("access_token")
	}
	exchange := func(client, subject, actor string, extra url.Values) string {
		r := env.PostDPoP(t, "token_endpoint", client, dt.ExchangeForm(subject, actor, extra), env.Proof(t, keys[client]))
		if r.Status != 200 || r.String("token_type") != "DPoP" {
			t.Fatalf("exchange by %s: %s", client, r.Raw)
		}
		return r.String("access_token")
	}
	root := mint("orchestrator", nil)
	child := exchange("orchestrator", root, mint("researcher", nil), url.Values{"scope": {"db:read:*"}})
	grand := exchange("researcher", child, mint("db-agent", nil), url.Values{"scope": {"db:read:orders"}, "audience": {dbAudience}})
	return grand, keys["db-agent"]
}

type dpopCall struct {
	scheme, token string
	proofs        []string
	method        string
}

func (c dpopCall) do(t *testing.T, u string) answer {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req, _ := http.NewRequest(method, u, nil)
	req.Header.Set("Authorization", c.scheme+" "+c.token)
	for _, p := range c.proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(b)), resp.Header.Get("DPoP-Nonce")}
}

// dpopRig is a rig whose Verifier protects one loopback server, its
// PublicURL, with the same route through net/http (behind StripPrefix, so the
// path a client signed is not the handler's) and through echo.
func dpopRig(t *testing.T, mutate func(*verifier.Config)) (*rig, map[string]string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	r := newRig(t, func(c *verifier.Config) {
		c.PublicURL = base
		if mutate != nil {
			mutate(c)
		}
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verifier.FromContext(r.Context())
		io.WriteString(w, c.Holder)
	})
	mux := http.NewServeMux()
	mux.Handle("/std/", http.StripPrefix("/std", r.v.Middleware(r.v.RequireScope("db:read:orders")(ok))))
	e := echo.New()
	e.Any("/echo/*", echo.WrapHandler(ok), echomw.Verify(r.v), echomw.RequireScope(r.v, "db:read:orders"))
	mux.Handle("/echo/", e)
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(ts.Close)
	return r, map[string]string{"net/http": base + "/std/orders", "echo": base + "/echo/orders"}
}

// TestAStolenBoundTokenIsUselessAtResourceServers: a DPoP-bound token works
// only with a fresh proof, for this request, by the key it is bound to.
func TestAStolenBoundTokenIsUselessAtResourceServers(t *testing.T) {
	r, servers := dpopRig(t, nil)
	grand, key := boundChain(t, r.env)
	thief, _ := tokens.NewDPoPKey(tokens.AlgEdDSA)
	now := r.env.Clock.Now()
	for name, u := range servers {
		t.Run(name, func(t *testing.T) {
			proof := func(k *tokens.DPoPKey, method, target, tok string) string {
				p, err := k.Proof(method, target, tok, "", now)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			good := proof(key, "GET", u, grand)
			if a := (dpopCall{scheme: "DPoP", token: grand, proofs: []string{good}}).do(t, u); a.status != 200 || a.body != "db-agent" {
				t.Fatalf("the holder with its key: %+v", a)
			}
			other, _ := boundChain(t, r.env)
			tests := []struct {
				name      string
				call      dpopCall
				challenge string
			}{
				{"replayed as a Bearer token", dpopCall{scheme: "Bearer", token: grand}, `Bearer realm="db", error="invalid_token", error_description="token is sender-constrained`},
				{"with the thief's proof", dpopCall{scheme: "DPoP", token: grand, proofs: []string{proof(thief, "GET", u, grand)}}, `DPoP realm="db", error="invalid_dpop_proof"`},
				{"without a proof", dpopCall{scheme: "DPoP", token: grand}, `error="invalid_dpop_proof", error_description="invalid DPoP proof: exactly one DPoP header`},
				{"with two proofs", dpopCall{scheme: "DPoP", token: grand, proofs: []string{proof(key, "GET", u, grand), proof(key, "GET", u, grand)}}, `invalid_dpop_proof`},
				{"with a proof for another method", dpopCall{scheme: "DPoP", token: grand, proofs: []string{proof(key, "POST", u, grand)}}, `htm`},
				{"with a proof for another URL", dpopCall{scheme: "DPoP", token: grand, proofs: []string{proof(key, "GET", u+"/all", grand)}}, `htu`},
				{"with a proof for another token", dpopCall{scheme: "DPoP", token: grand, proofs: []string{proof(key, "GET", u, other)}}, `ath`},
				{"with a replayed proof", dpopCall{scheme: "DPoP", token: grand, proofs: []string{good}}, `replayed`},
			}
			for _, tt := range tests {
				a := tt.call.do(t, u)
				if a.status != 401 || !strings.Contains(a.authn, tt.challenge) {
					t.Errorf("%s: %d %q", tt.name, a.status, a.authn)
				}
				if tt.call.scheme == "DPoP" && !strings.HasPrefix(a.authn, `DPoP realm="db", error="invalid_dpop_proof", error_description=`) {
					t.Errorf("%s: challenge %q, want invalid_dpop_proof", tt.name, a.authn)
				}
			}
		})
	}
	// A bearer token presented under the DPoP scheme is refused too.
	bearer := r.env.Mint(t, "db-agent", url.Values{"audience": {dbAudience}})
	p, _ := key.Proof("GET", "http://x/orders", bearer, "", now)
	if _, err := r.v.VerifyDPoP(context.Background(), bearer, p, "GET", "http://x/orders"); !errors.Is(err, verifier.ErrInvalidDPoPProof) || !strings.Contains(err.Error(), "not bound") {
		t.Errorf("bearer token under DPoP: %v", err)
	}
}

func TestDPoPNonce(t *testing.T) {
	r, servers := dpopRig(t, func(c *verifier.Config) { c.DPoPNonce = true })
	grand, key := boundChain(t, r.env)
	u := servers["net/http"]
	p, _ := key.Proof("GET", u, grand, "", r.env.Clock.Now())
	a := (dpopCall{scheme: "DPoP", token: grand, proofs: []string{p}}).do(t, u)
	if a.status != 401 || !strings.Contains(a.authn, `error="use_dpop_nonce"`) || a.retry == "" {
		t.Fatalf("without a nonce: %+v", a)
	}
	p, _ = key.Proof("GET", u, grand, a.retry, r.env.Clock.Now())
	if a := (dpopCall{scheme: "DPoP", token: grand, proofs: []string{p}}).do(t, u); a.status != 200 {
		t.Fatalf("with the server's nonce: %+v", a)
	}
}

// TestAConfirmationWithoutAThumbprintIsRefused: a cnf this verifier cannot
// check must not let a token pass as a bearer token; and a refusal
// challenges under both schemes, since both are accepted.
func TestAConfirmationWithoutAThumbprintIsRefused(t *testing.T) {
	r, servers := dpopRig(t, nil)
	tok := r.env.Mint(t, "db-agent", url.Values{"audience": {dbAudience}})
	forged := r.env.Forge(t, tok, func(c *jwt.Claims) { c.Cnf = &jwt.Confirmation{} })
	if _, err := r.v.Verify(context.Background(), forged); err == nil || !strings.Contains(err.Error(), "cnf without jkt") {
		t.Fatalf("cnf without jkt: %v", err)
	}
	u := servers["net/http"]
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+forged)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := resp.Header.Values("WWW-Authenticate")
	if resp.StatusCode != 401 || len(got) != 2 || !strings.HasPrefix(got[0], `Bearer realm="db", error="invalid_token"`) ||
		!strings.HasPrefix(got[1], `DPoP realm="db", error="invalid_token"`) {
		t.Errorf("%d %q", resp.StatusCode, got)
	}
}

// TestAProofIsForThisServerOnly: htu is checked against PublicURL, not the
// Host header the sender chose, so a server that received a token and a
// proof cannot relay them to another audience of the token; and a verifier
// with no PublicURL refuses bound tokens, saying why.
func TestAProofIsForThisServerOnly(t *testing.T) {
	r, servers := dpopRig(t, nil)
	grand, key := boundChain(t, r.env)
	u := servers["net/http"]
	relayed, _ := key.Proof("GET", "http://api-a.example/std/orders", grand, "", r.env.Clock.Now())
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Host = "api-a.example"
	req.Header.Set("Authorization", "DPoP "+grand)
	req.Header.Set("DPoP", relayed)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "htu") {
		t.Errorf("a proof for another host, Host header forged: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	bare := newRigWith(t, dt.Options{}, nil)
	srv := httptest.NewServer(bare.v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	t.Cleanup(srv.Close)
	grand, key = boundChain(t, bare.env)
	p, _ := key.Proof("GET", srv.URL+"/orders", grand, "", bare.env.Clock.Now())
	if a := (dpopCall{scheme: "DPoP", token: grand, proofs: []string{p}}).do(t, srv.URL+"/orders"); a.status != 401 || !strings.Contains(a.authn, "no PublicURL") {
		t.Errorf("no PublicURL: %+v", a)
	}
	for _, bad := range []string{"orders.example", "https://orders.example/api", "ftp://x", "https://u:p@x"} {
		_, err := verifier.Discover(context.Background(), verifier.Config{Issuer: bare.env.URL, Audience: dbAudience, ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"), PublicURL: bad})
		if err == nil || !strings.Contains(err.Error(), "PublicURL") {
			t.Errorf("PublicURL %q: %v", bad, err)
		}
	}
}
