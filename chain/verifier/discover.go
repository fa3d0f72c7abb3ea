package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Discovery and JWKS documents larger than maxDocument are refused; a feed
// answer may be larger (a page of revocations), up to maxFeedAnswer.
const (
	maxDocument   = 1 << 20
	maxFeedAnswer = 16 << 20
)

// Discover returns a verifier that follows a running Mandate: it discovers
// the issuer's metadata (RFC 8414) and JWKS, syncs the revocation feed once,
// and starts following the feed in the background (Close stops it). It fails
// when discovery or the JWKS fail, and when the feed refuses the client's
// credentials (ErrFeedCredentials: waiting would not help); any other failed
// first sync is not fatal (Verify fails closed until a sync succeeds), so a
// resource server can start while Mandate is briefly away.
func Discover(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.checkNames(); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("verifier: Config needs a resource_server ClientID and ClientSecret for the revocation feed")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.JWKSRefreshInterval, 10*time.Second)
	setDefault(&cfg.JWKSMaxAge, 5*time.Minute)
	md, err := discover(ctx, cfg)
	if err != nil {
		return nil, err
	}
	keys := &remoteKeys{uri: md.JWKSURI, http: cfg.HTTPClient, now: cfg.Now,
		interval: cfg.JWKSRefreshInterval, maxAge: cfg.JWKSMaxAge}
	if err := keys.fetch(ctx); err != nil {
		return nil, err
	}
	keys.last = cfg.Now()
	feed := newFeed(cfg, md.Feed, keys.refreshStale)
	feed.onRevokedKeys = keys.revoke
	v, err := New(cfg, keys, feed)
	if err != nil {
		return nil, err
	}
	if err := feed.start(ctx); err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	return v, nil
}

type metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	Feed    string `json:"revocation_feed_endpoint"`
}

func discover(ctx context.Context, cfg Config) (*metadata, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("verifier: issuer %q is not a URL", cfg.Issuer)
	}
	// RFC 8414 §3.1: the well-known segment goes between host and path.
	u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	var md metadata
	if err := getJSON(ctx, cfg.HTTPClient, u.String(), nil, maxDocument, &md); err != nil {
		return nil, fmt.Errorf("verifier: discovery: %w", err)
	}
	switch {
	case md.Issuer != cfg.Issuer: // RFC 8414 §3.3
		return nil, fmt.Errorf("verifier: discovery: metadata names issuer %q, not %q", md.Issuer, cfg.Issuer)
	case md.JWKSURI == "":
		return nil, errors.New("verifier: discovery: metadata has no jwks_uri")
	case md.Feed == "":
		return nil, errors.New("verifier: discovery: the issuer offers no revocation_feed_endpoint")
	}
	return &md, nil
}

// remoteKeys is the issuer's JWKS, fetched from jwks_uri: refetched when a
// token names an unknown kid (at most once per interval, so forged kids
// cannot make it hammer Mandate) and when older than maxAge (so a withdrawn
// key stops verifying without a restart).
type remoteKeys struct {
	uri      string
	http     *http.Client
	now      func() time.Time
	interval time.Duration
	maxAge   time.Duration
	set      atomic.Pointer[tokens.SetResolver]
	withdrew atomic.Uint64   // fetches that dropped a key the previous set had
	revoked  map[string]bool // kids the feed named compromised: never trusted again (guarded by mu)
	mu       sync.Mutex
	last     time.Time // of the last fetch attempt (guarded by mu)
}

var _ tokens.KeyResolver = (*remoteKeys)(nil)
var (
	_ refresher  = (*remoteKeys)(nil)
	_ withdrawer = (*remoteKeys)(nil)
)

// Withdrawals counts the fetches that dropped a key: verifications cached
// before one are checked again.
func (k *remoteKeys) Withdrawals() uint64 { return k.withdrew.Load() }

// ResolveKey resolves kid in the latest fetched set.
func (k *remoteKeys) ResolveKey(kid string) (tokens.PublicKey, bool) {
	s := k.set.Load()
	if s == nil {
		return tokens.PublicKey{}, false
	}
	return s.ResolveKey(kid)
}

// Refresh refetches the JWKS after an unknown kid, at most once per
// interval, and reports whether it got a new set.
func (k *remoteKeys) Refresh(ctx context.Context) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if now.Sub(k.last) < k.interval {
		return false
	}
	k.last = now
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return k.fetch(ctx) == nil
}

// refreshStale refetches the JWKS once it is older than maxAge. A failed
// fetch keeps the current set and is retried after the next poll.
func (k *remoteKeys) refreshStale(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if now.Sub(k.last) < k.maxAge {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if k.fetch(ctx) == nil {
		k.last = now
	}
}

func (k *remoteKeys) fetch(ctx context.Context) error {
	var raw json.RawMessage
	if err := getJSON(ctx, k.http, k.uri, nil, maxDocument, &raw); err != nil {
		return fmt.Errorf("verifier: JWKS: %w", err)
	}
	s, err := tokens.NewSetResolver(raw)
	if err != nil {
		return fmt.Errorf("verifier: JWKS: %w", err)
	}
	if len(k.revoked) > 0 { // a stale JWKS (a cache on the way) must not bring one back
		s = s.Without(k.revoked)
	}
	if old := k.set.Swap(s); old != nil && old.Withdrawn(s) {
		k.withdrew.Add(1)
	}
	return nil
}

// revoke drops the keys the revocation feed names compromised, at once and
// for good: tokens they signed, cached or not, are refused from now on.
func (k *remoteKeys) revoke(kids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fresh := false
	for _, kid := range kids {
		if !k.revoked[kid] {
			if k.revoked == nil {
				k.revoked = map[string]bool{}
			}
			k.revoked[kid], fresh = true, true
		}
	}
	if !fresh {
		return
	}
	// The key that replaces it signs at once: the next unknown kid may
	// refetch the JWKS now, whatever the refresh interval.
	k.last = time.Time{}
	if cur := k.set.Load(); cur != nil {
		next := cur.Without(k.revoked)
		k.set.Store(next)
		if cur.Withdrawn(next) {
			k.withdrew.Add(1)
		}
	}
}

// basicAuth is a client's credentials for the feed.
type basicAuth struct{ id, secret string }

// getJSON GETs a document of at most limit bytes, with the credentials when
// auth is set (client_secret_basic, form-encoded as RFC 6749 §2.3.1 says).
// A request with credentials never follows a redirect (the 3xx is an
// error): following one would send them wherever the answer pointed.
func getJSON(ctx context.Context, client *http.Client, u string, auth *basicAuth, limit int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if auth != nil {
		req.SetBasicAuth(url.QueryEscape(auth.id), url.QueryEscape(auth.secret))
		noRedirects := *client
		noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		client = &noRedirects
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("%s: document larger than %d bytes", u, limit)
	}
	if auth != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("%w: %s: HTTP %d: %s", ErrFeedCredentials, u, resp.StatusCode, jwt.Excerpt(string(body)))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", u, resp.StatusCode, jwt.Excerpt(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}
