package delegation

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// GrantNameClientCredentials is how a registration allows the
// client_credentials grant (RFC 6749 §4.4).
const GrantNameClientCredentials = "client_credentials"

// IdentityTokenTTL bounds an identity token's life.
const IdentityTokenTTL = 5 * time.Minute

// errBearerActor is the cause of refusing a scoped bearer token as an actor token.
var errBearerActor = errors.New("a bearer token with scopes or other audiences as actor_token")

// clientCredentialsGrant mints a root token for the client itself: sub and
// holder are the client, the scope and audience its registration's (or what
// it asks for within them). Asked for Mandate's own issuer as the audience,
// it mints an identity token instead: no scope, audience the issuer alone,
// at most IdentityTokenTTL, to any registered client whatever its grants —
// the one bearer token fit to name its holder as an actor (useless at every
// resource server: none has Mandate's issuer as its audience).
type clientCredentialsGrant struct{ s *Service }

// servesUnregistered: any registered client may get its identity token.
func (g clientCredentialsGrant) servesUnregistered(req *TokenRequest) bool {
	return g.s != nil && slices.Contains(req.Audiences, g.s.issuer)
}

// isIdentityToken reports whether c is an identity token of issuer: a root
// of one of its own clients (sub its client, sub_iss issuer, no actor), with
// no scope, Mandate's issuer as its only audience, and a short life.
func isIdentityToken(c *jwt.Claims, issuer string) bool {
	return c.Scope == "" && len(c.Lineage) == 0 && c.Act == nil && c.Subject == c.ClientID && c.SubjectIssuer == issuer &&
		len(c.Audience) == 1 && c.Audience[0] == issuer &&
		c.Expiry.Time().Sub(c.IssuedAt.Time()) <= IdentityTokenTTL
}

func (clientCredentialsGrant) bind(s *Service) GrantHandler { return clientCredentialsGrant{s} }

func (clientCredentialsGrant) Name() string      { return GrantNameClientCredentials }
func (clientCredentialsGrant) GrantType() string { return oauth.GrantClientCredentials }

func (g clientCredentialsGrant) HandleTokenRequest(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	if slices.Contains(req.Audiences, s.issuer) {
		return g.identity(ctx, c, req)
	}
	scopes, auds, err := attenuate(req, c, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	claims := s.rootClaims(c, c.ID, s.issuer, scopes, auds, now, jwt.At(now.Add(s.rootTTL)), req.proof)
	policies, err := s.decideMint(ctx, c, claims, now, nil)
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, c, claims, GrantNameClientCredentials, "", policies)
}

// identity mints c's identity token. It grants nothing, so no policy is
// asked (a mint policy must not keep an agent from being named an actor);
// it is recorded and audited like every token.
func (g clientCredentialsGrant) identity(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error) {
	s := g.s
	if req.Scope != "" {
		return nil, oauth.New(oauth.CodeInvalidScope, "an identity token (audience %s) carries no scope", s.issuer)
	}
	for _, a := range req.Audiences {
		if a != s.issuer {
			return nil, oauth.New(oauth.CodeInvalidTarget, "an identity token's only audience is Mandate's issuer %s", s.issuer)
		}
	}
	now := s.now()
	claims := s.rootClaims(c, c.ID, s.issuer, nil, []string{s.issuer}, now, jwt.At(now.Add(min(s.rootTTL, IdentityTokenTTL))), req.proof)
	return s.issue(ctx, c, claims, GrantNameClientCredentials, "", nil)
}
