package chain

import (
	"errors"
	"fmt"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// ErrMalformedChain reports a token whose lineage or actor chain is not one that
// Mandate could have issued.
var ErrMalformedChain = errors.New("malformed delegation chain")

// CheckStructure verifies the invariants every Mandate token's chain satisfies,
// whatever its history:
//   - jti, sub, sub_iss and client_id are present;
//   - lineage has at most maxDepth entries, none empty, none repeated, and does
//     not contain the token's own jti;
//   - when act is present its outermost sub is the holder (client_id); when it
//     is absent the holder is the subject (a client_credentials root or a
//     down-scoped copy of one);
//   - the actor chain is no longer than the lineage plus one (each holder change
//     adds one link and one ancestor; an external root starts with one link).
//
// maxDepth <= 0 skips the depth bound.
func CheckStructure(c *jwt.Claims, maxDepth int) error {
	if c.ID == "" || c.Subject == "" || c.ClientID == "" {
		return fmt.Errorf("%w: jti, sub and client_id are required", ErrMalformedChain)
	}
	if c.SubjectIssuer == "" {
		return fmt.Errorf("%w: sub_iss is required (the issuer of sub)", ErrMalformedChain)
	}
	if c.Cnf != nil && c.Cnf.JKT == "" {
		// Only key thumbprints (DPoP) are understood; a confirmation this code
		// cannot check must not let the token pass as a bearer token.
		return fmt.Errorf("%w: cnf without jkt", ErrMalformedChain)
	}
	if maxDepth > 0 && len(c.Lineage) > maxDepth {
		return fmt.Errorf("%w: lineage of %d exceeds max depth %d", ErrMalformedChain, len(c.Lineage), maxDepth)
	}
	seen := make(map[string]struct{}, len(c.Lineage)+1)
	seen[c.ID] = struct{}{}
	for _, j := range c.Lineage {
		if j == "" {
			return fmt.Errorf("%w: empty jti in lineage", ErrMalformedChain)
		}
		if _, dup := seen[j]; dup {
			return fmt.Errorf("%w: jti repeated in lineage", ErrMalformedChain)
		}
		seen[j] = struct{}{}
	}
	if c.Act == nil {
		if c.ClientID != c.Subject {
			return fmt.Errorf("%w: no act claim but holder %q is not the subject", ErrMalformedChain, jwt.Excerpt(c.ClientID))
		}
		return nil
	}
	if c.Act.Subject != c.ClientID {
		return fmt.Errorf("%w: current actor %q is not the holder %q", ErrMalformedChain, jwt.Excerpt(c.Act.Subject), jwt.Excerpt(c.ClientID))
	}
	if d := c.Act.Depth(); d > len(c.Lineage)+1 {
		return fmt.Errorf("%w: %d actors for %d ancestors", ErrMalformedChain, d, len(c.Lineage))
	}
	for a := c.Act; a != nil; a = a.Act {
		if a.Subject == "" {
			return fmt.Errorf("%w: actor without sub", ErrMalformedChain)
		}
	}
	return nil
}
