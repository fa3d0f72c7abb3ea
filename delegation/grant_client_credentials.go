package delegation

import (
	"context"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// GrantNameClientCredentials is how a registration allows the
// client_credentials grant (RFC 6749 §4.4).
const GrantNameClientCredentials = "client_credentials"

// clientCredentialsGrant mints a root token for the client itself: sub and
// holder are the client, the scope and audience its registration's (or what
// it asks for within them).
type clientCredentialsGrant struct{ s *Service }

func (clientCredentialsGrant) bind(s *Service) GrantHandler { return clientCredentialsGrant{s} }

func (clientCredentialsGrant) Name() string      { return GrantNameClientCredentials }
func (clientCredentialsGrant) GrantType() string { return oauth.GrantClientCredentials }

func (g clientCredentialsGrant) HandleTokenRequest(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	scopes, auds, err := attenuate(req, c, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	claims := &jwt.Claims{
		Issuer: s.issuer, Subject: c.ID, ClientID: c.ID,
		Audience: auds, Scope: chain.FormatScope(scopes),
		IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: jwt.At(now.Add(s.rootTTL)),
		Cnf: bindTo(req.proof),
	}
	policies, err := s.decide(ctx, s.policyRequest(c, c, policy.ActionMint, claims, nil, now))
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, GrantNameClientCredentials, "", policies)
}
