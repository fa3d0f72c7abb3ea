package delegation

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Revoke implements RFC 7009 for an authenticated client: it revokes the token
// and, through lineage, everything delegated from it, with one record. A client
// may revoke a token it holds or one descending from a token it holds; an admin
// may revoke any. Tokens that are invalid, foreign or expired (beyond
// chain.RevocationGrace) are accepted silently (RFC 7009 §2.2): nothing is left to revoke.
func (s *Service) Revoke(ctx context.Context, c *Registration, token string) error {
	claims, err := s.keys.Verify(token)
	if err != nil || claims.Issuer != s.issuer {
		return nil
	}
	// A token past exp is refused everywhere, but verifiers allow clock skew
	// up to chain.RevocationGrace, so a revocation in that window is still recorded.
	if !s.now().Before(claims.Expiry.Time().Add(chain.RevocationGrace)) {
		return nil
	}
	// Whose it is comes first: the answer to another client's token is the
	// same refusal whether or not it is revoked already, so revocation
	// tells no one the state of a token they do not hold. Trying is a
	// deviation (foreign_token): the client shows a token not its own.
	if c.Role != RoleAdmin && claims.ClientID != c.ID {
		held, err := s.heldAncestor(ctx, claims, c.ID)
		if err != nil {
			return s.refuse(ctx, "revocation", c, err)
		}
		if !held {
			err := oauth.Wrap(errForeignToken, oauth.CodeUnauthorizedClient,
				"a client may revoke only tokens it holds or tokens delegated from one it holds")
			s.countDeviation(ctx, c, err)
			return s.refuse(ctx, "revocation", c, err)
		}
	}
	// Revoking what is revoked (the token or an ancestor) writes nothing:
	// a runaway loop revoking its task over and over costs reads only.
	if rev, err := s.store.FirstRevoked(ctx, append(claims.Lineage[:len(claims.Lineage):len(claims.Lineage)], claims.ID)...); err != nil {
		return oauth.Wrap(err, oauth.CodeServerError, "could not check revocation")
	} else if rev != nil {
		return nil
	}
	_, err = s.recordRevocation(ctx, claims.ID, claims.Expiry.Time(), "revoked by "+c.ID+" (RFC 7009)", c.ID)
	return err
}

// heldAncestor reports whether id held any ancestor of the token.
func (s *Service) heldAncestor(ctx context.Context, c *jwt.Claims, id string) (bool, error) {
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

// MaxConcurrentRevocations bounds the revocation writes in progress at
// once, whoever asks (a client, an operator, the deviation); the rest wait
// their turn, so the kill switch stays available without becoming a way to
// saturate the store. A slot is held for one write only and never while
// waiting for another, so an operator revoking many tokens takes them one
// after the other and cannot deadlock with anyone.
const MaxConcurrentRevocations = 16

// revocationSlot waits for one of MaxConcurrentRevocations slots (or ctx's end).
func (s *Service) revocationSlot(ctx context.Context) (func(), error) {
	select {
	case s.revSlots <- struct{}{}:
		return func() { <-s.revSlots }, nil
	case <-ctx.Done():
		return nil, oauth.Wrap(ctx.Err(), oauth.CodeServerError, "revocation interrupted while waiting its turn")
	}
}

// recordRevocation writes the single revocation record that makes jti and
// its whole subtree unusable; revoking twice keeps the first record. Every
// revocation goes through it: a client's (Revoke), an operator's
// (AdminRevoke) and the deviation's.
func (s *Service) recordRevocation(ctx context.Context, jti string, exp time.Time, reason, by string) (store.Revocation, error) {
	if rev, err := s.store.FirstRevoked(ctx, jti); err != nil {
		return store.Revocation{}, oauth.Wrap(err, oauth.CodeServerError, "could not check revocation")
	} else if rev != nil {
		return *rev, nil // already revoked: nothing to write
	}
	release, err := s.revocationSlot(ctx)
	if err != nil {
		return store.Revocation{}, err
	}
	defer release()
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
