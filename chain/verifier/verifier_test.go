package verifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/tokens"
)

const dbAudience = "https://db.example"

// network is the verifier's connection to Mandate: real TCP on loopback that a
// test can cut (closing every open connection and refusing new ones) and heal.
type network struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
	jwks  atomic.Int32 // JWKS fetches seen
}

func (n *network) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return nil, errors.New("network unreachable")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		n.conns = append(n.conns, c)
	}
	return c, err
}

func (n *network) set(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
	if down {
		for _, c := range n.conns {
			c.Close()
		}
		n.conns = nil
	}
}

type countJWKS struct {
	n    *network
	next http.RoundTripper
}

func (c countJWKS) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwks.json") {
		c.n.jwks.Add(1)
	}
	return c.next.RoundTrip(r)
}

// rig is a real Mandate server and a real Verifier following its feed.
type rig struct {
	env   *dt.Env
	v     *verifier.Verifier
	net   *network
	syncs chan error
	last  error // the latest sync result until() has seen
}

func newRig(t testing.TB, mutate func(*verifier.Config)) *rig {
	t.Helper()
	return newRigWith(t, dt.Options{}, mutate)
}

func newRigWith(t testing.TB, opts dt.Options, mutate func(*verifier.Config)) *rig {
	t.Helper()
	env := dt.New(t, opts)
	n := &network{}
	r := &rig{env: env, net: n, syncs: make(chan error, 1024)}
	cfg := verifier.Config{
		Issuer: env.URL, Audience: dbAudience,
		ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"),
		HTTPClient:   &http.Client{Transport: countJWKS{n, &http.Transport{DialContext: n.dial}}},
		Now:          env.Clock.Now,
		FeedRetryMax: 20 * time.Millisecond,
		Realm:        "db", ResourceMetadataURL: "https://db.example/.well-known/oauth-protected-resource",
		OnSync: func(err error) {
			select {
			case r.syncs <- err:
			default:
			}
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := verifier.Discover(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	r.v = v
	return r
}

// until waits for feed syncs until cond holds; the bound only guards a broken
// build from hanging.
func (r *rig) until(t testing.TB, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(bound)
	for !cond() {
		select {
		case r.last = <-r.syncs:
		case <-deadline:
			t.Fatalf("condition not reached within %s", bound)
		}
	}
}

func chainOf(t testing.TB, env *dt.Env) (root, child, grand string) {
	t.Helper()
	root = env.Mint(t, "orchestrator", nil)
	child = env.Delegate(t, "orchestrator", root, "researcher", url.Values{"scope": {"db:read:* tools:search"}})
	grand = env.Delegate(t, "researcher", child, "db-agent", url.Values{"scope": {"db:read:orders"}, "audience": {dbAudience}})
	return root, child, grand
}

func TestVerifyReturnsTheChain(t *testing.T) {
	r := newRig(t, nil)
	root, child, grand := chainOf(t, r.env)
	c, err := r.v.Verify(context.Background(), grand)
	if err != nil {
		t.Fatal(err)
	}
	rootID, childID := r.env.Claims(t, root).ID, r.env.Claims(t, child).ID
	want := &chain.Chain{
		JTI: r.env.Claims(t, grand).ID, Subject: "orchestrator", SubjectIssuer: r.env.URL, Holder: "db-agent",
		Actors: []string{"db-agent", "researcher"}, Lineage: []string{rootID, childID},
		Root: rootID, Depth: 2, Scopes: []string{"db:read:orders"}, Audiences: []string{dbAudience},
		IssuedAt: dt.Start, Expiry: dt.Start.Add(5 * time.Minute),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("chain\n got %+v\nwant %+v", c, want)
	}
	if !c.HasScope("db:read:orders") || c.HasScope("db:read:users") || !c.Covers("db:read:orders") || c.Covers("db:read:orders", "tools:search") {
		t.Error("HasScope/Covers wrong")
	}
	rc, err := r.v.Verify(context.Background(), root)
	if err != nil || rc.Depth != 0 || len(rc.Actors) != 0 || rc.Root != rc.JTI || !rc.HasScope("db:read:anything") {
		t.Errorf("root chain = %+v, %v", rc, err)
	}
	again, _ := r.v.Verify(context.Background(), grand)
	if again != c {
		t.Error("a repeated token was verified again instead of served from the cache")
	}
}

func TestRevocationReachesTheVerifierWithinASecond(t *testing.T) {
	r := newRig(t, nil)
	root, _, grand := chainOf(t, r.env)
	if _, err := r.v.Verify(context.Background(), grand); err != nil {
		t.Fatal(err) // now cached
	}
	resp := r.env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}})
	if resp.Status != 200 {
		t.Fatal(resp.Status)
	}
	rootID := r.env.Claims(t, root).ID
	r.until(t, time.Second, func() bool { return r.v.Revoked(rootID) })
	_, err := r.v.Verify(context.Background(), grand)
	var rev *verifier.RevokedError
	if !errors.Is(err, verifier.ErrRevoked) || !errors.As(err, &rev) || rev.JTI != rootID || !rev.Ancestor {
		t.Fatalf("grandchild of a revoked root: %v", err)
	}
}

func TestFailsClosedWhenTheFeedIsStaleAndRecovers(t *testing.T) {
	r := newRig(t, nil)
	_, _, grand := chainOf(t, r.env)
	if _, err := r.v.Verify(context.Background(), grand); err != nil {
		t.Fatal(err)
	}
	r.net.set(true) // Mandate unreachable
	// Wait until the follower has seen the feed fail, as it would in any
	// outage longer than the transport's own retry.
	r.until(t, 5*time.Second, func() bool { return r.last != nil })
	r.env.Clock.Advance(29 * time.Second)
	if _, err := r.v.Verify(context.Background(), grand); err != nil {
		t.Fatalf("within the staleness bound: %v", err)
	}
	r.env.Clock.Advance(2 * time.Second)
	_, err := r.v.Verify(context.Background(), grand)
	if !errors.Is(err, verifier.ErrStaleRevocations) || !strings.Contains(err.Error(), "last synced 31s ago (bound 30s)") {
		t.Fatalf("beyond the staleness bound: %v", err)
	}
	r.net.set(false)
	r.until(t, 5*time.Second, func() bool { return r.v.Feed().LastSync().Equal(r.env.Clock.Now()) })
	if _, err := r.v.Verify(context.Background(), grand); err != nil {
		t.Fatalf("after Mandate came back: %v", err)
	}
}

// TestNeverSyncedFailsClosed: a verifier whose first feed sync failed (the
// feed unreachable) starts, and refuses every token until a sync succeeds.
func TestNeverSyncedFailsClosed(t *testing.T) {
	env := dt.New(t, dt.Options{})
	v, err := verifier.Discover(context.Background(), verifier.Config{
		Issuer: env.URL, Audience: dbAudience, ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"), Now: env.Clock.Now,
		HTTPClient: &http.Client{Transport: noFeed{http.DefaultTransport}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, _, grand := chainOf(t, env)
	if _, err := v.Verify(context.Background(), grand); !errors.Is(err, verifier.ErrStaleRevocations) || !strings.Contains(err.Error(), "never") {
		t.Fatalf("verifier whose feed is unreachable: %v", err)
	}
}

// noFeed fails every request to the revocation feed, as a network partition
// between a resource server and Mandate's feed would.
type noFeed struct{ next http.RoundTripper }

func (n noFeed) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/revocations") {
		return nil, errors.New("feed unreachable")
	}
	return n.next.RoundTrip(r)
}

// TestWrongFeedCredentialsFailDiscover: credentials the feed refuses are a
// configuration error, not an outage: Discover fails with
// ErrFeedCredentials, naming the fix, for a wrong secret and for a client
// that is not a resource server alike.
func TestWrongFeedCredentialsFailDiscover(t *testing.T) {
	env := dt.New(t, dt.Options{})
	for name, creds := range map[string][2]string{
		"a wrong secret":                    {"no-grants-rs", "wrong"},
		"an agent, not a resource server":   {"orchestrator", dt.Secret("orchestrator")},
		"a client Mandate does not know of": {"nobody", "x"},
	} {
		_, err := verifier.Discover(context.Background(), verifier.Config{
			Issuer: env.URL, Audience: dbAudience, ClientID: creds[0], ClientSecret: creds[1], Now: env.Clock.Now,
		})
		if !errors.Is(err, verifier.ErrFeedCredentials) || !strings.Contains(err.Error(), "resource_server client") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKeyRotationIsPickedUpAndRefreshIsRateLimited(t *testing.T) {
	r := newRig(t, nil)
	old := r.env.Mint(t, "db-agent", nil)
	if _, err := r.v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if _, err := r.env.Keys.Rotate(context.Background(), r.env.DB, tokens.AlgEdDSA); err != nil {
		t.Fatal(err)
	}
	r.env.Clock.Advance(tokens.KeyActivationDelay)                // the new key signs from now on
	if err := r.v.Feed().Sync(context.Background()); err != nil { // keep the fake clock's feed fresh
		t.Fatal(err)
	}
	fresh := r.env.Mint(t, "db-agent", nil)
	fetches := r.net.jwks.Load()
	if _, err := r.v.Verify(context.Background(), fresh); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if r.net.jwks.Load() != fetches+1 {
		t.Errorf("JWKS fetched %d times for one new kid", r.net.jwks.Load()-fetches)
	}
	if _, err := r.v.Verify(context.Background(), old); err != nil {
		t.Fatalf("token of the old key after rotation: %v", err)
	}
	// A flood of unknown kids costs at most one fetch per interval.
	r.env.Clock.Advance(11 * time.Second)
	h, p, s := split(fresh)
	fetches = r.net.jwks.Load()
	for i := range 100 {
		forged := b64(`{"alg":"EdDSA","typ":"at+jwt","kid":"k`+strings.Repeat("x", i)+`"}`) + "." + p + "." + s
		if _, err := r.v.Verify(context.Background(), forged); !errors.Is(err, verifier.ErrInvalidSignature) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	_ = h
	if got := r.net.jwks.Load() - fetches; got != 1 {
		t.Errorf("100 unknown kids caused %d JWKS fetches, want 1", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	r := newRig(t, func(c *verifier.Config) { c.CacheSize = 8 })
	var toks []string
	for range 20 {
		toks = append(toks, r.env.Mint(t, "db-agent", nil))
	}
	for _, tok := range toks {
		if _, err := r.v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := verifier.CacheLen(r.v); n > 8 {
		t.Errorf("cache holds %d entries, bound 8", n)
	}
}

func TestDiscoveryChecksTheIssuer(t *testing.T) {
	env := dt.New(t, dt.Options{})
	_, err := verifier.Discover(context.Background(), verifier.Config{
		Issuer: env.URL + "/", Audience: dbAudience, ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"),
	})
	if err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("issuer mismatch: %v", err)
	}
	_, err = verifier.Discover(context.Background(), verifier.Config{Issuer: env.URL, Audience: dbAudience})
	if err == nil {
		t.Error("verifier without feed credentials")
	}
}

func split(tok string) (string, string, string) {
	p := strings.Split(tok, ".")
	return p[0], p[1], p[2]
}

// TestCatchesUpOverManyPages: a verifier that starts (or falls) far behind
// follows the feed's pages and counts as synced only once caught up.
func TestCatchesUpOverManyPages(t *testing.T) {
	env := dt.New(t, dt.Options{FeedPageSize: 3})
	var jtis []string
	for range 10 {
		tok := env.Mint(t, "orchestrator", nil)
		env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {tok}})
		jtis = append(jtis, env.Claims(t, tok).ID)
	}
	v, err := verifier.Discover(context.Background(), verifier.Config{
		Issuer: env.URL, Audience: dbAudience, ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"), Now: env.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, j := range jtis {
		if !v.Revoked(j) {
			t.Fatalf("first sync stopped after a page: %s unknown", j)
		}
	}
	if v.Feed().LastSync().IsZero() {
		t.Error("not synced after catching up")
	}
}

func TestLeewayIsBoundedByTheRevocationGrace(t *testing.T) {
	env := dt.New(t, dt.Options{})
	_, err := verifier.Discover(context.Background(), verifier.Config{
		Issuer: env.URL, Audience: dbAudience, ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"),
		Leeway: 2 * time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "MaxLeeway") {
		t.Errorf("leeway beyond the feed grace: %v", err)
	}
	if chain.MaxLeeway != chain.RevocationGrace {
		t.Errorf("chain.MaxLeeway %s != chain.RevocationGrace %s", chain.MaxLeeway, chain.RevocationGrace)
	}
}

// TestJWKSIsRefetchedWhenOld: the follower refetches the JWKS once it is
// older than JWKSMaxAge, so a key Mandate withdraws (rotation, issue 5) stops
// being trusted without a restart; a withdrawn kid also empties the cache.
func TestJWKSIsRefetchedWhenOld(t *testing.T) {
	r := newRig(t, nil)
	tok := r.env.Mint(t, "db-agent", nil)
	if _, err := r.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	fetches := r.net.jwks.Load()
	r.env.Clock.Advance(5*time.Minute + time.Second)
	// Any feed answer lets the follower notice the JWKS is old.
	r.env.Post(t, "revocation_endpoint", "db-agent", url.Values{"token": {r.env.Mint(t, "db-agent", nil)}})
	r.until(t, 5*time.Second, func() bool { return r.net.jwks.Load() > fetches })
}

// TestNoVerifierFailureAcrossRotation runs a verifier through a key
// rotation: every 5 s a token is minted, and every live token must verify at
// every step, before, during and after the new key's activation and the old
// key's retirement.
func TestNoVerifierFailureAcrossRotation(t *testing.T) {
	r := newRig(t, func(c *verifier.Config) { c.JWKSMaxAge = time.Minute })
	type minted struct {
		tok string
		exp time.Time
	}
	var live []minted
	ctx := context.Background()
	for step := 0; step < 400; step++ { // 2000 s: through activation and the old key leaving
		if step == 5 {
			// Make the verifier fetch the JWKS just before the rotation: a new key
			// that signed at once would then be unknown to it, and its refetch
			// rate-limited, for 10 s.
			h, p, s := split(r.env.Mint(t, "db-agent", nil))
			_ = h
			forged := b64(`{"alg":"EdDSA","typ":"at+jwt","kid":"unknown"}`) + "." + p + "." + s
			if _, err := r.v.Verify(ctx, forged); !errors.Is(err, verifier.ErrInvalidSignature) {
				t.Fatal(err)
			}
		}
		if step == 6 {
			if _, err := r.env.Keys.Rotate(ctx, r.env.DB, tokens.AlgEdDSA); err != nil {
				t.Fatal(err)
			}
		}
		tok := r.env.Mint(t, "db-agent", nil)
		live = append(live, minted{tok, r.env.Clock.Now().Add(15 * time.Minute)})
		if err := r.v.Feed().Sync(ctx); err != nil {
			t.Fatal(err)
		}
		kept := live[:0]
		for _, m := range live {
			if !r.env.Clock.Now().Before(m.exp) {
				continue
			}
			if _, err := r.v.Verify(ctx, m.tok); err != nil {
				t.Fatalf("step %d (%s after start): a live token was refused: %v", step, time.Duration(step)*5*time.Second, err)
			}
			kept = append(kept, m)
		}
		live = kept
		r.env.Clock.Advance(5 * time.Second)
	}
	var set struct{ Keys []any }
	_ = json.Unmarshal(r.env.Keys.JWKS(), &set)
	if len(set.Keys) != 1 {
		t.Errorf("the old key is still published after its tokens expired: %d keys", len(set.Keys))
	}
}
