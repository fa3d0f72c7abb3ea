package delegation

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// ownLeeway is how far the nbf or iat of a token Mandate is shown may be
// ahead of its clock (another replica's clock, a token made by a client):
// clock skew between machines. Mandate allows none past exp.
const ownLeeway = 5 * time.Second

// expectOwn is what the token endpoint requires of a Mandate token it is
// shown: the chain rules (package chain), its own issuer, no audience (any
// of Mandate's tokens may be exchanged), no leeway past exp.
func (s *Service) expectOwn(now time.Time) chain.Expect {
	return chain.Expect{Issuer: s.issuer, Now: now, Leeway: ownLeeway, MaxDepth: s.maxDepth}
}

// presented is a token verified once: its claims and the key that signed it.
// A cached one is reused only while that key still verifies (an emergency
// rotation ends every verification made with the withdrawn key).
type presented struct {
	claims *jwt.Claims
	kid    string
}

// verifyPresented verifies a Mandate token presented in a request (a subject
// or actor token, or one to introspect): signature and type, then the chain
// rules (structure, scope, issuer, time), then that neither it nor any
// ancestor is revoked, and that it is the very token recorded at issuance.
// param names it in error descriptions ("subject_token has expired"). It
// also returns the kid of the key that signed it.
func (s *Service) verifyPresented(ctx context.Context, token, param string, now time.Time) (*jwt.Claims, string, error) {
	// What the signature, the chain rules and the issuance record proved
	// about a token does not change; a token shown again skips them. Expiry
	// and revocation are checked every time.
	expect := s.expectOwn(now)
	var c *jwt.Claims
	var kid string
	p, seen := s.verified.Get(token, now)
	if seen {
		if _, ok := s.keys.ResolveKey(p.kid); !ok {
			seen = false // its key was withdrawn: verify again (and fail)
		}
	}
	if seen {
		c, kid = p.claims, p.kid
		if err := expect.CheckExpiry(c.Expiry.Time()); err != nil {
			return nil, "", claimRefusal(param, err)
		}
	} else {
		payload, hdr, err := tokens.Verify(token, s.keys, tokens.TypeAccessToken)
		if err == nil {
			c, err = jwt.Parse(payload)
		}
		if err != nil {
			return nil, "", oauth.Wrap(err, oauth.CodeInvalidRequest, "%s is not a valid Mandate token: %v", param, err)
		}
		kid = hdr.KeyID
		if _, err := expect.Check(c); err != nil {
			return nil, "", claimRefusal(param, err)
		}
	}
	rev, err := s.store.FirstRevoked(ctx, append(c.Lineage[:len(c.Lineage):len(c.Lineage)], c.ID)...)
	if err != nil {
		return nil, "", oauth.Wrap(err, oauth.CodeServerError, "could not check revocation")
	}
	if rev != nil {
		if rev.JTI == c.ID {
			return nil, "", oauth.New(oauth.CodeInvalidRequest, "%s has been revoked", param)
		}
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "%s descends from revoked token %s", param, rev.JTI)
	}
	if seen {
		return c, kid, nil
	}
	// A second lock behind the signature: the token must be the very one
	// recorded at issuance. A token signed with Mandate's key but not issued
	// by it (a leaked key, a bug) cannot drop an actor or a revoked ancestor.
	rec, err := s.store.Token(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "%s was not issued by this server (no record of %s)", param, c.ID)
	}
	if err != nil {
		return nil, "", oauth.Wrap(err, oauth.CodeServerError, "could not read the token record")
	}
	if field := recordMismatch(rec, c); field != "" {
		s.log.Error("token signed with Mandate's key differs from its issuance record", slog.String("jti", c.ID), slog.String("field", field))
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "%s does not match the record of its issuance (%s differs)", param, field)
	}
	s.verified.Put(token, &presented{c, kid}, c.Expiry.Time(), now)
	return c, kid, nil
}

// claimRefusal words a failed chain check of a presented token: a claim
// ("subject_token has expired"), or the chain's structure or scope
// ("subject_token has a malformed delegation chain: ...").
func claimRefusal(param string, err error) error {
	var ce *chain.ClaimError
	if errors.As(err, &ce) {
		return oauth.Wrap(err, oauth.CodeInvalidRequest, "%s %s", param, ce.Phrase())
	}
	return oauth.Wrap(err, oauth.CodeInvalidRequest, "%s has a %v", param, err)
}

// recordMismatch names the first claim of c that differs from the record
// written when it was issued ("" when it is the token issued).
func recordMismatch(rec *store.TokenRecord, c *jwt.Claims) string {
	switch {
	case rec.Holder != c.ClientID:
		return "client_id"
	case rec.Subject != c.Subject:
		return "sub"
	case rec.SubIss != c.SubjectIssuer:
		return "sub_iss"
	case !slices.Equal(rec.Lineage, c.Lineage):
		return "lineage"
	case !slices.Equal(rec.Act.Path(), c.Act.Path()):
		return "act"
	case rec.Scope != c.Scope:
		return "scope"
	case !slices.Equal(rec.Audience, []string(c.Audience)):
		return "aud"
	case rec.ExpiresAt.Unix() != int64(c.Expiry):
		return "exp"
	case rec.JKT != c.JKT():
		return "cnf"
	}
	return ""
}
