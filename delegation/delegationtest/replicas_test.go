package delegationtest_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
	"github.com/mandate-auth/mandate/tokens"
)

// replicas starts n servers through server.Start on one new database, as
// replicas "a", "b", … of one Mandate: one issuer, one clock, one KEK.
func replicas(t *testing.T, n int, opts dt.Options) []*dt.Env {
	t.Helper()
	rs, _ := replicasOn(t, pgtest.Need(t).NewDatabase(t), n, opts)
	return rs
}

// replicasOn is replicas on the database dsn, which it returns.
func replicasOn(t *testing.T, dsn string, n int, opts dt.Options) ([]*dt.Env, string) {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = dt.NewClock(dt.Start)
	}
	var out []*dt.Env
	for i := range n {
		env, _ := onPostgres(t, dsn, string(rune('a'+i)), opts)
		out = append(out, env)
	}
	return out, dsn
}

// eventually polls ok every 10 ms until it holds, failing the test after
// limit; it returns how long it took.
func eventually(t *testing.T, what string, limit time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReplicasServeOneFeed: a revocation through replica A wakes a long
// poll on replica B within milliseconds (B's store listens for A's
// notifications); and revocations made through both at once, read from B's
// feed by a follower that only ever moves its cursor forward, all arrive,
// each once: no gap.
func TestReplicasServeOneFeed(t *testing.T) {
	rs := replicas(t, 2, dt.Options{})
	a, b := rs[0], rs[1]
	if a.Keys.CurrentKeyID() != b.Keys.CurrentKeyID() {
		t.Fatal("the replicas sign with different keys")
	}

	cursor := b.Feed(t, "no-grants-rs", "", 0).String("cursor")
	var waits []time.Duration
	for range 20 {
		tok := a.Mint(t, "orchestrator", nil)
		polled := make(chan dt.Response, 1)
		go func() { polled <- b.Feed(t, "no-grants-rs", cursor, 20*time.Second) }()
		time.Sleep(20 * time.Millisecond) // the poll is waiting at B
		start := time.Now()
		a.Revoke(t, "orchestrator", tok)
		r := <-polled
		waits = append(waits, time.Since(start))
		if got := dt.FeedJTIs(t, r); !slices.Equal(got, []string{a.Claims(t, tok).ID}) {
			t.Fatalf("B's long poll after a revocation through A: %s", r.Raw)
		}
		cursor = r.String("cursor")
	}
	slices.Sort(waits)
	t.Logf("revoke through A answered → B's long poll answered: median %v, max %v (20 revocations)", waits[len(waits)/2], waits[len(waits)-1])
	if waits[len(waits)-1] > time.Second {
		t.Errorf("a long poll at B woke %v after the revocation through A", waits[len(waits)-1])
	}

	// Revocations through both replicas at once, a follower on B's feed.
	const each = 40
	var wg sync.WaitGroup
	revoked := make(chan string, 2*each)
	for _, env := range rs {
		wg.Go(func() {
			for range each {
				tok := env.Mint(t, "outsider", nil)
				env.Revoke(t, "outsider", tok)
				revoked <- env.Claims(t, tok).ID
			}
		})
	}
	seen := map[string]int{}
	for deadline := time.Now().Add(30 * time.Second); len(seen) < 2*each && time.Now().Before(deadline); {
		r := b.Feed(t, "no-grants-rs", cursor, 2*time.Second)
		if r.JSON["reset"] != false {
			t.Fatalf("the follower's cursor was reset: %s", r.Raw)
		}
		for _, jti := range dt.FeedJTIs(t, r) {
			seen[jti]++
		}
		cursor = r.String("cursor")
	}
	wg.Wait()
	close(revoked)
	for jti := range revoked {
		if seen[jti] != 1 {
			t.Errorf("revocation %s seen %d times by B's follower", jti, seen[jti])
		}
	}
	if len(seen) != 2*each {
		t.Errorf("the follower saw %d revocations, want %d", len(seen), 2*each)
	}
}

// TestReplicasShareReplayCaches: a DPoP proof or a private_key_jwt client
// assertion used at one replica is refused at another.
func TestReplicasShareReplayCaches(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := jwk.FromRaw(pub)
	_ = k.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	jwks, _ := json.Marshal(set)
	clients := append(dt.DefaultClients(), dt.Client{ID: "keyed", Grants: dt.Both, Scopes: []string{"db:read:*"},
		Audiences: []string{"https://db.example"}, JWKS: jwks})
	rs := replicas(t, 2, dt.Options{Clients: clients})
	a, b := rs[0], rs[1]

	// DPoP: one proof, sent to A, then to B.
	key, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	proof := a.Proof(t, key)
	mint := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	if r := a.PostDPoP(t, "token_endpoint", "orchestrator", mint, proof); r.Status != 200 || r.String("token_type") != "DPoP" {
		t.Fatalf("a DPoP mint at A: %d %s", r.Status, r.Raw)
	}
	for name, env := range map[string]*dt.Env{"B": b, "A again": a} {
		if r := env.PostDPoP(t, "token_endpoint", "orchestrator", mint, proof); r.Status != 400 || r.Error() != oauth.CodeInvalidDPoPProof || !strings.Contains(r.String("error_description"), "replayed") {
			t.Errorf("the proof replayed at %s: %d %s", name, r.Status, r.Raw)
		}
	}
	if r := b.PostDPoP(t, "token_endpoint", "orchestrator", mint, b.Proof(t, key)); r.Status != 200 {
		t.Errorf("a fresh proof at B: %d %s", r.Status, r.Raw)
	}

	// private_key_jwt: one assertion, used at A, then at B.
	now := a.Clock.Now()
	payload, _ := json.Marshal(map[string]any{"iss": "keyed", "sub": "keyed", "aud": a.URL, "jti": "assertion-1",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, "k1")
	signed, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA, priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {oauth.GrantClientCredentials},
		"client_assertion_type": {delegation.ClientAssertionType}, "client_assertion": {string(signed)}}
	if r := a.Post(t, "token_endpoint", "", form); r.Status != 200 {
		t.Fatalf("an assertion at A: %d %s", r.Status, r.Raw)
	}
	if r := b.Post(t, "token_endpoint", "", form); r.Status != 401 || r.Error() != oauth.CodeInvalidClient || !strings.Contains(r.String("error_description"), "already used (at another replica)") {
		t.Errorf("the assertion replayed at B: %d %s", r.Status, r.Raw)
	}
}

// TestReplicasShareSuspensions: an agent suspended for deviation through
// one replica gets no token from the others, at once.
func TestReplicasShareSuspensions(t *testing.T) {
	rs := replicas(t, 2, dt.Options{Deviation: delegation.Deviation{MaxDenials: 2, Window: time.Hour}})
	a, b := rs[0], rs[1]
	live := b.Mint(t, "researcher", nil)
	for range 2 { // widening: counted at A
		if r := a.Post(t, "token_endpoint", "researcher", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"db:write:x"}}); r.Status != 400 {
			t.Fatalf("widening: %d %s", r.Status, r.Raw)
		}
	}
	took := eventually(t, "the suspension through A enforced at B", 2*time.Second, func() bool {
		r := b.Post(t, "token_endpoint", "researcher", url.Values{"grant_type": {oauth.GrantClientCredentials}})
		return r.Status == 400 && strings.Contains(r.String("error_description"), "suspended")
	})
	t.Logf("suspended through A → refused at B after %v", took)
	if r := b.Introspect(t, "no-grants-rs", live); r.JSON["active"] != false {
		t.Errorf("a token the agent got from B before its suspension: %s", r.Raw)
	}
}

// TestReplicasShareKeys: the replicas sign with one key, stored sealed; a
// rotation through A is published by B at once and signs at both only once
// it activates; an emergency rotation through A withdraws the old key at B
// at once (B verifies nothing it signed, its feed names it, B signs with
// the new key).
func TestReplicasShareKeys(t *testing.T) {
	rs := replicas(t, 2, dt.Options{})
	a, b := rs[0], rs[1]
	old := a.Keys.CurrentKeyID()
	if b.Keys.CurrentKeyID() != old {
		t.Fatal("the replicas sign with different keys")
	}
	byOld := b.Mint(t, "orchestrator", nil)

	k, err := a.Svc.RotateKey(t.Context(), "ops", "", "scheduled")
	if err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "the rotated key in B's JWKS", 2*time.Second, func() bool {
		return strings.Contains(string(b.Get(t, b.Base+"/.well-known/jwks.json").Raw), k.ID)
	})
	t.Logf("rotated through A → published by B after %v", took)
	if b.Keys.CurrentKeyID() != old || kidOf(t, b.Mint(t, "orchestrator", nil)) != old {
		t.Error("B signs with the new key before it activates")
	}
	a.Clock.Advance(tokens.KeyActivationDelay + time.Second)
	for name, env := range map[string]*dt.Env{"A": a, "B": b} {
		if got := kidOf(t, env.Mint(t, "orchestrator", nil)); got != k.ID {
			t.Errorf("%s signs with %s after the activation, want %s", name, got, k.ID)
		}
	}
	byNew := a.Mint(t, "orchestrator", nil)
	for _, tok := range []string{byOld, byNew} {
		if r := b.Introspect(t, "no-grants-rs", tok); r.JSON["active"] != true {
			t.Errorf("a token of either key at B: %s", r.Raw)
		}
	}

	// Emergency: the key signing now is withdrawn through A.
	cursor := b.Feed(t, "no-grants-rs", "", 0).String("cursor")
	next, withdrawn, err := a.Svc.RotateCompromisedKey(t.Context(), "ops", "", "", "leaked")
	if err != nil || withdrawn != k.ID {
		t.Fatal(withdrawn, err)
	}
	took = eventually(t, "the withdrawn key refused at B", 2*time.Second, func() bool {
		return b.Introspect(t, "no-grants-rs", byNew).JSON["active"] == false
	})
	t.Logf("withdrawn through A → refused at B after %v", took)
	if r := b.Feed(t, "no-grants-rs", cursor, 0); !slices.Contains(anyStrings(r.JSON["revoked_keys"]), k.ID) {
		t.Errorf("B's feed does not name the withdrawn key: %s", r.Raw)
	}
	if got := kidOf(t, b.Mint(t, "orchestrator", nil)); got != next.ID {
		t.Errorf("B signs with %s after the emergency rotation, want %s", got, next.ID)
	}
	if r := b.Introspect(t, "no-grants-rs", byOld); r.JSON["active"] != true {
		t.Errorf("a token of the key retired in good order, at B: %s", r.Raw)
	}
	// At rest, every key in the database is sealed.
	stored, err := b.DB.SigningKeys(t.Context())
	if err != nil || len(stored) != 3 {
		t.Fatalf("%d keys stored: %v", len(stored), err)
	}
	for _, s := range stored {
		if !s.Sealed && !s.Destroyed() {
			t.Errorf("key %s rests in clear", s.ID)
		}
	}
}

// kidOf is the kid in a token's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		t.Fatalf("parse: %v", err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	sort.Strings(out)
	return out
}

// TestReplicasShareSingleUseAssertions: an ID-JAG, or a single-use
// workload token, redeemed at one replica is refused at another; a reusable
// platform token works at both.
func TestReplicasShareSingleUseAssertions(t *testing.T) {
	k8s, ci, idp := dt.NewPlatform(t, "https://k8s.example"), dt.NewPlatform(t, "https://ci.example"), dt.NewPlatform(t, "https://login.acme.example")
	clients := append(dt.DefaultClients(), dt.Client{ID: "portal", Grants: []string{delegation.GrantNameJWTBearer}, Scopes: []string{"db:read:*"}})
	rs := replicas(t, 2, dt.Options{Clients: clients, Issuer: "https://mandate.example", Configure: func(cfg *server.Config, write func(string, []byte) string) {
		rule := func(prefix string) []server.WorkloadRuleConfig {
			return []server.WorkloadRuleConfig{{Match: map[string]string{"sub": "system:serviceaccount:agents:*"}, Agent: prefix + "/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*"}}}
		}
		cfg.WorkloadIssuers = []server.WorkloadIssuerConfig{
			{Issuer: k8s.Issuer, KeySource: server.KeySource{JWKSFile: write("k8s.json", k8s.JWKS)}, Rules: rule("k8s")},
			{Issuer: ci.Issuer, SingleUse: true, KeySource: server.KeySource{JWKSFile: write("ci.json", ci.JWKS)}, Rules: rule("ci")},
		}
		cfg.IDJAGIssuers = []server.IDJAGIssuerConfig{{Issuer: idp.Issuer, KeySource: server.KeySource{JWKSFile: write("idp.json", idp.JWKS)}}}
	}})
	a, b := rs[0], rs[1]
	now := a.Clock.Now()
	grant := func(assertion string) url.Values {
		return url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {assertion}}
	}
	sa := k8s.ServiceAccountToken(t, a.URL, "agents", "researcher", "sa-1", now)
	for _, env := range []*dt.Env{a, b, a} {
		if r := env.Post(t, "token_endpoint", "", grant(sa)); r.Status != 200 {
			t.Fatalf("a reusable platform token: %d %s", r.Status, r.Raw)
		}
	}
	once := ci.ServiceAccountToken(t, a.URL, "agents", "builder", "ci-1", now)
	if r := a.Post(t, "token_endpoint", "", grant(once)); r.Status != 200 {
		t.Fatalf("a single-use token at A: %d %s", r.Status, r.Raw)
	}
	if r := b.Post(t, "token_endpoint", "", grant(once)); r.Status != 400 || r.Error() != oauth.CodeInvalidGrant || !strings.Contains(r.String("error_description"), "already used") {
		t.Errorf("the single-use token at B: %d %s", r.Status, r.Raw)
	}
	jag := idp.Sign(t, "oauth-id-jag+jwt", map[string]any{"iss": idp.Issuer, "sub": "alice@acme.example", "aud": a.URL,
		"client_id": "portal", "jti": "jag-1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	if r := b.Post(t, "token_endpoint", "portal", grant(jag)); r.Status != 200 {
		t.Fatalf("an ID-JAG at B: %d %s", r.Status, r.Raw)
	}
	if r := a.Post(t, "token_endpoint", "portal", grant(jag)); r.Status != 400 || r.Error() != oauth.CodeInvalidGrant || !strings.Contains(r.String("error_description"), "already used") {
		t.Errorf("the ID-JAG at A: %d %s", r.Status, r.Raw)
	}
}
