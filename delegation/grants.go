package delegation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

// TokenRequest is a parsed token endpoint request. Audiences holds every
// "audience" and "resource" value (one set, matched exactly). Empty strings
// mean absent (RFC 6749 §3.1).
type TokenRequest struct {
	GrantType          string
	Scope              string
	Audiences          []string
	SubjectToken       string
	SubjectTokenType   string
	ActorToken         string
	ActorTokenType     string
	RequestedTokenType string
	// DPoP is the request's DPoP proof (RFC 9449), if any, and DPoPURL the
	// token endpoint's URL it must be made for.
	DPoP    string
	DPoPURL string

	proof *tokens.DPoPProof // set once DPoP has verified
}

// Token decides a token request from an authenticated client.
func (s *Service) Token(ctx context.Context, c *Client, req TokenRequest) (*TokenResponse, error) {
	var (
		resp *TokenResponse
		err  error
	)
	grant := printable(req.GrantType) // what the audit and logs record
	if until, ok := s.dev.suspendedUntil(c.ID, s.now()); ok {
		return nil, s.refuse(ctx, grant, c, errSuspended(c, until))
	}
	if req.DPoP != "" {
		p, err := tokens.VerifyDPoP(req.DPoP, tokens.DPoPCheck{Method: "POST", URL: req.DPoPURL, Now: s.now()}, s.replay)
		if err != nil {
			return nil, s.refuse(ctx, grant, c, oauth.Wrap(err, oauth.CodeInvalidDPoPProof, "%v", err))
		}
		req.proof = p
	}
	switch req.GrantType {
	case "":
		return nil, s.refuse(ctx, "", c, oauth.New(oauth.CodeInvalidRequest, "grant_type is required"))
	case oauth.GrantClientCredentials:
		if !c.Can(GrantClientCredentials) {
			err = oauth.New(oauth.CodeUnauthorizedClient, "client %q may not use the client_credentials grant", c.ID)
			break
		}
		resp, err = s.clientCredentials(ctx, c, req)
	case oauth.GrantTokenExchange:
		if !c.Can(GrantTokenExchange) {
			err = oauth.New(oauth.CodeUnauthorizedClient, "client %q may not use the token-exchange grant", c.ID)
			break
		}
		resp, err = s.exchange(ctx, c, req)
	default:
		err = oauth.New(oauth.CodeUnsupportedGrantType, "grant_type %q is not supported", printable(req.GrantType))
	}
	if err != nil {
		s.observe(ctx, c, err)
		return nil, s.refuse(ctx, grant, c, err)
	}
	return resp, nil
}

// clientCredentials mints a root token for the client itself.
func (s *Service) clientCredentials(ctx context.Context, c *Client, req TokenRequest) (*TokenResponse, error) {
	scopes, auds, err := attenuate(req, c, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	claims := &tokens.Claims{
		Issuer: s.issuer, Subject: c.ID, ClientID: c.ID,
		Audience: auds, Scope: chain.FormatScope(scopes),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(s.rootTTL).Unix(),
		Cnf: bindTo(req.proof),
	}
	policies, err := s.decide(ctx, s.policyRequest(c, c, policy.ActionMint, claims, nil, now))
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, "client_credentials", "", policies)
}

// exchange implements RFC 8693 token exchange: delegation from a Mandate token,
// or a root from a trusted external issuer's token.
func (s *Service) exchange(ctx context.Context, c *Client, req TokenRequest) (*TokenResponse, error) {
	if req.SubjectToken == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is required")
	}
	if req.SubjectTokenType == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token_type is required")
	}
	if !supportedTokenType(req.SubjectTokenType) {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token_type %q is not supported (use %s or %s)",
			printable(req.SubjectTokenType), oauth.TokenTypeAccessToken, oauth.TokenTypeJWT)
	}
	switch {
	case req.ActorToken != "" && req.ActorTokenType == "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token_type is required with actor_token")
	case req.ActorToken == "" && req.ActorTokenType != "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token_type given without actor_token")
	case req.ActorTokenType != "" && !supportedTokenType(req.ActorTokenType):
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token_type %q is not supported", printable(req.ActorTokenType))
	}
	issuedType := oauth.TokenTypeAccessToken
	switch req.RequestedTokenType {
	case "", oauth.TokenTypeAccessToken:
	case oauth.TokenTypeJWT:
		issuedType = oauth.TokenTypeJWT
	default:
		return nil, oauth.New(oauth.CodeInvalidRequest, "requested_token_type %q is not supported (use %s or %s)",
			printable(req.RequestedTokenType), oauth.TokenTypeAccessToken, oauth.TokenTypeJWT)
	}

	iss, err := unverifiedIssuer(req.SubjectToken)
	if err != nil {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is malformed: %v", err)
	}
	if iss == s.issuer {
		return s.delegate(ctx, c, req, issuedType)
	}
	if ti, ok := s.trusted[iss]; ok {
		return s.externalRoot(ctx, c, ti, req, issuedType)
	}
	return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token issuer %q is neither Mandate nor a trusted issuer", printable(iss))
}

// delegate issues a child of a Mandate token held by c, to c itself or to the
// actor named by the actor token.
func (s *Service) delegate(ctx context.Context, c *Client, req TokenRequest, issuedType string) (*TokenResponse, error) {
	now := s.now()
	parent, err := s.verifyLive(ctx, req.SubjectToken, "subject_token", now)
	if err != nil {
		return nil, err
	}
	if parent.ClientID != c.ID {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is held by another client; only its holder may exchange it")
	}
	if parent.Cnf != nil {
		// A bound token is exchanged only with a proof of its key (RFC 9449 §5).
		switch {
		case req.proof == nil:
			return nil, oauth.New(oauth.CodeInvalidDPoPProof, "subject_token is bound to a key (DPoP): send a DPoP proof made with it")
		case req.proof.JKT != parent.Cnf.JKT:
			return nil, oauth.New(oauth.CodeInvalidDPoPProof, "the DPoP proof is not made with the key subject_token is bound to")
		}
	}
	depth := len(parent.Lineage) + 1
	if depth > s.maxDepth {
		return nil, oauth.New(oauth.CodeInvalidRequest, "delegation depth %d would exceed max_depth %d", depth, s.maxDepth)
	}

	holder := c
	holderKey := "" // the key the child is bound to, if any
	if req.proof != nil {
		holderKey = req.proof.JKT
	}
	if req.ActorToken != "" {
		if isEphemeralActorToken(req.ActorToken) {
			h, jkt, err := s.ephemeralActor(c, req.ActorToken, now)
			if err != nil {
				return nil, err
			}
			holder, holderKey = h, jkt
		} else {
			actor, err := s.verifyLive(ctx, req.ActorToken, "actor_token", now)
			if err != nil {
				return nil, err
			}
			if actor.Subject != actor.ClientID {
				return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token must be the new actor's own identity token (its sub equal to its client_id)")
			}
			h, ok := s.clients[actor.ClientID]
			if !ok {
				return nil, oauth.New(oauth.CodeInvalidRequest, "actor %q is no longer a registered client", printable(actor.ClientID))
			}
			if h != c {
				holder, holderKey = h, ""
				if actor.Cnf != nil {
					holderKey = actor.Cnf.JKT // the new holder proves possession with its own key
				}
			}
		}
	}
	if parent.Cnf != nil && holderKey == "" {
		// DESIGN.md, DPoP bindings: a child of a bound parent is always bound.
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is sender-constrained, so its child must be too: the new holder needs a key (a DPoP-bound actor_token, or an ephemeral agent)")
	}
	if err := s.checkMayAct(parent.MayAct, holder); err != nil {
		return nil, err
	}

	scopes, auds, err := attenuate(req, holder, parent)
	if err != nil {
		return nil, err
	}

	act := parent.Act
	action := policy.ActionDownscope
	if holder != c {
		act = &tokens.Actor{Subject: holder.ID, Act: parent.Act}
		action = policy.ActionDelegate
	}
	exp := now.Add(s.delegatedTTL).Unix()
	if parent.Expiry < exp {
		exp = parent.Expiry
	}
	lineage := make([]string, 0, depth)
	lineage = append(append(lineage, parent.Lineage...), parent.ID)
	claims := &tokens.Claims{
		Issuer: s.issuer, Subject: parent.Subject, ClientID: holder.ID,
		Audience: auds, Scope: chain.FormatScope(scopes),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp,
		Act: act, Lineage: lineage,
	}
	if holderKey != "" {
		claims.Cnf = &tokens.Confirmation{JKT: holderKey}
	}
	policies, err := s.decide(ctx, s.policyRequest(c, holder, action, claims, parent.Act, now))
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, "token_exchange", issuedType, policies)
}

// verifyLive verifies a Mandate token presented in a request: signature, type,
// issuer, time, chain structure, and that neither it nor any ancestor is revoked.
func (s *Service) verifyLive(ctx context.Context, token, param string, now time.Time) (*tokens.Claims, error) {
	// What the signature, the structure and the issuance record proved about
	// a token does not change; a token shown again skips them. Expiry and
	// revocation are checked every time.
	c, seen := s.verified.Get(token, now)
	if !seen {
		var err error
		if c, err = s.keys.Verify(token); err != nil {
			return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "%s is not a valid Mandate token: %v", param, err)
		}
	}
	if err := s.checkClaims(c, now); err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "%s %v", param, err)
	}
	rev, err := s.store.FirstRevoked(ctx, append(c.Lineage[:len(c.Lineage):len(c.Lineage)], c.ID)...)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeServerError, "could not check revocation")
	}
	if rev != nil {
		if rev.JTI == c.ID {
			return nil, oauth.New(oauth.CodeInvalidRequest, "%s has been revoked", param)
		}
		return nil, oauth.New(oauth.CodeInvalidRequest, "%s descends from revoked token %s", param, rev.JTI)
	}
	if seen {
		return c, nil
	}
	// A second lock behind the signature: the token must be the very one
	// recorded at issuance. A token signed with Mandate's key but not issued
	// by it (a leaked key, a bug) cannot drop an actor or a revoked ancestor.
	rec, err := s.store.Token(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.CodeInvalidRequest, "%s was not issued by this server (no record of %s)", param, c.ID)
	}
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeServerError, "could not read the token record")
	}
	if field := recordMismatch(rec, c); field != "" {
		s.log.Error("token signed with Mandate's key differs from its issuance record", slog.String("jti", c.ID), slog.String("field", field))
		return nil, oauth.New(oauth.CodeInvalidRequest, "%s does not match the record of its issuance (%s differs)", param, field)
	}
	s.verified.Put(token, c, time.Unix(c.Expiry, 0), now)
	return c, nil
}

// recordMismatch names the first claim of c that differs from the record
// written when it was issued ("" when it is the token issued).
func recordMismatch(rec *store.TokenRecord, c *tokens.Claims) string {
	switch {
	case rec.Holder != c.ClientID:
		return "client_id"
	case rec.Subject != c.Subject:
		return "sub"
	case !slices.Equal(rec.Lineage, c.Lineage):
		return "lineage"
	case !slices.Equal(rec.Act.Path(), c.Act.Path()):
		return "act"
	case rec.Scope != c.Scope:
		return "scope"
	case !slices.Equal(rec.Audience, []string(c.Audience)):
		return "aud"
	case rec.ExpiresAt.Unix() != c.Expiry:
		return "exp"
	case rec.JKT != jktOf(c):
		return "cnf"
	}
	return ""
}

func jktOf(c *tokens.Claims) string {
	if c.Cnf == nil {
		return ""
	}
	return c.Cnf.JKT
}

// checkClaims applies the issuer, time and structure rules to a verified
// Mandate token. Its errors read after the parameter name ("subject_token has expired").
func (s *Service) checkClaims(c *tokens.Claims, now time.Time) error {
	if c.Issuer != s.issuer {
		return errors.New("was issued by another issuer")
	}
	if now.Unix() >= c.Expiry {
		return errors.New("has expired")
	}
	if c.NotBefore > now.Add(ownLeeway).Unix() || c.IssuedAt > now.Add(ownLeeway).Unix() {
		return errors.New("is not valid yet")
	}
	if err := chain.CheckStructure(c, s.maxDepth); err != nil {
		return fmt.Errorf("has a %v", err)
	}
	return nil
}

// checkMayAct enforces RFC 8693 §4.4: when the subject token names who may act
// for its subject, the new holder must be that actor, and Mandate its issuer.
func (s *Service) checkMayAct(mayAct *tokens.Actor, holder *Client) error {
	if mayAct == nil {
		return nil
	}
	if mayAct.Subject != holder.ID {
		return oauth.New(oauth.CodeInvalidRequest, "the subject_token's may_act does not allow %q to act for its subject", holder.ID)
	}
	if mayAct.Issuer != "" && mayAct.Issuer != s.issuer {
		return oauth.New(oauth.CodeInvalidRequest, "the subject_token's may_act names an actor of another issuer")
	}
	return nil
}

// attenuate decides a new token's scopes and audiences: within the parent
// token's (nil for a root) and within the holder's registration.
func attenuate(req TokenRequest, holder *Client, parent *tokens.Claims) (scopes, auds []string, err error) {
	var ps, pa *parentGrant
	if parent != nil {
		parentScopes, err := chain.ParseScope(parent.Scope)
		if err != nil {
			return nil, nil, oauth.New(oauth.CodeInvalidRequest, "subject_token scope is malformed")
		}
		ps = &parentGrant{parentScopes, "the subject_token's scope"}
		pa = &parentGrant{parent.Audience, "the subject_token's audience"}
	}
	if scopes, err = grantScopes(req.Scope, holder, ps); err != nil {
		return nil, nil, err
	}
	if auds, err = grantAudiences(req.Audiences, holder, pa); err != nil {
		return nil, nil, err
	}
	return scopes, auds, nil
}

// parentGrant is what a child must stay within besides its holder's
// registration: the parent token's scopes or audiences. A nil *parentGrant
// means a root, bounded by the registration alone; a parent with no values
// (an identity-only token) bounds the child to nothing.
type parentGrant struct {
	values []string
	name   string // for error descriptions: "the subject_token's scope"
}

// grantScopes decides the scopes of a new token held by holder. With a request,
// every requested scope must be covered by the parent's scopes (unless this is
// a root) and by the holder's registration; without one, the result is the
// parent's scopes narrowed to the holder (or the registration, for a root).
func grantScopes(requested string, holder *Client, parent *parentGrant) ([]string, error) {
	want, err := chain.ParseScope(requested)
	if err != nil {
		return nil, oauth.New(oauth.CodeInvalidScope, "%v", err)
	}
	if want == nil {
		if parent == nil {
			return holder.Scopes, nil
		}
		got := chain.Intersect(parent.values, holder.Scopes)
		if len(got) == 0 {
			return nil, oauth.New(oauth.CodeInvalidScope, "no scope of %s is within client %q's registered scopes", parent.name, holder.ID)
		}
		return got, nil
	}
	if parent != nil {
		if sc, bad := chain.Uncovered(parent.values, want); bad {
			return nil, oauth.New(oauth.CodeInvalidScope, "scope %q is not covered by %s", printable(sc), parent.name)
		}
	}
	if sc, bad := chain.Uncovered(holder.Scopes, want); bad {
		return nil, oauth.New(oauth.CodeInvalidScope, "scope %q is beyond client %q's registered scopes", printable(sc), holder.ID)
	}
	return want, nil
}

// grantAudiences is grantScopes for audiences and resource indicators, matched exactly.
func grantAudiences(requested []string, holder *Client, parent *parentGrant) ([]string, error) {
	if len(requested) > chain.MaxScopes {
		return nil, oauth.New(oauth.CodeInvalidTarget, "more than %d audiences requested", chain.MaxScopes)
	}
	want := chain.Dedupe(requested)
	if len(want) == 0 {
		if parent == nil {
			return holder.Audiences, nil
		}
		got := chain.Common(parent.values, holder.Audiences)
		if len(got) == 0 {
			return nil, oauth.New(oauth.CodeInvalidTarget, "no audience of %s is within client %q's registered audiences", parent.name, holder.ID)
		}
		return got, nil
	}
	if parent != nil {
		if a, bad := chain.Missing(parent.values, want); bad {
			return nil, oauth.New(oauth.CodeInvalidTarget, "audience %q is not within %s", printable(a), parent.name)
		}
	}
	if a, bad := chain.Missing(holder.Audiences, want); bad {
		return nil, oauth.New(oauth.CodeInvalidTarget, "audience %q is beyond client %q's registered audiences", printable(a), holder.ID)
	}
	return want, nil
}

func (s *Service) policyRequest(principal, holder *Client, action policy.Action, c *tokens.Claims, priorAct *tokens.Actor, now time.Time) policy.Request {
	scopes, _ := chain.ParseScope(c.Scope)
	r := policy.Request{
		Principal: principal.ID, Action: action, Resource: holder.ID,
		PrincipalGroups: principal.Groups, ResourceGroups: holder.Groups,
		Subject: c.Subject, Scopes: scopes, Audiences: c.Audience,
		Depth: len(c.Lineage), Actors: priorAct.Path(),
		TTL:       time.Unix(c.Expiry, 0).Sub(now),
		Ephemeral: holder.ephemeral, Bound: c.Cnf != nil,
	}
	if len(c.Lineage) > 0 {
		r.Root = c.Lineage[0]
	}
	return r
}

func supportedTokenType(t string) bool {
	return t == oauth.TokenTypeAccessToken || t == oauth.TokenTypeJWT
}

// unverifiedIssuer reads "iss" from a JWT's payload without verifying it, only to
// choose which keys will verify it.
func unverifiedIssuer(token string) (string, error) {
	if len(token) > tokens.MaxTokenSize {
		return "", fmt.Errorf("longer than %d bytes", tokens.MaxTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWS compact serialization")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("payload is not base64url")
	}
	var p struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", errors.New("payload is not a JSON object")
	}
	if p.Iss == "" {
		return "", errors.New(`no "iss" claim`)
	}
	return p.Iss, nil
}

// printable makes request text safe to put in an error description, a log or
// the audit trail: control and non-ASCII characters become '?', and it is cut
// at 64 bytes, so no request can forge a line or an escape sequence.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r > 0x7e && r != '…') {
			return '?'
		}
		return r
	}, s)
}
