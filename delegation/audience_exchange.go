package delegation

import (
	"context"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// audienceExchange is the audience exchange (docs/design.md, "Token
// exchange", and docs/decisions.md, "MCP: the audience exchange"): a
// resource server that received parent, a token whose aud contains one of
// the audiences c serves, trades it for a token of its own to a downstream
// API instead of forwarding it (no token passthrough). c is the new holder,
// authenticated as itself; no proof of the parent's key is asked (c checked
// that proof when the call came in).
//
// The child keeps sub and sub_iss; act gains c; lineage gains the parent,
// so revoking the parent revokes it. Its scope is within the parent's and
// c's registration; its audience is within c's registered audiences only
// (the one place a child's audience may leave its parent's), and must be
// asked for: a token for every downstream API at once would let one of them
// replay it at the others. It never outlives the parent, it is bound to c's
// key when c sends a proof (and must be when the parent is bound), and
// policy decides it as Action::"delegate" from c to c with
// context.audience_exchange.
func (s *Service) audienceExchange(ctx context.Context, c *Registration, req *TokenRequest, parent *jwt.Claims, parentKid, issuedType string, now time.Time) (*TokenResponse, error) {
	if req.ActorToken != "" {
		// The holder is the client itself; a second actor would be a
		// delegation on top. Exchange first, then delegate the result.
		return nil, oauth.New(oauth.CodeInvalidRequest, "an audience exchange (client %q serves the subject_token's audience) takes no actor_token: the client itself becomes the holder; exchange first, then delegate the result", c.ID)
	}
	if len(req.Audiences) == 0 {
		return nil, oauth.New(oauth.CodeInvalidRequest, "an audience exchange needs audience (or resource): the downstream API the token is for, one of client %q's registered audiences", c.ID)
	}
	if parent.Cnf != nil && req.proof == nil {
		// docs/design.md, DPoP bindings: a child of a bound parent is always
		// bound; here, to the serving client's own key.
		return nil, oauth.New(oauth.CodeInvalidDPoPProof, "subject_token is bound to a key (DPoP), so the token it is exchanged for must be too: send a DPoP proof made with client %q's own key", c.ID)
	}
	if parent.Scope == "" {
		return nil, oauth.New(oauth.CodeInvalidScope, "subject_token carries no scope, so there is nothing to delegate")
	}
	if depth := len(parent.Lineage) + 1; depth > s.maxDepth {
		return nil, oauth.Wrap(errTooDeep, oauth.CodeInvalidRequest, "delegation depth %d would exceed max_depth %d", depth, s.maxDepth)
	}
	if err := s.checkMayAct(parent.MayAct, c); err != nil {
		return nil, err
	}

	parentScopes, err := chain.ParseScope(parent.Scope)
	if err != nil { // checked on presentation (verifyPresented); a second lock
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token scope is malformed")
	}
	want, err := chain.ParseScope(req.Scope)
	if err != nil {
		return nil, oauth.New(oauth.CodeInvalidScope, "%v", err)
	}
	ceiling := c.ceiling()
	scopes, err := chain.Bounds{Parent: &chain.Grant{Scopes: parentScopes}, Ceiling: ceiling}.Scopes(want)
	if err != nil {
		return nil, wideningError(oauth.CodeInvalidScope, err, c)
	}
	// No parent bound on the audience: the registration alone bounds it.
	auds, err := chain.Bounds{Ceiling: ceiling}.Audiences(req.Audiences)
	if err != nil {
		return nil, wideningError(oauth.CodeInvalidTarget, err, c)
	}

	claims := chain.Derive(parent, c.ID)
	claims.Issuer, claims.Audience, claims.Scope = s.issuer, auds, chain.FormatScope(scopes)
	claims.IssuedAt, claims.NotBefore = jwt.At(now), jwt.At(now)
	claims.Expiry = chain.Expiry(now, s.delegatedTTL, parent.Expiry)
	claims.Cnf = bindTo(req.proof)
	r := s.policyRequest(c, c, policy.ActionDelegate, claims, parent.Act, now)
	r.AudienceExchange = true
	policies, err := s.decide(ctx, r)
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, GrantNameTokenExchange, issuedType, policies, parentKid)
}
