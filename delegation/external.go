package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// externalLeeway is how far an external token's nbf or iat may be ahead of
// Mandate's clock: the identity provider is another machine.
const externalLeeway = 30 * time.Second

// externalClaims are the claims Mandate reads from a trusted issuer's JWT.
type externalClaims struct {
	jwt.Registered
	MayAct *jwt.Actor `json:"may_act"`
}

// externalRefusal words a failed claim check of a trusted issuer's token.
func externalRefusal(err error, ti *TrustedIssuer) error {
	var ce *chain.ClaimError
	if !errors.As(err, &ce) {
		return oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token %v", err)
	}
	why := ce.Phrase()
	switch ce.Claim {
	case "iss":
		why = "iss does not match its trusted issuer"
	case "exp":
		if errors.Is(err, chain.ErrMalformedToken) {
			why = "has no exp"
		}
	case "iat":
		why = "was issued in the future"
	case "aud":
		why = fmt.Sprintf("aud does not include %q", ti.Audience)
	}
	return oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token %s", why)
}

// externalRoot mints a root token on behalf of an external subject, held by c.
// The external token's own scopes are not consulted (they belong to the IdP's
// namespace); the client's registration is the ceiling, as for client_credentials.
func (s *Service) externalRoot(ctx context.Context, c *Registration, ti *TrustedIssuer, req *TokenRequest, issuedType string) (*TokenResponse, error) {
	if req.ActorToken != "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "actor_token is not accepted with an external subject_token: mint the root first, then delegate")
	}
	payload, _, err := tokens.Verify(req.SubjectToken, ti.Keys, "")
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token from %s failed verification: %v", ti.Issuer, err)
	}
	var ext externalClaims
	if err := jwt.CheckMembers(payload); err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token claims are malformed: %v", err)
	}
	if err := json.Unmarshal(payload, &ext); err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "subject_token claims are malformed")
	}
	now := s.now()
	if ext.Subject == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token has no sub")
	}
	expect := chain.Expect{Issuer: ti.Issuer, Audiences: []string{ti.Audience}, Now: now, Leeway: externalLeeway}
	if err := expect.CheckRegistered(ext.Registered); err != nil {
		return nil, externalRefusal(err, ti)
	}
	if err := s.checkMayAct(ext.MayAct, c); err != nil {
		return nil, err
	}
	scopes, auds, err := attenuate(req, c, nil)
	if err != nil {
		return nil, err
	}
	claims := s.rootClaims(c, ext.Subject, ti.Issuer, scopes, auds, now, chain.Expiry(now, s.rootTTL, ext.Expiry), req.proof)
	if !claims.Expiry.Time().After(now) {
		return nil, oauth.New(oauth.CodeInvalidRequest, "subject_token has expired")
	}
	policies, err := s.decideMint(ctx, c, claims, now, nil)
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, GrantNameTokenExchange, issuedType, policies)
}
