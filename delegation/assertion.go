package delegation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// ClientAssertionType is the client_assertion_type of private_key_jwt
// client authentication (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// MaxAssertionLifetime bounds how far in the future a client assertion's exp
// may be: an assertion is made for one request, and its jti is remembered
// until exp, so a short bound keeps the replay cache small.
const MaxAssertionLifetime = 5 * time.Minute

// AuthenticateAssertion checks a private_key_jwt client assertion (RFC 7523):
// signed by a key in the client's registered JWKS (by kid), iss and sub the
// client (and the client_id parameter, when sent), aud naming Mandate (its
// issuer, or endpoint, the URL the request was sent to), live, at most
// MaxAssertionLifetime ahead, and a jti never seen before. Until the
// signature verifies every failure is the same invalid_client answer, so
// the response does not reveal which client ids exist. admit, when set, is
// asked (a rate limit) after the signature verifies and before the jti is
// recorded, so refused requests spend neither the assertion nor the cache.
// On a store other replicas share, the jti is also recorded there, so an
// assertion used at one replica is refused at every other. A workload
// issuer's token is also a client assertion: it authenticates the
// workload its issuer's rules name (workload_identity.go).
func (s *Service) AuthenticateAssertion(ctx context.Context, assertion, clientID, endpoint string, admit func(*Registration) error) (*Registration, error) {
	if s.workloadIssuerOf(assertion) != nil {
		// A workload issuer's token authenticates the workload it names
		// (workload_identity.go); a single-use one is spent here.
		return s.workloadClient(ctx, assertion, clientID, admit, oauth.CodeInvalidClient, true)
	}
	unverified, err := jwt.Unverified(assertion)
	if err != nil || len(assertion) > tokens.MaxTokenSize {
		return nil, errBadCredentials
	}
	id := unverified.Subject
	if clientID != "" && clientID != id {
		return nil, errBadCredentials
	}
	c, ok := s.clients[id]
	if !ok || c.Keys == nil {
		return nil, errBadCredentials
	}
	payload, _, err := tokens.Verify(assertion, c.Keys, "")
	if err != nil {
		return nil, errBadCredentials
	}
	// The client is proven from here: the reasons can be specific.
	refuse := func(format string, args ...any) (*Registration, error) {
		return nil, oauth.New(oauth.CodeInvalidClient, "client assertion: "+format, args...)
	}
	var cl struct {
		jwt.Registered
	}
	if json.Unmarshal(payload, &cl) != nil || jwt.CheckMembers(payload) != nil {
		return refuse("claims are malformed")
	}
	now := s.now()
	if cl.Issuer != c.ID || cl.Subject != c.ID {
		return refuse("iss and sub must both be the client id")
	}
	auds := []string{s.issuer}
	if endpoint != "" {
		auds = append(auds, endpoint)
	}
	expect := chain.Expect{Audiences: auds, Now: now, Leeway: ownLeeway, MaxAhead: MaxAssertionLifetime}
	if err := expect.CheckRegistered(cl.Registered); err != nil {
		var ce *chain.ClaimError
		errors.As(err, &ce)
		switch {
		case ce.Claim == "aud":
			return refuse("aud must name %q", s.issuer)
		case errors.Is(err, chain.ErrMalformedToken):
			return refuse("exp is required")
		case errors.Is(err, chain.ErrExpired):
			return refuse("expired")
		case ce.Claim == "nbf":
			return refuse("not valid yet")
		case ce.Claim == "iat":
			return refuse("issued in the future")
		}
		return refuse("%s", ce.Phrase())
	}
	if cl.ID == "" || len(cl.ID) > 256 {
		return refuse("jti is required")
	}
	// The replay cache starts empty with the process: an assertion that may
	// have been made before (and used) is refused rather than taken twice.
	switch {
	case !cl.IssuedAt.IsZero() && cl.IssuedAt.Time().Before(s.started.Add(-ownLeeway)):
		return refuse("issued before this server started, so it could be a replay: make a new one")
	case cl.IssuedAt.IsZero() && !cl.Expiry.Time().After(s.started.Add(MaxAssertionLifetime+ownLeeway)):
		return refuse("without iat it could have been made (and used) before this server started: include iat")
	}
	if admit != nil {
		if err := admit(c); err != nil {
			return nil, err
		}
	}
	if s.assertionCache(c.ID).Seen(cl.ID, cl.Expiry.Time(), now) {
		return refuse("jti %q was already used (or this client's %d recent assertions fill its replay cache)", jwt.Excerpt(cl.ID), assertionCacheSize)
	}
	if first, err := s.firstUse(ctx, store.ReplayAssertion, cl.Expiry.Time(), c.ID, cl.ID); err != nil {
		return nil, err
	} else if !first {
		return refuse("jti %q was already used (at another replica)", jwt.Excerpt(cl.ID))
	}
	return c, nil
}

// firstUse records a single-use value (the parts that name it: client,
// key, jti) in the store other replicas share, until expires, and reports
// whether it was new there; without such a store, the caller's memory cache
// has decided alone and it is new. The parts are hashed: a key of fixed
// size, whatever a client sent.
func (s *Service) firstUse(ctx context.Context, kind string, expires time.Time, parts ...string) (bool, error) {
	if s.replays == nil {
		return true, nil
	}
	first, err := s.replays.FirstUse(ctx, kind, onceKey(parts...), expires)
	if err != nil {
		return false, oauth.Wrap(err, oauth.CodeServerError, "could not record a single-use value")
	}
	return first, nil
}

// onceKey names a single-use value by the parts that make it (client,
// key, jti): their SHA-256, a key of fixed size whatever a client sent.
func onceKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// assertionCacheSize bounds each client's remembered assertion jtis: one
// client filling its cache refuses only itself.
const assertionCacheSize = 1 << 16

// DefaultProofsPerClient bounds each client's remembered DPoP proof jtis at
// the token endpoint (Config.ProofsPerClient): about 1.5 MiB per client at
// most, and more proofs within a proof's lifetime than any honest client
// makes.
const DefaultProofsPerClient = 1 << 14

// proofCache is client id's share of the token endpoint's DPoP replay cache.
func (s *Service) proofCache(id string) *tokens.ReplayCache {
	s.assertionsMu.Lock()
	defer s.assertionsMu.Unlock()
	rc, ok := s.proofs[id]
	if !ok {
		rc = tokens.NewReplayCache(s.proofShare)
		s.proofs[id] = rc
	}
	return rc
}

// assertionCache is client id's replay cache (one per key-authenticated
// client, so bounded by the registry).
func (s *Service) assertionCache(id string) *tokens.ReplayCache {
	s.assertionsMu.Lock()
	defer s.assertionsMu.Unlock()
	rc, ok := s.assertions[id]
	if !ok {
		rc = tokens.NewReplayCache(assertionCacheSize)
		s.assertions[id] = rc
	}
	return rc
}
