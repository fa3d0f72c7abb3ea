package delegation

import (
	"context"
	"errors"
	"strings"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// GrantNameJWTBearer is how a registration allows the JWT bearer grant
// (RFC 7523 §2.1, grant_type oauth.GrantJWTBearer).
const GrantNameJWTBearer = "jwt_bearer"

// jwtBearerGrant starts a chain from an assertion (RFC 7523 §2.1):
//
//   - a workload issuer's token, which is then also the client's
//     authentication: the root's sub and holder are the identity its
//     issuer's rules map it to, within that identity's ceiling, and it
//     never outlives the token;
//   - an enterprise IdP's ID-JAG (typ oauth-id-jag+jwt,
//     draft-ietf-oauth-identity-assertion-authz-grant), redeemed by the
//     client it was made for: the root's sub is the user, sub_iss the IdP,
//     its holder the client, its scope the requested ∩ the ID-JAG's ∩ the
//     registration's.
//
// Every refusal of the assertion is invalid_grant (RFC 7523 §3.1), and a
// single-use assertion's jti is recorded only when the root is issued, so a
// refused request stores nothing.
type jwtBearerGrant struct{ s *Service }

func (jwtBearerGrant) bind(s *Service) GrantHandler { return jwtBearerGrant{s} }

func (jwtBearerGrant) Name() string      { return GrantNameJWTBearer }
func (jwtBearerGrant) GrantType() string { return oauth.GrantJWTBearer }

func (g jwtBearerGrant) HandleTokenRequest(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	switch {
	case req.Assertion == "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "assertion is required (RFC 7523 §2.1)")
	case req.SubjectToken != "" || req.ActorToken != "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token and actor_token belong to token exchange, not to the JWT bearer grant")
	case c.workload != nil && c.workload.raw == req.Assertion:
		return g.workloadRoot(ctx, c, req)
	case strings.EqualFold(unverifiedType(req.Assertion), workload.IDJAGType):
		return g.idjagRoot(ctx, c, req)
	case s.workloadIssuerOf(req.Assertion) != nil:
		return nil, oauth.Wrap(workload.ErrAssertion, oauth.CodeInvalidGrant, "a workload token authenticates the workload it names: send it without other client authentication (or as this request's client_assertion)")
	}
	u, err := jwt.Unverified(req.Assertion)
	switch {
	case err != nil:
		return nil, oauth.Wrap(workload.ErrAssertion, oauth.CodeInvalidGrant, "the assertion is not a JWT (RFC 7523 §2.1): %v", err)
	case s.idjag[u.Issuer] != nil:
		return nil, oauth.Wrap(workload.ErrAssertion, oauth.CodeInvalidGrant, "an assertion of ID-JAG issuer %s must have typ %s", u.Issuer, workload.IDJAGType)
	}
	return nil, oauth.Wrap(workload.ErrAssertion, oauth.CodeInvalidGrant, "the assertion's issuer %q is neither a workload issuer nor an ID-JAG issuer", jwt.Excerpt(u.Issuer))
}

// workloadRoot mints the root of the workload that authenticated with the
// assertion: sub and holder are it.
func (g jwtBearerGrant) workloadRoot(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	p := c.workload
	a := p.assertion
	scopes, auds, err := attenuate(req, c, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	claims := s.rootClaims(c, c.ID, s.issuer, scopes, auds, now, chain.Expiry(now, s.rootTTL, jwt.At(a.Expiry)), req.proof)
	iss := a.Issuer
	if iss == "" {
		iss = p.issuer.Name() // a JWT-SVID without iss: its trust domain
	}
	pa, err := policyAssertion("workload", iss, a.Subject, a.Payload)
	if err != nil {
		return nil, err
	}
	policies, err := s.decideMint(ctx, c, claims, now, pa)
	if err != nil {
		return nil, err
	}
	if err := s.spendWorkload(ctx, p); err != nil {
		return nil, spendRefusal(err, oauth.CodeInvalidGrant)
	}
	return s.issueFrom(ctx, c, claims, GrantNameJWTBearer, "", policies, assertionRef("workload", iss, a.Subject, a.JTI, p.raw))
}

// idjagRoot redeems an ID-JAG made for c: a root on behalf of its user.
func (g jwtBearerGrant) idjagRoot(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	if c.generatedName {
		// An IdP makes an ID-JAG for a client it knows registered at this
		// authorization server; a name a workload rule generated is none.
		return nil, oauth.New(oauth.CodeUnauthorizedClient, "ID-JAGs are redeemed by registered clients, not by the generated workload identity %q", c.ID)
	}
	u, err := jwt.Unverified(req.Assertion)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidGrant, "the ID-JAG is malformed: %v", err)
	}
	is, ok := s.idjag[u.Issuer]
	if !ok {
		return nil, oauth.Wrap(workload.ErrAssertion, oauth.CodeInvalidGrant, "the ID-JAG's issuer %q is not a configured id_jag_issuers entry", jwt.Excerpt(u.Issuer))
	}
	now := s.now()
	j, err := is.Verify(req.Assertion, c.ID, now)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidGrant, "%v", err)
	}
	want, err := chain.ParseScope(req.Scope)
	if err != nil {
		return nil, oauth.New(oauth.CodeInvalidScope, "%v", err)
	}
	sb := chain.Bounds{Ceiling: chain.Grant{Scopes: c.Scopes}}
	if len(j.Scopes) > 0 {
		sb.Parent = &chain.Grant{Scopes: j.Scopes}
	}
	scopes, err := sb.Scopes(want)
	if err != nil {
		return nil, idjagWidening(oauth.CodeInvalidScope, err, c)
	}
	ab := chain.Bounds{Ceiling: chain.Grant{Audiences: c.Audiences}}
	if len(j.Resources) > 0 {
		ab.Parent = &chain.Grant{Audiences: j.Resources}
	}
	auds, err := ab.Audiences(req.Audiences)
	if err != nil {
		return nil, idjagWidening(oauth.CodeInvalidTarget, err, c)
	}
	claims := s.rootClaims(c, j.Subject, is.Issuer, scopes, auds, now, jwt.At(now.Add(s.rootTTL)), req.proof)
	pa, err := policyAssertion("id-jag", is.Issuer, j.Subject, j.Payload)
	if err != nil {
		return nil, err
	}
	policies, err := s.decideMint(ctx, c, claims, now, pa)
	if err != nil {
		return nil, err
	}
	if err := s.spendOnce(ctx, store.ReplayIDJAG, is.Issuer, j.JTI, j.IssuedAt, j.Expiry); err != nil {
		return nil, spendRefusal(err, oauth.CodeInvalidGrant)
	}
	return s.issueFrom(ctx, c, claims, GrantNameJWTBearer, "", policies, assertionRef("id-jag", is.Issuer, j.Subject, j.JTI, req.Assertion))
}

// idjagWidening words a scope or resource beyond the ID-JAG or the
// registration (RFC 6749 §5.2 invalid_scope, RFC 8707 invalid_target).
func idjagWidening(code string, err error, c *Registration) error {
	var w *chain.WideningError
	if !errors.As(err, &w) {
		return oauth.Wrap(err, code, "%v", err)
	}
	noun, bound, grant := "scope", "scopes", "scope"
	if w.Claim == "aud" {
		noun, bound, grant = "resource", "audiences", "resource"
	}
	switch {
	case w.Value == "":
		return oauth.New(code, "no %s the ID-JAG grants is within client %q's registered %s", noun, c.ID, bound)
	case w.ByParent:
		return oauth.New(code, "%s %q is not within the ID-JAG's %s", noun, jwt.Excerpt(w.Value), grant)
	}
	return oauth.New(code, "%s %q is beyond client %q's registered %s", noun, jwt.Excerpt(w.Value), c.ID, bound)
}

// policyAssertion is what policy sees of an assertion; claims that cannot
// become a Cedar record (policy.ParseClaims) refuse the request rather
// than be decided without.
func policyAssertion(kind, iss, sub string, payload []byte) (*policy.Assertion, error) {
	claims, err := policy.ParseClaims(payload)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidGrant, "%v", err)
	}
	return &policy.Assertion{Kind: kind, Issuer: iss, Subject: sub, Claims: claims}, nil
}
