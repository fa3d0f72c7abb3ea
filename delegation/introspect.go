package delegation

import (
	"context"
	"encoding/json"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Introspection is an RFC 7662 response. Inactive tokens carry only Active.
type Introspection struct {
	Active    bool              `json:"active"`
	Issuer    string            `json:"iss,omitempty"`
	Subject   string            `json:"sub,omitempty"`
	SubIss    string            `json:"sub_iss,omitempty"`
	Audience  []string          `json:"aud"`
	ClientID  string            `json:"client_id,omitempty"`
	Scope     *string           `json:"scope,omitempty"`
	TokenType string            `json:"token_type,omitempty"`
	IssuedAt  int64             `json:"iat,omitempty"`
	NotBefore int64             `json:"nbf,omitempty"`
	Expiry    int64             `json:"exp,omitempty"`
	ID        string            `json:"jti,omitempty"`
	Act       *jwt.Actor        `json:"act,omitempty"`
	Lineage   []string          `json:"lineage"`
	Cnf       *jwt.Confirmation `json:"cnf,omitempty"`
}

// MarshalJSON renders an inactive token as {"active":false} and nothing else
// (RFC 7662 §2.2), and an active one with all its claims.
func (i Introspection) MarshalJSON() ([]byte, error) {
	if !i.Active {
		return []byte(`{"active":false}`), nil
	}
	type plain Introspection
	return json.Marshal(plain(i))
}

// CanIntrospect reports whether the client's role allows introspection.
func (c *Registration) CanIntrospect() bool {
	return c.Role == RoleResourceServer || c.Role == RoleAdmin
}

// Introspect implements RFC 7662 for resource_server and admin clients. A token
// that is malformed, foreign, expired, or revoked (itself or any ancestor) is
// inactive; an active one is described with its act chain and lineage. An
// identity token is inactive to a resource_server (RFC 7662 §2.2 lets the
// answer depend on who asks): it grants nothing at any resource server, and
// one that checked only "active" must not take it for access.
func (s *Service) Introspect(ctx context.Context, c *Registration, token string) (*Introspection, error) {
	if !c.CanIntrospect() {
		return nil, oauth.New(oauth.CodeAccessDenied, "introspection is for resource_server and admin clients")
	}
	claims, _, err := s.verifyPresented(ctx, token, "token", s.now())
	if err != nil {
		if e := oauth.As(err); e.Code == oauth.CodeServerError {
			return nil, e
		}
		return &Introspection{Active: false}, nil
	}
	if c.Role == RoleResourceServer && isIdentityToken(claims, s.issuer) {
		return &Introspection{Active: false}, nil
	}
	scope := claims.Scope
	lineage := claims.Lineage
	if lineage == nil {
		lineage = []string{}
	}
	aud := []string(claims.Audience)
	if aud == nil {
		aud = []string{}
	}
	return &Introspection{
		Active: true, Issuer: claims.Issuer, Subject: claims.Subject, SubIss: claims.SubjectIssuer, Audience: aud,
		ClientID: claims.ClientID, Scope: &scope, TokenType: tokenTypeOf(claims),
		IssuedAt: int64(claims.IssuedAt), NotBefore: int64(claims.NotBefore), Expiry: int64(claims.Expiry),
		ID: claims.ID, Act: claims.Act, Lineage: lineage, Cnf: claims.Cnf,
	}, nil
}
