package delegation

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

// Revoke implements RFC 7009 for an authenticated client: it revokes the token
// and, through lineage, everything delegated from it, with one record. A client
// may revoke a token it holds or one descending from a token it holds; an admin
// may revoke any. Tokens that are invalid, foreign or expired (beyond
// FeedGrace) are accepted silently (RFC 7009 §2.2): nothing is left to revoke.
func (s *Service) Revoke(ctx context.Context, c *Client, token string) error {
	claims, err := s.keys.Verify(token)
	if err != nil || claims.Issuer != s.issuer {
		return nil
	}
	// A token past exp is refused everywhere, but verifiers allow clock skew
	// up to FeedGrace, so a revocation in that window is still recorded.
	if !s.now().Before(time.Unix(claims.Expiry, 0).Add(FeedGrace)) {
		return nil
	}
	if c.Role != RoleAdmin && claims.ClientID != c.ID {
		held, err := s.heldAncestor(ctx, claims, c.ID)
		if err != nil {
			return s.refuse(ctx, "revocation", c, err)
		}
		if !held {
			return s.refuse(ctx, "revocation", c, oauth.New(oauth.CodeUnauthorizedClient,
				"a client may revoke only tokens it holds or tokens delegated from one it holds"))
		}
	}
	_, err = s.revoke(ctx, claims.ID, time.Unix(claims.Expiry, 0), "revoked by "+c.ID+" (RFC 7009)", c.ID)
	return err
}

// heldAncestor reports whether id held any ancestor of the token.
func (s *Service) heldAncestor(ctx context.Context, c *tokens.Claims, id string) (bool, error) {
	for _, jti := range c.Lineage {
		rec, err := s.store.Token(ctx, jti)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, oauth.Wrap(err, oauth.CodeServerError, "could not read the token's lineage")
		}
		if rec.Holder == id {
			return true, nil
		}
	}
	return false, nil
}

// RevokeID revokes a token by jti, for operators; it cascades like Revoke. It
// returns store.ErrNotFound when no record of that jti exists.
func (s *Service) RevokeID(ctx context.Context, jti, reason, by string) (store.Revocation, error) {
	rec, err := s.store.Token(ctx, jti)
	if err != nil {
		return store.Revocation{}, err
	}
	return s.revoke(ctx, jti, rec.ExpiresAt, reason, by)
}

// revoke writes the single revocation record that makes jti and its whole
// subtree unusable; revoking twice keeps the first record.
func (s *Service) revoke(ctx context.Context, jti string, exp time.Time, reason, by string) (store.Revocation, error) {
	now := s.now()
	r, created, err := s.store.Revoke(ctx, store.Revocation{
		JTI: jti, ExpiresAt: exp.UTC(), RevokedAt: now.UTC(), Reason: reason, By: by,
	}, &store.AuditEvent{Time: now, Type: store.AuditRevoked, Client: by, JTI: jti, Reason: reason})
	if err != nil {
		return r, oauth.Wrap(err, oauth.CodeServerError, "could not record the revocation")
	}
	if created {
		s.revoked.notify()
		s.log.LogAttrs(ctx, slog.LevelInfo, "token revoked", slog.String("jti", jti),
			slog.String("by", by), slog.String("reason", reason))
	}
	return r, nil
}
