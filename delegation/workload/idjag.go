package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// IDJAGType is the typ of an Identity Assertion JWT Authorization Grant
// (draft-ietf-oauth-identity-assertion-authz-grant).
const IDJAGType = "oauth-id-jag+jwt"

// DefaultIDJAGLifetime bounds an ID-JAG's exp - iat when its issuer names no
// max_lifetime: the grant is made for one token request.
const DefaultIDJAGLifetime = 5 * time.Minute

// IDJAGIssuer is an enterprise identity provider whose ID-JAGs Mandate
// accepts (id_jag_issuers): the user it names becomes the root's subject.
type IDJAGIssuer struct {
	// Issuer is the IdP's issuer URL (the ID-JAG's iss, and the root's sub_iss).
	Issuer string
	// Audience is Mandate's own issuer: an ID-JAG is made for one
	// authorization server.
	Audience    string
	MaxLifetime time.Duration
	Keys        tokens.KeyResolver
}

// Lifetime is the longest exp - iat accepted: MaxLifetime, or
// DefaultIDJAGLifetime when it is not set.
func (is *IDJAGIssuer) Lifetime() time.Duration {
	if is.MaxLifetime <= 0 {
		return DefaultIDJAGLifetime
	}
	return is.MaxLifetime
}

// IDJAG is a verified identity assertion grant.
type IDJAG struct {
	// Subject is the user; ClientID the client the IdP made it for.
	Subject, ClientID, JTI string
	Expiry                 time.Time
	// Scopes and Resources are what the IdP allowed (empty: not limited by
	// the grant).
	Scopes, Resources []string
	Claims            map[string]any
	// Issuer is the IdP (the root's sub_iss); IssuedAt when it was made;
	// Payload the JSON, for policy's context.
	Issuer   string
	IssuedAt time.Time
	Payload  []byte
}

// idjagClaims are the claims an ID-JAG adds to the registered ones.
type idjagClaims struct {
	jwt.Registered
	ClientID string          `json:"client_id"`
	Scope    string          `json:"scope"`
	Resource json.RawMessage `json:"resource"`
}

// Verify checks an ID-JAG presented by the authenticated client clientID:
// typ oauth-id-jag+jwt, a key of the IdP, iss, aud = Mandate's issuer,
// client_id = the client presenting it, exp, iat, sub and jti present, the
// lifetime, and a scope and resource that parse. Every refusal wraps
// ErrAssertion; the jti's single use is the grant's to enforce.
func (is *IDJAGIssuer) Verify(assertion, clientID string, now time.Time) (*IDJAG, error) {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: ID-JAG: %s", ErrAssertion, fmt.Sprintf(format, a...))
	}
	payload, _, err := tokens.Verify(assertion, is.Keys, IDJAGType)
	if err != nil {
		return nil, refuse("verification against the keys of %s failed: %v", is.Issuer, err)
	}
	if err := jwt.CheckMembers(payload); err != nil {
		return nil, refuse("%v", err)
	}
	var c idjagClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, refuse("claims: %v", err)
	}
	expect := chain.Expect{Issuer: is.Issuer, Audiences: []string{is.Audience}, Now: now, Leeway: Leeway, RequireIssuedAt: true}
	if err := expect.CheckRegistered(c.Registered); err != nil {
		return nil, refuse("%v", err)
	}
	switch {
	case c.Subject == "":
		return nil, refuse("has no sub")
	case c.ID == "":
		return nil, refuse("has no jti (an ID-JAG is single-use)")
	case c.ClientID == "":
		return nil, refuse("has no client_id")
	case c.ClientID != clientID:
		return nil, refuse("was made for client %q, not for %q", jwt.Excerpt(c.ClientID), clientID)
	}
	maxLife := is.Lifetime()
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life > maxLife {
		return nil, refuse("lives %s, longer than %s", life, maxLife)
	}
	out := &IDJAG{Subject: c.Subject, ClientID: c.ClientID, JTI: c.ID, Expiry: c.Expiry.Time(),
		Issuer: c.Issuer, IssuedAt: c.IssuedAt.Time(), Payload: payload}
	if c.Scope != "" {
		if out.Scopes, err = chain.ParseScope(c.Scope); err != nil {
			return nil, refuse("scope: %v", err)
		}
	}
	if len(c.Resource) > 0 && string(c.Resource) != "null" {
		var one string
		if json.Unmarshal(c.Resource, &one) == nil {
			out.Resources = []string{one}
		} else if json.Unmarshal(c.Resource, &out.Resources) != nil {
			return nil, refuse("resource is neither a string nor an array of strings")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	_ = dec.Decode(&out.Claims)
	return out, nil
}

// String names the grant without its token, for logs.
func (g *IDJAG) String() string {
	return fmt.Sprintf("ID-JAG jti=%s sub=%s client=%s scope=%q", g.JTI, g.Subject, g.ClientID, strings.Join(g.Scopes, " "))
}
