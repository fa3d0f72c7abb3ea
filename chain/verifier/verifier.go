// Package verifier is the resource-server side of Mandate: it verifies a
// presented token locally — signature against Mandate's published keys, then
// the chain rules of package chain (structure, scope grammar, issuer,
// audience, time), then revocation of the token and every ancestor — and
// answers with a *chain.Chain, or a typed error saying why not. Net/http
// middleware, DPoP (RFC 9449) and RFC 9728 protected-resource metadata sit on
// top; chain/echomw adapts the middleware to echo, and chain/authz adds
// per-call Cedar decisions for those who want them.
//
// Two constructors: Discover follows a running Mandate (RFC 8414 discovery,
// the JWKS refetched on an unknown kid at most every JWKSRefreshInterval, the
// revocation feed long-polled); New is offline, over any key set and any
// revocation source, so tests, tools and vectors need no server.
//
// Invariants: it never fetches a key a token names (jku, x5u, jwk); it fails
// closed (ErrStaleRevocations) when its revocation source cannot vouch for
// now; a cached verification is reused only while its key is still
// published, and revocation and expiry are checked on every use; a bound
// token is never accepted as a bearer token. It imports no server code, no
// storage and no Cedar.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Config configures a Verifier. Issuer and Audience are required; Discover
// also needs ClientID and ClientSecret. Every other field has a default.
type Config struct {
	// Issuer is Mandate's issuer URL: the iss every token must carry, and,
	// for Discover, where metadata is discovered (RFC 8414).
	Issuer string
	// Audience must be among a token's audiences: this resource server's identifier.
	Audience string
	// Leeway tolerated on exp, nbf and iat for clock skew (DefaultLeeway, at
	// most chain.MaxLeeway: Mandate keeps revocations in its feed that long
	// past expiry).
	Leeway time.Duration
	// MaxDepth bounds a token's lineage (default chain.MaxDepth, the most Mandate allows).
	MaxDepth int
	// CacheSize bounds the cache of verified tokens (default 10,000; negative
	// disables it), and CacheMaxBytes its memory (tokens.DefaultCacheBytes
	// when 0).
	CacheSize     int
	CacheMaxBytes int64
	// Realm and ResourceMetadataURL go into WWW-Authenticate challenges; the
	// latter (RFC 9728) tells clients where this resource's metadata is.
	Realm               string
	ResourceMetadataURL string
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

	// The rest is for Discover only.

	// ClientID and ClientSecret are a resource_server client's credentials,
	// used for the revocation feed.
	ClientID     string
	ClientSecret string
	// HTTPClient makes every request (default: a client with no overall
	// timeout; each request gets its own deadline).
	HTTPClient *http.Client
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
	// FeedWait is the long-poll wait asked of the feed (DefaultFeedWait; kept
	// between 1s and half of MaxStaleness, so a quiet poll never outlasts it).
	FeedWait time.Duration
	// FeedRetryMax caps the back-off between failed feed polls (default 5s).
	FeedRetryMax time.Duration
	// OnSync, when set, is called after every feed round trip with its error
	// (nil on success): for logs and metrics.
	OnSync func(error)
}

// Defaults of a Config, named because other limits depend on them
// (cmd/mandate/server's TestLimitsAgree).
const (
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat; at most
	// chain.MaxLeeway.
	DefaultLeeway = 5 * time.Second
	// DefaultMaxStaleness is how long a verifier trusts its revocation data
	// without a sync.
	DefaultMaxStaleness = 30 * time.Second
	// DefaultFeedWait is the long poll asked of the feed: at most half of
	// the staleness bound, so a quiet poll never lets the data go stale.
	DefaultFeedWait = 15 * time.Second
)

// RevocationSource is what a Verifier learns revocations from: a Feed
// following Mandate, or any set the caller keeps (a test, a vector runner).
type RevocationSource interface {
	// FirstRevoked returns the first of jtis known to be revoked.
	FirstRevoked(jtis []string) (string, bool)
	// Current returns nil when the source vouches for its data at now, and
	// an error wrapping ErrStaleRevocations when it cannot.
	Current(now time.Time) error
}

// refresher is a key set that can fetch newer keys (the remote JWKS): asked
// once when a token names a kid it does not know.
type refresher interface {
	Refresh(ctx context.Context) bool
}

// withdrawer is a key set that counts the times it withdrew a key (the
// remote JWKS): a cached verification made under an older count is checked
// again. For other key sets, a cached verification is reused only while its
// kid still resolves.
type withdrawer interface {
	Withdrawals() uint64
}

// Verifier checks Mandate tokens locally; see the package documentation. It
// is safe for concurrent use.
type Verifier struct {
	cfg     Config
	auds    []string // {cfg.Audience}, built once
	keys    tokens.KeyResolver
	wd      withdrawer // keys, when it counts withdrawals
	revs    RevocationSource
	feed    *Feed // nil unless made by Discover
	cache   *tokens.VerifiedCache[*verified]
	replay  *tokens.ReplayCache
	nonces  *nonceSource
	started time.Time // when the replay cache started remembering
}

// verified is a cache entry: the chain, the key that verified it (the entry
// is used only while that key is still published), and the jtis whose
// revocation cuts it off, computed once.
type verified struct {
	chain       *chain.Chain
	kid         string
	withdrawals uint64 // the key set's count when verified (withdrawer only)
	ancestry    []string
}

var _ RevocationSource = (*Feed)(nil)
var _ RevocationSource = (*RevocationSet)(nil)

// checkNames requires Issuer and Audience, and refuses Mandate's own issuer
// as the audience: tokens for that audience are identity tokens, which name
// their holder to Mandate and grant nothing anywhere else.
func (cfg *Config) checkNames() error {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return errors.New("verifier: Config needs Issuer and Audience")
	}
	if strings.TrimSuffix(cfg.Audience, "/") == strings.TrimSuffix(cfg.Issuer, "/") {
		return fmt.Errorf("verifier: Audience %q is Mandate's own issuer, the audience of identity tokens (which grant nothing): use this resource server's own identifier", cfg.Audience)
	}
	return nil
}

// New returns an offline verifier: tokens are verified against keys (a
// tokens.SetResolver over a JWKS document, say) and revocations come from
// revs. It does no I/O.
func New(cfg Config, keys tokens.KeyResolver, revs RevocationSource) (*Verifier, error) {
	if err := cfg.checkNames(); err != nil {
		return nil, err
	}
	if keys == nil || revs == nil {
		return nil, errors.New("verifier: a key set and a revocation source are required")
	}
	setDefault(&cfg.Leeway, DefaultLeeway)
	if cfg.Leeway > chain.MaxLeeway {
		return nil, fmt.Errorf("verifier: Leeway %s exceeds chain.MaxLeeway %s", cfg.Leeway, chain.MaxLeeway)
	}
	if cfg.MaxDepth <= 0 || cfg.MaxDepth > chain.MaxDepth {
		cfg.MaxDepth = chain.MaxDepth
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.DPoPMaxAge, 60*time.Second)
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("verifier: PublicURL %q must be a scheme and host, such as https://orders.example", cfg.PublicURL)
		}
		cfg.PublicURL = u.Scheme + "://" + u.Host
	}
	v := &Verifier{cfg: cfg, auds: []string{cfg.Audience}, keys: keys, revs: revs, cache: tokens.NewVerifiedCache[*verified](cfg.CacheSize, cfg.CacheMaxBytes),
		replay: tokens.NewReplayCache(cfg.DPoPReplayCacheSize), started: cfg.Now()}
	if f, ok := revs.(*Feed); ok {
		v.feed = f
	}
	v.wd, _ = keys.(withdrawer)
	if cfg.DPoPNonce {
		var err error
		if v.nonces, err = newNonceSource(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Close stops following the feed (for a verifier made by Discover) and waits
// for the follower to exit. A closed verifier soon refuses everything as stale.
func (v *Verifier) Close() {
	if v.feed != nil {
		v.feed.Close()
	}
}

// Feed is the revocation feed this verifier follows (nil for one made by New
// over another source).
func (v *Verifier) Feed() *Feed { return v.feed }

// Audience is the audience every token must carry: this resource server's
// identifier (Config.Audience).
func (v *Verifier) Audience() string { return v.cfg.Audience }

// Verify checks a bearer token and returns its chain, or an error wrapping
// one of the Err* sentinels of this package. A token bound to a key (DPoP) is
// refused here (ErrSenderConstrained): it is only accepted by VerifyDPoP,
// with a proof of that key. Repeated tokens are served from a cache of
// verified claims, but revocation, expiry and staleness are checked on every
// call.
func (v *Verifier) Verify(ctx context.Context, token string) (*chain.Chain, error) {
	c, err := v.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.JKT != "" {
		return nil, fmt.Errorf("%w: it can only be used with a proof of its key (DPoP)", ErrSenderConstrained)
	}
	return c, nil
}

// expect is what this verifier requires of a token's claims at now: the one
// claim check of package chain, with a resource server's expectations.
func (v *Verifier) expect(now time.Time) chain.Expect {
	return chain.Expect{Issuer: v.cfg.Issuer, Audiences: v.auds, Now: now,
		Leeway: v.cfg.Leeway, ExpiryLeeway: v.cfg.Leeway, MaxDepth: v.cfg.MaxDepth}
}

// verifyToken checks everything about a token but how it is presented.
func (v *Verifier) verifyToken(ctx context.Context, token string) (*chain.Chain, error) {
	now := v.cfg.Now()
	if err := v.revs.Current(now); err != nil {
		return nil, err
	}
	if e, ok := v.cache.Get(token, now); ok && v.stillPublished(e) {
		if err := (chain.Expect{Now: now, ExpiryLeeway: v.cfg.Leeway}).CheckExpiry(e.chain.Expiry); err != nil {
			return nil, err
		}
		if err := v.checkRevoked(e.chain, e.ancestry); err != nil {
			return nil, err
		}
		return e.chain, nil
	}
	var withdrawalsBefore uint64 // read before verifying: a withdrawal during it forces a check next time
	if v.wd != nil {
		withdrawalsBefore = v.wd.Withdrawals()
	}
	payload, hdr, err := tokens.Verify(token, v.keys, tokens.TypeAccessToken)
	if r, ok := v.keys.(refresher); ok && errors.Is(err, tokens.ErrUnknownKey) && r.Refresh(ctx) {
		payload, hdr, err = tokens.Verify(token, v.keys, tokens.TypeAccessToken)
	}
	if err != nil {
		switch {
		case errors.Is(err, tokens.ErrSignature), errors.Is(err, tokens.ErrAlgorithm), errors.Is(err, tokens.ErrUnknownKey):
			return nil, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
		default:
			return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
		}
	}
	claims, err := jwt.Parse(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
	c, err := v.expect(now).Check(claims)
	var ce *chain.ClaimError
	switch {
	case errors.As(err, &ce):
		return nil, err
	case err != nil: // the chain's structure or its scope
		return nil, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	ancestry := c.Ancestry()
	if err := v.checkRevoked(c, ancestry); err != nil {
		return nil, err
	}
	e := &verified{chain: c, kid: hdr.KeyID, ancestry: ancestry}
	if v.wd != nil {
		e.withdrawals = withdrawalsBefore
	}
	v.cache.Put(token, e, c.Expiry.Add(v.cfg.Leeway+time.Second), now)
	return c, nil
}

// stillPublished reports whether the key that verified a cached entry is
// still trusted: no withdrawal since (a counting key set), or its kid still
// resolves (any other).
func (v *Verifier) stillPublished(e *verified) bool {
	if v.wd != nil {
		return v.wd.Withdrawals() == e.withdrawals
	}
	_, ok := v.keys.ResolveKey(e.kid)
	return ok
}

// checkRevoked refuses a chain whose token or any ancestor (its ancestry)
// is revoked.
func (v *Verifier) checkRevoked(c *chain.Chain, ancestry []string) error {
	if jti, ok := v.revs.FirstRevoked(ancestry); ok {
		return &RevokedError{JTI: jti, Ancestor: jti != c.JTI}
	}
	return nil
}

// CacheStats is the size of the cache of verified tokens, in entries and
// bytes, for a resource server's metrics.
func (v *Verifier) CacheStats() (entries int, bytes int64) { return v.cache.Len(), v.cache.Bytes() }

// Revoked reports whether the verifier currently knows jti to be revoked.
func (v *Verifier) Revoked(jti string) bool {
	_, ok := v.revs.FirstRevoked([]string{jti})
	return ok
}
