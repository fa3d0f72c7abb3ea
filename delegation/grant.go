package delegation

import (
	"context"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// GrantHandler decides the token requests of one grant type. Each grant is
// one file (grant_*.go) holding its handler type, and one line in
// grantRegistry;
// the token endpoint's dispatch, the metadata's grant_types_supported, the
// metric labels and the validation of registrations' grants all read the
// registry, so adding a grant touches nothing else.
type GrantHandler interface {
	// Name is how a registration's grants list allows the grant
	// ("client_credentials", "token_exchange"), and its metric label.
	Name() string
	// GrantType is the grant_type parameter it answers (RFC 6749 §4.4,
	// RFC 8693 §2.1).
	GrantType() string
	// HandleTokenRequest issues a token to an authenticated client that may
	// use the grant, or refuses with an *oauth.Error.
	HandleTokenRequest(ctx context.Context, c *Registration, req *TokenRequest) (*TokenResponse, error)
}

// grantRegistry lists every grant the token endpoint serves, in the order
// the metadata advertises them: zero values, which name their grant, and
// which New binds to the service.
var grantRegistry = []registeredGrant{
	clientCredentialsGrant{},
	tokenExchangeGrant{},
	jwtBearerGrant{},
}

// registeredGrant is a grant as the registry holds it.
type registeredGrant interface {
	GrantHandler
	bind(s *Service) GrantHandler
}

// GrantInfo names a grant as registrations (Name) and the wire (Type) spell it.
type GrantInfo struct {
	Name string
	Type string
}

// grantInfos is the registry's names, read once.
var grantInfos = func() []GrantInfo {
	out := make([]GrantInfo, 0, len(grantRegistry))
	for _, g := range grantRegistry {
		out = append(out, GrantInfo{Name: g.Name(), Type: g.GrantType()})
	}
	return out
}()

// Grants lists the grants the token endpoint serves, for metadata,
// configuration checks and metrics.
func Grants() []GrantInfo { return append([]GrantInfo(nil), grantInfos...) }

// GrantNames lists the names registrations may give in their grants.
func GrantNames() []string {
	out := make([]string, 0, len(grantInfos))
	for _, g := range grantInfos {
		out = append(out, g.Name)
	}
	return out
}

// GrantName is the name of the grant answering grantType, and false when the
// token endpoint serves no such grant.
func GrantName(grantType string) (string, bool) {
	for _, g := range grantInfos {
		if g.Type == grantType {
			return g.Name, true
		}
	}
	return "", false
}

func grantByName(name string) (GrantInfo, bool) {
	for _, g := range grantInfos {
		if g.Name == name {
			return g, true
		}
	}
	return GrantInfo{}, false
}

// servesUnregistered reports whether h serves req to a client not
// registered for its grant (client_credentials' identity tokens).
func servesUnregistered(h GrantHandler, req *TokenRequest) bool {
	o, ok := h.(interface{ servesUnregistered(*TokenRequest) bool })
	return ok && o.servesUnregistered(req)
}

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
	// Assertion is the JWT bearer grant's assertion (RFC 7523 §2.1): a
	// workload token or an ID-JAG.
	Assertion string
	// DPoP is the request's DPoP proof (RFC 9449), if any, and DPoPURL the
	// token endpoint's URL it must be made for.
	DPoP    string
	DPoPURL string

	proof *tokens.DPoPProof // set once DPoP has verified
}

// TokenResponse is a successful token endpoint answer (RFC 6749 §5.1, RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
}

// Token decides a token request from an authenticated client: the checks
// every grant shares (suspension, the DPoP proof, the grant's registration),
// then the grant's handler.
func (s *Service) Token(ctx context.Context, c *Registration, req TokenRequest) (*TokenResponse, error) {
	grant := jwt.Excerpt(req.GrantType) // what the audit and logs record
	if until, ok := s.dev.suspendedUntil(c.ID, s.now()); ok {
		return nil, s.refuse(ctx, grant, c, errSuspended(c, until))
	}
	if req.GrantType == "" {
		return nil, s.refuse(ctx, "", c, oauth.New(oauth.CodeInvalidRequest, "grant_type is required"))
	}
	h, ok := s.grants[req.GrantType]
	if !ok {
		return nil, s.refuse(ctx, grant, c, oauth.New(oauth.CodeUnsupportedGrantType, "grant_type %q is not supported", grant))
	}
	if !c.Can(h.Name()) && !servesUnregistered(h, &req) {
		return nil, s.refuse(ctx, grant, c, oauth.New(oauth.CodeUnauthorizedClient, "client %q may not use the %s grant", c.ID, h.Name()))
	}
	// A proof is checked, and its jti remembered, only now: the client is
	// authenticated and admitted, the request is one it may make, and the
	// jti goes into the client's own share of the replay cache, so no one
	// can fill another client's.
	if req.DPoP != "" {
		p, err := tokens.VerifyDPoP(req.DPoP, tokens.DPoPCheck{Method: "POST", URL: req.DPoPURL, Now: s.now(), NotBefore: s.started}, s.proofCache(c.ID))
		if err != nil {
			return nil, s.refuse(ctx, grant, c, oauth.Wrap(err, oauth.CodeInvalidDPoPProof, "%v", err))
		}
		// This process's cache caught a replay here; the store other
		// replicas share catches one anywhere.
		if first, err := s.firstUse(ctx, store.ReplayDPoP, p.Expires, c.ID, p.JKT, p.JTI); err != nil {
			return nil, s.refuse(ctx, grant, c, err)
		} else if !first {
			return nil, s.refuse(ctx, grant, c, oauth.New(oauth.CodeInvalidDPoPProof, "%v: proof replayed (at another replica)", tokens.ErrDPoP))
		}
		req.proof = p
	}
	resp, err := h.HandleTokenRequest(ctx, c, &req)
	if err != nil {
		s.countDeviation(ctx, c, err)
		return nil, s.refuse(ctx, grant, c, err)
	}
	return resp, nil
}

// rootClaims is a root token held by c on behalf of sub (a subject of
// subIss), granting scopes to auds from now until exp, bound to the key of
// the request's proof. When the subject is someone else's (an identity
// provider's user), act names c: it acts for the subject.
func (s *Service) rootClaims(c *Registration, sub, subIss string, scopes, auds []string, now time.Time, exp jwt.NumericDate, proof *tokens.DPoPProof) *jwt.Claims {
	claims := &jwt.Claims{
		Issuer: s.issuer, Subject: sub, SubjectIssuer: subIss, ClientID: c.ID,
		Audience: auds, Scope: chain.FormatScope(scopes),
		IssuedAt: jwt.At(now), NotBefore: jwt.At(now), Expiry: exp,
		Cnf: bindTo(proof),
	}
	if sub != c.ID || subIss != s.issuer {
		claims.Act = &jwt.Actor{Subject: c.ID}
	}
	return claims
}

// decideMint asks policy whether c may mint the root claims describe;
// assertion, when the root comes from one, is in the context.
func (s *Service) decideMint(ctx context.Context, c *Registration, claims *jwt.Claims, now time.Time, assertion *policy.Assertion) ([]string, error) {
	r := s.policyRequest(c, c, policy.ActionMint, claims, nil, now)
	r.Assertion = assertion
	return s.decide(ctx, r)
}
