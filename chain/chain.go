package chain

import (
	"time"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Chain is a checked Mandate token as a resource server sees it: who the work
// is for, who holds the token, through which agents it came, and what it
// grants. A Chain may be shared between requests: treat it as read-only.
type Chain struct {
	// JTI is the token's own id.
	JTI string
	// Subject is on whose behalf the work is done (the "sub" claim), and
	// SubjectIssuer who vouches for that name ("sub_iss": Mandate's issuer
	// for a client, an identity provider's for its user). Compare the pair,
	// never Subject alone.
	Subject       string
	SubjectIssuer string
	// Holder is the client presenting the token ("client_id").
	Holder string
	// Actors is the RFC 8693 actor path, current holder first; empty for a
	// client_credentials root, where the holder is the subject.
	Actors []string
	// Lineage is the ancestors' jtis, root first; empty for a root.
	Lineage []string
	// Root is the task's root jti (the first lineage entry, or JTI for a root).
	Root string
	// Depth is the number of ancestors.
	Depth int
	// Scopes and Audiences are what the token grants, and where.
	Scopes    []string
	Audiences []string
	IssuedAt  time.Time
	Expiry    time.Time
	// JKT is the thumbprint of the key the token is bound to (RFC 9449), or
	// empty for a bearer token.
	JKT string
}

// newChain builds a Chain from checked claims whose scope already parsed.
func newChain(c *jwt.Claims, scopes []string) *Chain {
	lineage := c.Lineage
	if lineage == nil {
		lineage = []string{}
	}
	return &Chain{
		JTI: c.ID, Subject: c.Subject, SubjectIssuer: c.SubjectIssuer, Holder: c.ClientID, Actors: c.Act.Path(),
		Lineage: lineage, Root: c.Root(), Depth: len(lineage), Scopes: scopes,
		Audiences: c.Audience, IssuedAt: c.IssuedAt.Time(), Expiry: c.Expiry.Time(),
		JKT: c.JKT(),
	}
}

// Ancestry is the token's lineage followed by its own jti: every jti whose
// revocation cuts it off.
func (c *Chain) Ancestry() []string {
	return append(c.Lineage[:len(c.Lineage):len(c.Lineage)], c.JTI)
}

// HasScope reports whether the token grants scope (wildcard-aware: a token
// with "db:read:*" has "db:read:orders").
func (c *Chain) HasScope(scope string) bool { return CoveredBy(c.Scopes, scope) }

// Covers reports whether the token grants every one of scopes.
func (c *Chain) Covers(scopes ...string) bool {
	_, missing := Uncovered(c.Scopes, scopes)
	return !missing
}
