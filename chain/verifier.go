package chain

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
)

// VerifierConfig configures a Verifier. Issuer, Audience, ClientID and
// ClientSecret are required; every other field has a default.
type VerifierConfig struct {
	// Issuer is Mandate's issuer URL; metadata is discovered from it (RFC 8414).
	Issuer string
	// Audience must be among a token's audiences: this resource server's identifier.
	Audience string
	// ClientID and ClientSecret are a resource_server client's credentials,
	// used for the revocation feed.
	ClientID     string
	ClientSecret string

	// HTTPClient makes every request (default: a client with no overall
	// timeout; each request gets its own deadline).
	HTTPClient *http.Client
	// Leeway tolerated on exp, nbf and iat for clock skew (default 5s, at most
	// MaxLeeway: Mandate keeps revocations in its feed that long past expiry).
	Leeway time.Duration
	// MaxDepth bounds a token's lineage (default 32, the most Mandate allows).
	MaxDepth int
	// MaxStaleness is how long the verifier keeps accepting tokens without a
	// successful feed sync; beyond it every Verify fails closed (default 30s).
	MaxStaleness time.Duration
	// JWKSRefreshInterval is the least time between two JWKS fetches caused by
	// an unknown kid (default 10s), so forged kids cannot make it hammer Mandate.
	JWKSRefreshInterval time.Duration
	// JWKSMaxAge is how long a fetched JWKS is used before the follower
	// refetches it anyway (default 5m), so a key Mandate withdraws stops being
	// trusted without a restart.
	JWKSMaxAge time.Duration
	// FeedWait is the long-poll wait asked of the feed (default 20s; kept
	// between 1s and half of MaxStaleness, so a quiet poll never outlasts it).
	FeedWait time.Duration
	// FeedRetryMax caps the back-off between failed feed polls (default 5s).
	FeedRetryMax time.Duration
	// CacheSize bounds the cache of verified tokens (default 10,000; negative
	// disables it).
	CacheSize int
	// Realm and ResourceMetadataURL go into WWW-Authenticate challenges; the
	// latter (RFC 9728) tells clients where this resource's metadata is.
	Realm               string
	ResourceMetadataURL string
	// Policy, when set, authorizes calls locally (Authorize, RequirePermission):
	// a *policy.Set, or a *policy.Engine that follows a policy directory.
	Policy CallAuthorizer
	// Groups, when set, names the groups of a holder, so call policies can
	// say principal in Group::"..." (Mandate's tokens do not carry groups).
	Groups func(holder string) []string
	// DPoPMaxAge bounds how old a DPoP proof may be (default 60 s).
	DPoPMaxAge time.Duration
	// DPoPReplayCacheSize bounds the proof jtis remembered against replay
	// (default 262,144); when full of live entries, new proofs are refused.
	DPoPReplayCacheSize int
	// DPoPNonce makes clients include a server nonce in their proofs (RFC
	// 9449 §9): a proof without the current one is answered 401
	// use_dpop_nonce with a fresh nonce in the DPoP-Nonce header.
	DPoPNonce bool
	// PublicURL is the scheme and host clients use to reach this resource
	// server ("https://orders.example"); a DPoP proof's htu must name it.
	// The middleware accepts DPoP-bound tokens only when it is set: the
	// request's Host header is the sender's to choose, so checking htu
	// against it would let a server that received a token and proof relay
	// them to another audience of the same token.
	PublicURL string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnSync, when set, is called after every feed round trip with its error
	// (nil on success): for logs and metrics.
	OnSync func(error)
}

// Verifier checks Mandate tokens locally: signature against the issuer's JWKS,
// issuer, audience, time, chain structure, and revocation of the token and all
// its ancestors, from a revocation set kept current by a long-polled feed. It
// refuses everything (ErrStaleRevocations) once the feed has not been synced
// within MaxStaleness. It is safe for concurrent use; Close stops its feed.
type Verifier struct {
	cfg      VerifierConfig
	jwksURI  string
	feedURL  string
	keys     atomic.Pointer[tokens.SetResolver]
	refresh  sync.Mutex
	lastJWKS time.Time // guarded by refresh

	mu        sync.RWMutex
	revoked   map[string]int64 // jti → exp (Unix seconds)
	cursor    string
	lastPrune time.Time                 // guarded by mu
	lastSync  atomic.Pointer[time.Time] // when the verifier last caught up with the feed; nil = never

	cache  *tokens.VerifiedCache[*Chain]
	replay *tokens.ReplayCache
	nonces *nonceSource
	cancel context.CancelFunc
	done   chan struct{}
}

// Discovery and JWKS documents larger than maxDocument are refused; a feed
// answer may be larger (a page of revocations), up to maxFeedAnswer.
const (
	maxDocument   = 1 << 20
	maxFeedAnswer = 16 << 20
)

// MaxLeeway is the most clock-skew leeway a Verifier accepts: Mandate keeps a
// revocation in its feed for a minute after the token expires, so a verifier
// with more leeway could accept a revoked token it never heard of.
const MaxLeeway = time.Minute

// NewVerifier discovers the issuer's metadata and JWKS, syncs the revocation
// feed once, and starts following the feed in the background. It fails when
// discovery or the JWKS fail; a failed first sync is not fatal (Verify fails
// closed until a sync succeeds), so a resource server can start while Mandate
// is briefly away.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("chain: VerifierConfig needs Issuer and Audience")
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("chain: VerifierConfig needs a resource_server ClientID and ClientSecret for the revocation feed")
	}
	setDefault(&cfg.Leeway, 5*time.Second)
	if cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("chain: Leeway %s exceeds MaxLeeway %s", cfg.Leeway, MaxLeeway)
	}
	setDefault(&cfg.MaxStaleness, 30*time.Second)
	setDefault(&cfg.JWKSRefreshInterval, 10*time.Second)
	setDefault(&cfg.JWKSMaxAge, 5*time.Minute)
	setDefault(&cfg.FeedWait, 20*time.Second)
	cfg.FeedWait = min(max(cfg.FeedWait, time.Second), cfg.MaxStaleness/2)
	setDefault(&cfg.FeedRetryMax, 5*time.Second)
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 32
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.DPoPMaxAge, 60*time.Second)
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("chain: PublicURL %q must be a scheme and host, such as https://orders.example", cfg.PublicURL)
		}
		cfg.PublicURL = u.Scheme + "://" + u.Host
	}
	v := &Verifier{cfg: cfg, revoked: map[string]int64{}, cache: tokens.NewVerifiedCache[*Chain](cfg.CacheSize), done: make(chan struct{}),
		replay: tokens.NewReplayCache(cfg.DPoPReplayCacheSize)}
	if cfg.DPoPNonce {
		var err error
		if v.nonces, err = newNonceSource(); err != nil {
			return nil, err
		}
	}
	if err := v.discover(ctx); err != nil {
		return nil, err
	}
	if err := v.fetchKeys(ctx); err != nil {
		return nil, err
	}
	v.lastJWKS = cfg.Now()
	err := v.Sync(ctx)
	if cfg.OnSync != nil {
		cfg.OnSync(err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	go v.follow(loopCtx)
	return v, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Close stops following the feed and waits for the follower to exit. A closed
// verifier soon refuses everything as stale.
func (v *Verifier) Close() {
	v.cancel()
	<-v.done
}

// Verify checks a bearer token and returns its chain, or an error wrapping
// one of the Err* sentinels of this package. A token bound to a key (DPoP) is
// refused here (ErrSenderConstrained): it is only accepted by VerifyDPoP,
// with a proof of that key. Repeated tokens are served from a cache of
// verified claims, but revocation and staleness are checked on every call.
func (v *Verifier) Verify(ctx context.Context, token string) (*Chain, error) {
	c, err := v.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.JKT != "" {
		return nil, fmt.Errorf("%w: it can only be used with a proof of its key (DPoP)", ErrSenderConstrained)
	}
	return c, nil
}

// verifyToken checks everything about a token but how it is presented.
func (v *Verifier) verifyToken(ctx context.Context, token string) (*Chain, error) {
	now := v.cfg.Now()
	if err := v.fresh(now); err != nil {
		return nil, err
	}
	if c, ok := v.cache.Get(token, now); ok {
		if err := v.checkLive(c, now); err != nil {
			return nil, err
		}
		return c, nil
	}
	payload, _, err := tokens.Verify(token, v.resolver(), tokens.TypeAccessToken)
	if errors.Is(err, tokens.ErrUnknownKey) && v.refreshKeys(ctx, now) {
		payload, _, err = tokens.Verify(token, v.resolver(), tokens.TypeAccessToken)
	}
	if err != nil {
		switch {
		case errors.Is(err, tokens.ErrSignature), errors.Is(err, tokens.ErrAlgorithm), errors.Is(err, tokens.ErrUnknownKey):
			return nil, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
		default:
			return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
		}
	}
	claims, err := tokens.ParseClaims(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
	if claims.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("%w: iss %q", ErrWrongIssuer, printable(claims.Issuer))
	}
	if !claims.Audience.Contains(v.cfg.Audience) {
		return nil, fmt.Errorf("%w: aud does not include %q", ErrWrongAudience, v.cfg.Audience)
	}
	if err := CheckStructure(claims, v.cfg.MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	scopes, err := ParseScope(claims.Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	leeway := int64(v.cfg.Leeway / time.Second)
	if claims.NotBefore > now.Unix()+leeway || claims.IssuedAt > now.Unix()+leeway {
		return nil, ErrNotYetValid
	}
	c := newChain(claims, scopes)
	if err := v.checkLive(c, now); err != nil {
		return nil, err
	}
	v.cache.Put(token, c, c.Expiry.Add(v.cfg.Leeway+time.Second), now)
	return c, nil
}

// fresh fails closed when the revocation set is older than MaxStaleness. The
// times keep their monotonic reading (with the default clock), so a step of
// the wall clock cannot stretch the bound.
func (v *Verifier) fresh(now time.Time) error {
	last := v.lastSync.Load()
	if last == nil {
		return fmt.Errorf("%w: the revocation feed has never been synced", ErrStaleRevocations)
	}
	if age := now.Sub(*last); age > v.cfg.MaxStaleness {
		return fmt.Errorf("%w: last synced %s ago (bound %s)", ErrStaleRevocations, age.Round(time.Second), v.cfg.MaxStaleness)
	}
	return nil
}

// checkLive applies the checks that change with time: expiry and revocation.
func (v *Verifier) checkLive(c *Chain, now time.Time) error {
	if !now.Before(c.Expiry.Add(v.cfg.Leeway)) {
		return ErrExpired
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	if _, ok := v.revoked[c.JTI]; ok {
		return &RevokedError{JTI: c.JTI}
	}
	for _, j := range c.Lineage {
		if _, ok := v.revoked[j]; ok {
			return &RevokedError{JTI: j, Ancestor: true}
		}
	}
	return nil
}

// Revoked reports whether the verifier currently knows jti to be revoked.
func (v *Verifier) Revoked(jti string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, ok := v.revoked[jti]
	return ok
}

// LastSync is when the verifier last caught up with the revocation feed (zero
// if never).
func (v *Verifier) LastSync() time.Time {
	if t := v.lastSync.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// --- discovery and keys ---

func (v *Verifier) discover(ctx context.Context) error {
	u, err := url.Parse(v.cfg.Issuer)
	if err != nil || u.Host == "" {
		return fmt.Errorf("chain: issuer %q is not a URL", v.cfg.Issuer)
	}
	// RFC 8414 §3.1: the well-known segment goes between host and path.
	u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
		Feed    string `json:"revocation_feed_endpoint"`
	}
	if err := v.getJSON(ctx, u.String(), false, maxDocument, &md); err != nil {
		return fmt.Errorf("chain: discovery: %w", err)
	}
	switch {
	case md.Issuer != v.cfg.Issuer: // RFC 8414 §3.3
		return fmt.Errorf("chain: discovery: metadata names issuer %q, not %q", md.Issuer, v.cfg.Issuer)
	case md.JWKSURI == "":
		return errors.New("chain: discovery: metadata has no jwks_uri")
	case md.Feed == "":
		return errors.New("chain: discovery: the issuer offers no revocation_feed_endpoint")
	}
	v.jwksURI, v.feedURL = md.JWKSURI, md.Feed
	return nil
}

func (v *Verifier) fetchKeys(ctx context.Context) error {
	var raw json.RawMessage
	if err := v.getJSON(ctx, v.jwksURI, false, maxDocument, &raw); err != nil {
		return fmt.Errorf("chain: JWKS: %w", err)
	}
	r, err := tokens.NewSetResolver(raw)
	if err != nil {
		return fmt.Errorf("chain: JWKS: %w", err)
	}
	if old := v.keys.Swap(r); old != nil && old.Withdrawn(r) {
		v.cache.Clear() // cached chains may have been signed by the withdrawn key
	}
	return nil
}

func (v *Verifier) resolver() tokens.KeyResolver { return v.keys.Load() }

// refreshKeys refetches the JWKS after an unknown kid, at most once per
// JWKSRefreshInterval, and reports whether it got a new set.
func (v *Verifier) refreshKeys(ctx context.Context, now time.Time) bool {
	v.refresh.Lock()
	defer v.refresh.Unlock()
	if now.Sub(v.lastJWKS) < v.cfg.JWKSRefreshInterval {
		return false
	}
	v.lastJWKS = now
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return v.fetchKeys(ctx) == nil
}

// refreshStaleKeys refetches the JWKS once it is older than JWKSMaxAge. A
// failed fetch keeps the current set and is retried after the next poll.
func (v *Verifier) refreshStaleKeys(ctx context.Context) {
	v.refresh.Lock()
	defer v.refresh.Unlock()
	now := v.cfg.Now()
	if now.Sub(v.lastJWKS) < v.cfg.JWKSMaxAge {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v.fetchKeys(ctx) == nil {
		v.lastJWKS = now
	}
}

// getJSON GETs a document of at most limit bytes, with the feed credentials
// when auth is set.
func (v *Verifier) getJSON(ctx context.Context, u string, auth bool, limit int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if auth {
		req.SetBasicAuth(url.QueryEscape(v.cfg.ClientID), url.QueryEscape(v.cfg.ClientSecret))
	}
	resp, err := v.cfg.HTTPClient.Do(req)
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
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", u, resp.StatusCode, printable(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// --- the revocation feed ---

// Sync polls the feed without waiting, page after page until caught up, and
// applies what it returns.
func (v *Verifier) Sync(ctx context.Context) error {
	for {
		more, _, err := v.poll(ctx, 0)
		if err != nil || !more {
			return err
		}
	}
}

// follow long-polls the feed until ctx ends, backing off after failures.
// After a failure, or while catching up on pages, the next poll does not
// wait, so a verifier that went stale is fresh again as soon as Mandate
// answers. A quiet answer that came back at once (a proxy that ignores wait)
// is followed by a short pause, never a busy loop.
func (v *Verifier) follow(ctx context.Context) {
	defer close(v.done)
	const retryMin, minInterval = 50 * time.Millisecond, 100 * time.Millisecond
	backoff := retryMin
	var (
		err     error
		more    bool
		entries int
	)
	for {
		wait := v.cfg.FeedWait
		if err != nil || more || v.lastSync.Load() == nil {
			wait = 0
		}
		started := time.Now()
		more, entries, err = v.poll(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		v.refreshStaleKeys(ctx) // before OnSync, so a reported sync includes it
		if v.cfg.OnSync != nil && !more {
			v.cfg.OnSync(err)
		}
		pause := time.Duration(0)
		switch {
		case err != nil:
			pause, backoff = backoff, min(2*backoff, v.cfg.FeedRetryMax)
		case wait > 0 && entries == 0 && time.Since(started) < minInterval:
			pause, backoff = minInterval-time.Since(started), retryMin
		default:
			backoff = retryMin
		}
		if pause > 0 && !sleep(ctx, pause) {
			return
		}
	}
}

// sleep waits for d or until ctx ends, reporting whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type feedAnswer struct {
	Revocations []struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	} `json:"revocations"`
	Cursor string `json:"cursor"`
	Reset  bool   `json:"reset"`
	More   bool   `json:"more"`
}

// poll asks the feed once and applies the answer; more says another page is
// waiting, entries how many revocations the answer carried.
func (v *Verifier) poll(ctx context.Context, wait time.Duration) (more bool, entries int, err error) {
	v.mu.RLock()
	cursor := v.cursor
	v.mu.RUnlock()
	q := url.Values{}
	if cursor != "" {
		q.Set("since", cursor)
	}
	if wait > 0 {
		q.Set("wait", fmt.Sprint(int(wait/time.Second)))
	}
	ctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()
	var a feedAnswer
	if err := v.getJSON(ctx, v.feedURL+"?"+q.Encode(), true, maxFeedAnswer, &a); err != nil {
		return false, 0, fmt.Errorf("revocation feed: %w", err)
	}
	if a.Cursor == "" {
		return false, 0, errors.New("revocation feed: answer without a cursor")
	}
	v.apply(cursor, &a, v.cfg.Now())
	return a.More, len(a.Revocations), nil
}

// apply merges a feed answer fetched from cursor into the revoked set. It
// only ever adds: a reset (the server could not serve the cursor, say after a
// restore from backup) does not make the verifier forget a revocation, since
// revocations are permanent. If another poll (a Sync beside the follower)
// applied first, this answer may be older than what it applied, so it is
// dropped: the next poll, from the newer cursor, brings anything this one
// had. The verifier counts as synced only once it has caught up (no More).
// Entries past exp+leeway, whose tokens are refused anyway, are pruned every
// half minute.
func (v *Verifier) apply(cursor string, a *feedAnswer, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cursor != cursor {
		return
	}
	for _, r := range a.Revocations {
		v.revoked[r.JTI] = r.Exp
	}
	if now.Sub(v.lastPrune) > 30*time.Second {
		for jti, exp := range v.revoked {
			if exp+int64(v.cfg.Leeway/time.Second) < now.Unix() {
				delete(v.revoked, jti)
			}
		}
		v.lastPrune = now
	}
	v.cursor = a.Cursor
	if !a.More {
		v.lastSync.Store(&now)
	}
}
