package delegation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// GrantNameTokenExchange is how a registration allows RFC 8693 token
// exchange (grant_type oauth.GrantTokenExchange).
const GrantNameTokenExchange = "token_exchange"

// tokenExchangeGrant implements RFC 8693 token exchange: delegation from a
// Mandate token the client holds (to itself, down-scoped, or to an actor),
// or a root token from a trusted external issuer's token.
type tokenExchangeGrant struct{ s *Service }

func (tokenExchangeGrant) bind(s *Service) GrantHandler { return tokenExchangeGrant{s} }

func (tokenExchangeGrant) Name() string      { return GrantNameTokenExchange }
func (tokenExchangeGrant) GrantType() string { return oauth.GrantTokenExchange }

func (g tokenExchangeGrant) HandleTokenRequest(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	if req.SubjectToken == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is required")
	}
	if req.SubjectTokenType == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token_type is required")
	}
	if !supportedTokenType(req.SubjectTokenType) {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token_type %q is not supported (use %s or %s)",
			jwt.Excerpt(req.SubjectTokenType), oauth.TokenTypeAccessToken, oauth.TokenTypeJWT)
	}
	switch {
	case req.ActorToken != "" && req.ActorTokenType == "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token_type is required with actor_token")
	case req.ActorToken == "" && req.ActorTokenType != "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token_type given without actor_token")
	case req.ActorTokenType != "" && !supportedTokenType(req.ActorTokenType):
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token_type %q is not supported", jwt.Excerpt(req.ActorTokenType))
	}
	issuedType := oauth.TokenTypeAccessToken
	switch req.RequestedTokenType {
	case "", oauth.TokenTypeAccessToken:
	case oauth.TokenTypeJWT:
		issuedType = oauth.TokenTypeJWT
	default:
		return nil, oauth.New(oauth.CodeInvalidRequest, "requested_token_type %q is not supported (use %s or %s)",
			jwt.Excerpt(req.RequestedTokenType), oauth.TokenTypeAccessToken, oauth.TokenTypeJWT)
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
	return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token issuer %q is neither Mandate nor a trusted issuer", jwt.Excerpt(iss))
}

// errNotHeld refuses a subject token held by another client (and not for an
// audience c serves): a stolen token cannot be laundered through the token
// endpoint.
func errNotHeld() error {
	return oauth.Wrap(errForeignToken, oauth.CodeInvalidRequest, "subject_token is held by another client; only its holder may exchange it")
}

// delegate issues a child of a Mandate token held by c, to c itself or to the
// actor named by the actor token; or, when c does not hold it but serves one
// of its audiences, the audience exchange.
func (s *Service) delegate(ctx context.Context, c *Registration, req *TokenRequest, issuedType string) (*TokenResponse, error) {
	now := s.now()
	parent, parentKid, err := s.verifyPresented(ctx, req.SubjectToken, "subject_token", now)
	if err != nil {
		return nil, err
	}
	if parent.ClientID != c.ID {
		if c.servesAudienceOf(parent.Audience) {
			// docs/design.md, the audience exchange: the resource server the
			// token was sent to trades it for its own token downstream.
			return s.audienceExchange(ctx, c, req, parent, parentKid, issuedType, now)
		}
		return nil, errNotHeld()
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
	if parent.Scope == "" {
		// An identity token (or any scope-less token) names its holder and
		// grants nothing; a child of it could hold nothing either.
		return nil, oauth.New(oauth.CodeInvalidScope, "subject_token carries no scope, so there is nothing to delegate (an identity token only names its holder)")
	}
	if depth := len(parent.Lineage) + 1; depth > s.maxDepth {
		return nil, oauth.Wrap(errTooDeep, oauth.CodeInvalidRequest, "delegation depth %d would exceed max_depth %d", depth, s.maxDepth)
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
			actor, _, err := s.verifyPresented(ctx, req.ActorToken, "actor_token", now)
			if err != nil {
				return nil, err
			}
			if actor.Subject != actor.ClientID || actor.SubjectIssuer != s.issuer {
				// A token for a subject of another issuer (an exchanged ID
				// token) names that subject, not its holder, even when the
				// names coincide.
				return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token must be the new actor's own token (its sub equal to its client_id, sub_iss %s)", s.issuer)
			}
			h, ok := s.clients[actor.ClientID]
			if !ok {
				// A workload identity a rule generated: its rule's ceiling.
				h, ok = s.generatedHolder(actor.ClientID)
			}
			if !ok {
				return nil, oauth.New(oauth.CodeInvalidRequest, "actor %q is no longer a registered client", jwt.Excerpt(actor.ClientID))
			}
			if h.ID != c.ID {
				// docs/design.md, actor tokens: the actor token is handed to
				// the delegating client, so it must be useless anywhere but
				// here: an identity token, or one bound to the actor's key.
				if !isIdentityToken(actor, s.issuer) && actor.Cnf == nil {
					return nil, oauth.Wrap(errBearerActor, oauth.CodeInvalidRequest, "actor_token must be the actor's identity token (client_credentials with audience %s: no scope, audience Mandate alone, at most %s), a DPoP-bound token of the actor, or an ephemeral agent's %s: a bearer token with scopes or other audiences would hand the actor's powers to whoever delegates",
						s.issuer, IdentityTokenTTL, TypeAgent)
				}
				holder, holderKey = h, actor.JKT() // the new holder proves possession with its own key
			}
		}
	}
	if parent.Cnf != nil && holderKey == "" {
		// docs/design.md, DPoP bindings: a child of a bound parent is always bound.
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is sender-constrained, so its child must be too: the new holder needs a key (a DPoP-bound actor_token, or an ephemeral agent)")
	}
	if err := s.checkMayAct(parent.MayAct, holder); err != nil {
		return nil, err
	}

	scopes, auds, err := attenuate(req, holder, parent)
	if err != nil {
		return nil, err
	}
	claims := chain.Derive(parent, holder.ID)
	claims.Issuer, claims.Audience, claims.Scope = s.issuer, auds, chain.FormatScope(scopes)
	claims.IssuedAt, claims.NotBefore = jwt.At(now), jwt.At(now)
	claims.Expiry = chain.Expiry(now, s.delegatedTTL, parent.Expiry)
	if holderKey != "" {
		claims.Cnf = &jwt.Confirmation{JKT: holderKey}
	}
	action := policy.ActionDownscope
	if holder.ID != c.ID {
		action = policy.ActionDelegate
	}
	policies, err := s.decide(ctx, s.policyRequest(c, holder, action, claims, parent.Act, now))
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, GrantNameTokenExchange, issuedType, policies, parentKid)
}

// checkMayAct enforces RFC 8693 §4.4: when the subject token names who may act
// for its subject, the new holder must be that actor, and Mandate its issuer.
func (s *Service) checkMayAct(mayAct *jwt.Actor, holder *Registration) error {
	if mayAct == nil {
		return nil
	}
	if mayAct.Subject != holder.ID {
		return oauth.Wrap(errMayAct, oauth.CodeInvalidRequest, "the subject_token's may_act does not allow %q to act for its subject", holder.ID)
	}
	if mayAct.Issuer != "" && mayAct.Issuer != s.issuer {
		return oauth.Wrap(errMayAct, oauth.CodeInvalidRequest, "the subject_token's may_act names an actor of another issuer")
	}
	return nil
}

// attenuate decides a new token's scopes and audiences with the chain rules
// (chain.Bounds): within the parent token's (nil for a root) and within the
// holder's registration, answering a widening with invalid_scope or
// invalid_target and a description naming the bound.
func attenuate(req *TokenRequest, holder *Registration, parent *jwt.Claims) (scopes, auds []string, err error) {
	b := chain.Bounds{Ceiling: holder.ceiling()}
	if parent != nil {
		parentScopes, err := chain.ParseScope(parent.Scope)
		if err != nil { // checked on presentation (verifyPresented); a second lock
			return nil, nil, oauth.New(oauth.CodeInvalidRequest, "subject_token scope is malformed")
		}
		b.Parent = &chain.Grant{Scopes: parentScopes, Audiences: parent.Audience}
	}
	want, err := chain.ParseScope(req.Scope)
	if err != nil {
		return nil, nil, oauth.New(oauth.CodeInvalidScope, "%v", err)
	}
	if scopes, err = b.Scopes(want); err != nil {
		return nil, nil, wideningError(oauth.CodeInvalidScope, err, holder)
	}
	if auds, err = b.Audiences(req.Audiences); err != nil {
		return nil, nil, wideningError(oauth.CodeInvalidTarget, err, holder)
	}
	return scopes, auds, nil
}

// wideningError renders a chain.Bounds refusal as the token endpoint words it.
func wideningError(code string, err error, holder *Registration) error {
	var w *chain.WideningError
	if !errors.As(err, &w) {
		return oauth.Wrap(err, code, "%v", err)
	}
	noun, bound := "scope", "scopes"
	if w.Claim == "aud" {
		noun, bound = "audience", "audiences"
	}
	switch {
	case w.Value == "":
		return oauth.New(code, "no %s of the subject_token's %s is within client %q's registered %s", noun, noun, holder.ID, bound)
	case w.ByParent && w.Claim == "aud":
		return oauth.New(code, "audience %q is not within the subject_token's audience", jwt.Excerpt(w.Value))
	case w.ByParent:
		return oauth.New(code, "scope %q is not covered by the subject_token's scope", jwt.Excerpt(w.Value))
	}
	return oauth.New(code, "%s %q is beyond client %q's registered %s", noun, jwt.Excerpt(w.Value), holder.ID, bound)
}

func (s *Service) policyRequest(principal, holder *Registration, action policy.Action, c *jwt.Claims, priorAct *jwt.Actor, now time.Time) policy.Request {
	scopes, _ := chain.ParseScope(c.Scope)
	r := policy.Request{
		Principal: principal.ID, Action: action, Resource: holder.ID,
		PrincipalGroups: principal.Groups, ResourceGroups: holder.Groups,
		Subject: c.Subject, SubjectIssuer: c.SubjectIssuer, Scopes: scopes, Audiences: c.Audience,
		Depth: len(c.Lineage), Actors: priorAct.Path(),
		TTL:       c.Expiry.Time().Sub(now),
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
