package delegation

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

// externalClaims are the claims Mandate reads from a trusted issuer's JWT. Times
// are floats because RFC 7519 NumericDate may carry fractions.
type externalClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  tokens.Audience `json:"aud"`
	Expiry    *float64        `json:"exp"`
	NotBefore *float64        `json:"nbf"`
	IssuedAt  *float64        `json:"iat"`
	MayAct    *tokens.Actor   `json:"may_act"`
}

// externalRoot mints a root token on behalf of an external subject, held by c.
// The external token's own scopes are not consulted (they belong to the IdP's
// namespace); the client's registration is the ceiling, as for client_credentials.
func (s *Service) externalRoot(ctx context.Context, c *Client, ti *TrustedIssuer, req TokenRequest, issuedType string) (*TokenResponse, error) {
	if req.ActorToken != "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token is not accepted with an external subject_token: mint the root first, then delegate")
	}
	payload, _, err := tokens.Verify(req.SubjectToken, ti.Keys, "")
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token from %s failed verification: %v", ti.Issuer, err)
	}
	var ext externalClaims
	if err := json.Unmarshal(payload, &ext); err != nil {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token claims are malformed")
	}
	now := s.now()
	switch {
	case ext.Issuer != ti.Issuer:
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token iss does not match its trusted issuer")
	case ext.Subject == "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token has no sub")
	case !ext.Audience.Contains(ti.Audience):
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token aud does not include %q", ti.Audience)
	case ext.Expiry == nil:
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token has no exp")
	case !unix(*ext.Expiry).After(now):
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token has expired")
	case ext.NotBefore != nil && unix(*ext.NotBefore).After(now.Add(externalLeeway)):
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token is not valid yet")
	case ext.IssuedAt != nil && unix(*ext.IssuedAt).After(now.Add(externalLeeway)):
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token was issued in the future")
	}
	if err := s.checkMayAct(ext.MayAct, c); err != nil {
		return nil, err
	}
	scopes, auds, err := attenuate(req, c, nil)
	if err != nil {
		return nil, err
	}
	exp := now.Add(s.rootTTL).Unix()
	if e := unix(*ext.Expiry).Unix(); e < exp {
		exp = e
	}
	if exp <= now.Unix() {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token has expired")
	}
	claims := &tokens.Claims{
		Issuer: s.issuer, Subject: ext.Subject, ClientID: c.ID,
		Audience: auds, Scope: chain.FormatScope(scopes),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp,
		Act: &tokens.Actor{Subject: c.ID}, Cnf: bindTo(req.proof),
	}
	policies, err := s.decide(ctx, s.policyRequest(c, c, policy.ActionMint, claims, nil, now))
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, "token_exchange", issuedType, policies)
}

// unix converts a NumericDate, clamped to [1970, year 5138] so absurd values
// compare as very old or very far in the future instead of overflowing.
func unix(f float64) time.Time {
	switch {
	case !(f > 0):
		return time.Unix(0, 0)
	case f > 1e11:
		return time.Unix(1e11, 0)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}
