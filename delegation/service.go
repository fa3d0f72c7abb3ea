package delegation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Keys signs new tokens and verifies Mandate's own.
type Keys interface {
	tokens.KeyResolver
	Sign(c *jwt.Claims) (string, error)
	Verify(token string) (*jwt.Claims, error)
}

// Store is what the core persists through: any backend that passes the
// store conformance suite (store/storetest). The composition root
// (cmd/mandate/server) asserts that store/bolt satisfies it.
type Store interface {
	store.Tokens
	store.Revocations
	store.RevocationLog
	store.Audit
	store.Suspensions
}

// PolicyEngine decides whether a token request is allowed at all; policy.AllowAll
// permits everything the attenuation rules permit.
type PolicyEngine interface {
	Decide(ctx context.Context, r policy.Request) (policy.Decision, error)
}

var (
	_ Keys         = (*tokens.KeyRing)(nil)
	_ KeyAdmin     = (*tokens.KeyRing)(nil)
	_ PolicyEngine = (*policy.Engine)(nil)
	_ PolicyEngine = (*policy.Set)(nil)
	_ PolicyEngine = policy.AllowAll{}
)

// TrustedIssuer is an external identity provider whose JWTs may be exchanged for
// root tokens on behalf of their subject.
type TrustedIssuer struct {
	// Issuer is the exact "iss" of its tokens.
	Issuer string
	// Audience must appear in the external token's "aud" (default: Mandate's issuer).
	Audience string
	// Keys resolves its signing keys (from its JWKS).
	Keys tokens.KeyResolver
}

// Config is the service's configuration; every field but Policy, Logger and Now
// is required.
type Config struct {
	Issuer         string
	RootTTL        time.Duration
	DelegatedTTL   time.Duration
	MaxDepth       int
	Clients        []Registration
	TrustedIssuers []TrustedIssuer
	// WorkloadIssuers are the platforms whose tokens authenticate the
	// workloads they name (the JWT bearer grant, client assertions);
	// IDJAGIssuers the enterprise IdPs whose ID-JAGs a client may redeem
	// for a root on behalf of a user (docs/workload-identity.md).
	WorkloadIssuers []workload.Issuer
	IDJAGIssuers    []workload.IDJAGIssuer
	Policy          PolicyEngine
	Logger          *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// FeedPageSize bounds one revocation-feed answer (DefaultFeedPageSize when 0).
	FeedPageSize int
	// ProofsPerClient bounds each client's share of the token endpoint's
	// DPoP replay cache (DefaultProofsPerClient when 0): a client filling
	// its share refuses only its own proofs.
	ProofsPerClient int
	// Deviation, when MaxDenials > 0, suspends and revokes agents that keep
	// being refused.
	Deviation Deviation
	// KeyStore is where rotated signing keys are stored: the store itself
	// when nil, or a tokens.SealedKeyStore over it to keep them encrypted.
	KeyStore tokens.KeyStore
	// CacheMaxBytes bounds the memory of the cache of tokens verified at the
	// token endpoint (tokens.DefaultCacheBytes when 0).
	CacheMaxBytes int64
}

// Service is the delegation core. It is safe for concurrent use.
type Service struct {
	issuer       string
	rootTTL      time.Duration
	delegatedTTL time.Duration
	maxDepth     int
	clients      map[string]*Registration
	trusted      map[string]*TrustedIssuer
	// workload identity (workload_identity.go): issuers by iss and by
	// SPIFFE trust domain, the rules that generate names, ID-JAG issuers.
	workloadByIss map[string]*workload.Issuer
	workloadByTD  map[string]*workload.Issuer
	agentRules    []agentRule
	idjag         map[string]*workload.IDJAGIssuer
	keys          Keys
	keyStore      tokens.KeyStore // nil: the store, if it is one
	store         Store
	policy        PolicyEngine
	log           *slog.Logger
	now           func() time.Time
	dummy         Secret
	authCache     authCache // recent successful secret checks
	revLog        store.RevocationLog
	replays       store.Replays           // nil: the store is one process's; memory serves
	once          store.SingleUse         // nil: memory, with the restart rule (workload_identity.go)
	grants        map[string]GrantHandler // by grant_type: grantRegistry
	feedPage      int
	proofShare    int // ProofsPerClient
	dev           *deviations
	proofs        map[string]*tokens.ReplayCache // per client: DPoP proof jtis seen at the token endpoint
	started       time.Time                      // when this process started: no proof or assertion made before is taken
	assertions    map[string]*tokens.ReplayCache // per client: private_key_jwt assertion jtis, until their exp
	assertionsMu  sync.Mutex
	verified      *tokens.VerifiedCache[*presented]       // tokens presented before: signature, structure and record checked
	workloadSeen  *tokens.VerifiedCache[verifiedWorkload] // platform tokens verified before, until they expire
	feedWaiters   atomic.Int64                            // revocation-feed long polls open now
	revoked       broadcast                               // wakes feed long polls
	refused       refusals                                // repeated refusals, counted
	revSlots      chan struct{}                           // MaxConcurrentRevocations
	keyEpoch      atomic.Int64                            // emergency rotations so far: wakes feed long polls
	closing       chan struct{}                           // closed by Close
	closeOnce     sync.Once
}

// VerifiedCacheSize bounds the tokens the token endpoint remembers as
// verified (a subject or actor token presented again skips its signature).
const VerifiedCacheSize = 10000

// New validates cfg and returns a Service over keys and st.
func New(cfg Config, keys Keys, st Store) (*Service, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("issuer is required")
	}
	if cfg.RootTTL <= 0 || cfg.DelegatedTTL <= 0 {
		return nil, errors.New("root_ttl and delegated_ttl must be positive")
	}
	if cfg.MaxDepth < 1 {
		return nil, errors.New("max_depth must be at least 1")
	}
	if cfg.Deviation.MaxDenials > 0 && cfg.Deviation.Window <= 0 {
		return nil, errors.New("deviation.window must be positive when deviation.max_denials is set")
	}
	for _, k := range cfg.Deviation.Count {
		if !slices.Contains(DeviationKinds, k) {
			return nil, fmt.Errorf("deviation.count: %q is not a kind of refusal (use %s)", k, strings.Join(DeviationKinds, ", "))
		}
	}
	if keys == nil || st == nil {
		return nil, errors.New("keys and store are required")
	}
	clients, err := validateClients(cfg.Clients, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		issuer:       cfg.Issuer,
		rootTTL:      cfg.RootTTL,
		delegatedTTL: cfg.DelegatedTTL,
		maxDepth:     cfg.MaxDepth,
		clients:      clients,
		trusted:      map[string]*TrustedIssuer{},
		keys:         keys,
		keyStore:     cfg.KeyStore,
		store:        st,
		policy:       cfg.Policy,
		log:          cfg.Logger,
		now:          cfg.Now,
		revLog:       st,
		feedPage:     cfg.FeedPageSize,
		proofShare:   cfg.ProofsPerClient,
		dev:          newDeviations(cfg.Deviation),
		proofs:       map[string]*tokens.ReplayCache{},
		assertions:   map[string]*tokens.ReplayCache{},
		verified:     tokens.NewVerifiedCache[*presented](VerifiedCacheSize, cfg.CacheMaxBytes),
		workloadSeen: tokens.NewVerifiedCache[verifiedWorkload](VerifiedCacheSize, cfg.CacheMaxBytes),
		closing:      make(chan struct{}),
		revSlots:     make(chan struct{}, MaxConcurrentRevocations),
	}
	for i := range cfg.TrustedIssuers {
		ti := cfg.TrustedIssuers[i]
		if ti.Issuer == "" || ti.Keys == nil {
			return nil, fmt.Errorf("trusted_issuers[%d]: issuer and keys are required", i)
		}
		if ti.Issuer == cfg.Issuer {
			return nil, fmt.Errorf("trusted_issuers[%d]: %q is Mandate's own issuer", i, ti.Issuer)
		}
		if _, dup := s.trusted[ti.Issuer]; dup {
			return nil, fmt.Errorf("trusted_issuers[%d]: %q listed twice", i, ti.Issuer)
		}
		if ti.Audience == "" {
			ti.Audience = cfg.Issuer
		}
		s.trusted[ti.Issuer] = &ti
	}
	if err := s.setupWorkload(cfg); err != nil {
		return nil, err
	}
	// A store other processes share remembers single-use values for all
	// of them (assertion.go, grant.go).
	s.replays, _ = st.(store.Replays)
	s.once, _ = st.(store.SingleUse)
	s.grants = make(map[string]GrantHandler, len(grantRegistry))
	for _, g := range grantRegistry {
		s.grants[g.GrantType()] = g.bind(s)
	}
	if s.policy == nil {
		s.policy = policy.AllowAll{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	// Suspensions outlive a restart: a suspended agent is not let go by one.
	if err := s.SyncSuspensions(context.Background()); err != nil {
		return nil, err
	}
	s.started = s.now()
	if s.proofShare <= 0 {
		s.proofShare = DefaultProofsPerClient
	}
	if s.feedPage <= 0 {
		s.feedPage = DefaultFeedPageSize
	}
	s.dummy = newDummySecret(clients)
	return s, nil
}

// CheckConfig reports the problems New would find in cfg's registrations
// and issuers, without keys or a store, so a configuration check refuses
// what serve would.
func CheckConfig(cfg Config) error {
	clients, err := validateClients(cfg.Clients, cfg.Issuer)
	if err != nil {
		return err
	}
	s := &Service{clients: clients}
	return s.setupWorkload(cfg)
}

// Issuer is the "iss" of every token this service mints.
func (s *Service) Issuer() string { return s.issuer }

// jtiEncoding is base64 over 64 unreserved URL characters in ASCII order, so
// encoded jtis sort as their bytes do; it has no '-' or '.', so a jti never
// looks like a command-line flag or a JWS.
var jtiEncoding = base64.NewEncoding("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~").WithPadding(base64.NoPadding)

// newJTI returns 48 bits of milliseconds then 128 random bits (30 URL-safe
// characters): unique and unguessable as docs/design.md requires, and sorted by
// issuance, so the token store appends to its last pages instead of
// dirtying a random page of its B+tree per token (fewer pages written per
// group commit).
func newJTI(now time.Time) (string, error) {
	var b [22]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("random jti: %w", err)
	}
	return jtiEncoding.EncodeToString(b[:]), nil
}

// issue signs c, commits its record, and builds the response. The record is
// durable before the token leaves this function, and the store refuses it
// when an ancestor is revoked by then (store.ErrAncestorRevoked). If the requesting client was
// suspended while its request was in flight (after the deviation revoked what
// it held), the new token is revoked at once and refused.
//
// fromKids are the keys that signed the tokens the new one derives from:
// when one of them was withdrawn while the request was in flight (an
// emergency rotation), the new token is refused rather than signed with the
// new key on the word of the withdrawn one.
func (s *Service) issue(ctx context.Context, requester *Registration, c *jwt.Claims, grant string, issuedType string, policies []string, fromKids ...string) (*TokenResponse, error) {
	return s.issueFrom(ctx, requester, c, grant, issuedType, policies, nil, fromKids...)
}

// issueFrom is issue for a root an assertion started (the JWT bearer
// grant): origin names it in the audit record.
func (s *Service) issueFrom(ctx context.Context, requester *Registration, c *jwt.Claims, grant string, issuedType string, policies []string, origin *store.AssertionRef, fromKids ...string) (*TokenResponse, error) {
	jti, err := newJTI(s.now())
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeServerError, "could not issue a token")
	}
	c.ID = jti
	signed, err := s.keys.Sign(c)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeServerError, "could not issue a token")
	}
	for _, kid := range fromKids {
		if _, ok := s.keys.ResolveKey(kid); !ok {
			return nil, oauth.New(oauth.CodeInvalidRequest, "the key that signed subject_token was withdrawn (an emergency rotation): obtain a new token")
		}
	}
	if len(signed) > tokens.MaxTokenSize {
		// No verifier accepts it (chain's limits): refuse before anything is
		// stored, rather than record a token nobody can use.
		return nil, oauth.New(oauth.CodeInvalidRequest, "the token would be %d bytes, more than the %d any verifier accepts: ask for fewer scopes or audiences", len(signed), tokens.MaxTokenSize)
	}
	rec := &store.TokenRecord{
		JTI:       c.ID,
		Lineage:   c.Lineage,
		Subject:   c.Subject,
		SubIss:    c.SubjectIssuer,
		Holder:    c.ClientID,
		Act:       c.Act,
		Scope:     c.Scope,
		Audience:  c.Audience,
		IssuedAt:  c.IssuedAt.Time(),
		ExpiresAt: c.Expiry.Time(),
	}
	if n := len(c.Lineage); n > 0 {
		rec.Parent = c.Lineage[n-1]
	}
	rec.JKT = c.JKT()
	ev := &store.AuditEvent{Time: s.now(), Type: store.AuditIssued, Client: requester.ID, Grant: grant,
		JTI: c.ID, Holder: c.ClientID, Subject: c.Subject, Scope: c.Scope, Root: c.Root(), Depth: c.Depth(), Policies: policies,
		Assertion: origin}
	if err := s.store.PutToken(ctx, rec, ev); errors.Is(err, store.ErrAncestorRevoked) {
		// The parent, or an ancestor, was revoked while this request was
		// decided (through any replica): the store refused the child in
		// the same step as it checked, so it was never recorded, nor is
		// it issued.
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token was revoked, or a token it descends from, while the exchange was decided")
	} else if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeServerError, "could not record the token")
	}
	if until, suspended := s.dev.suspendedUntil(requester.ID, s.now()); suspended {
		if _, err := s.recordRevocation(ctx, c.ID, rec.ExpiresAt, "issued while its requester was suspended", "mandate/deviation"); err != nil {
			return nil, err
		}
		return nil, errSuspended(requester, until)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "token issued",
		slog.String("grant", grant), slog.String("jti", c.ID), slog.String("root", c.Root()),
		slog.String("holder", c.ClientID), slog.String("sub", c.Subject), slog.Int("depth", c.Depth()),
		slog.String("scope", c.Scope))
	return &TokenResponse{
		AccessToken:     signed,
		IssuedTokenType: issuedType,
		TokenType:       tokenTypeOf(c), // RFC 9449 §5
		ExpiresIn:       int64(c.Expiry) - s.now().Unix(),
		Scope:           c.Scope,
	}, nil
}

// decide runs the policy engine; a denial or an evaluation error refuses the
// request with invalid_request (RFC 8693 §2.2.2), fail closed, and the
// description names the determining policy. Every decision is logged with its
// policies (denials at info, permits at debug).
func (s *Service) decide(ctx context.Context, r policy.Request) ([]string, error) {
	d, err := s.policy.Decide(ctx, r)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "policy evaluation failed, so the request is denied")
	}
	lvl := slog.LevelDebug
	if !d.Allow {
		lvl = slog.LevelInfo
	}
	s.log.LogAttrs(ctx, lvl, "policy decision", slog.Bool("allow", d.Allow),
		slog.String("action", string(r.Action)), slog.String("principal", r.Principal),
		slog.String("resource", r.Resource), slog.Int("depth", r.Depth), slog.Any("policies", d.Policies))
	if !d.Allow {
		return nil, oauth.Wrap(&policyDenial{forbidden: d.Forbidden, policies: d.Policies}, oauth.CodeInvalidRequest, "%s", d.Reason)
	}
	return d.Policies, nil
}

// policyDenial is the cause of a refusal by policy: which policies, and
// whether a forbid (not Cedar's default deny) determined it.
type policyDenial struct {
	forbidden bool
	policies  []string
}

func (p *policyDenial) Error() string { return "denied by policy" }

// Is lets errors.Is match errPolicyDenied, and errPolicyForbidden for a forbid.
func (p *policyDenial) Is(target error) bool {
	return target == errPolicyDenied || (p.forbidden && target == errPolicyForbidden)
}

// audit appends an event to the audit trail; a failure is logged, since the
// decision it records has already been made.
func (s *Service) audit(ctx context.Context, ev store.AuditEvent) {
	if err := s.store.Append(ctx, ev); err != nil {
		s.log.Error("audit append failed", slog.String("type", ev.Type), slog.String("error", err.Error()))
	}
}

// maxReason bounds what one refusal writes to the audit trail and the log.
const maxReason = 512

// bounded cuts a refusal's description to maxReason bytes (its quoted
// parts are excerpts already; this bounds their number).
func bounded(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxReason], "") + "…"
}

// grantLabel names what a refused request asked for, from a bounded set:
// a served grant's name (as registrations spell it, never its URN),
// "revocation", "" (no grant_type), or "other".
func grantLabel(g string) string {
	if name, ok := GrantName(g); ok {
		return name
	}
	if _, ok := grantByName(g); ok || g == "" || g == "revocation" {
		return g
	}
	return "other"
}

// refuse logs a refused request (with the rule, never the token) and returns err.
func (s *Service) refuse(ctx context.Context, grant string, c *Registration, err error) error {
	e := oauth.As(err)
	lvl := slog.LevelInfo
	if e.Code == oauth.CodeServerError {
		lvl = slog.LevelError
	}
	now := s.now()
	grant = grantLabel(grant)
	attrs := []slog.Attr{slog.String("grant", grant), slog.String("client", c.ID),
		slog.String("error", e.Code), slog.String("description", bounded(e.Description))}
	ev := store.AuditEvent{Time: now, Type: store.AuditRefused, Client: c.ID, Grant: grant, Code: e.Code, Reason: bounded(e.Description)}
	var denial *policyDenial
	if errors.As(err, &denial) {
		ev.Policies = denial.policies
	}
	// Repeated refusals of one kind are audited once per RefusalWindow and
	// counted (refusals.go): a runaway client cannot turn them into a
	// write per request.
	key := refusalKey{c.ID, grant, e.Code, deviationKind(err), strings.Join(ev.Policies, ",")}
	audit, flushed := s.refused.admit(key, now, ev.Reason, ev.Policies)
	if flushed != nil {
		s.audit(ctx, summary(key, flushed))
	}
	if !audit {
		return e
	}
	s.audit(ctx, ev)
	if cause := e.Cause(); cause != nil {
		attrs = append(attrs, slog.String("cause", cause.Error()))
	}
	s.log.LogAttrs(ctx, lvl, "token request refused", attrs...)
	return e
}
