package delegation

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mandate-auth/mandate/tokens"
)

// What other processes sharing the store change — replicas of one Mandate
// on one database — reaches this one through the composition root, which
// calls these when the store tells it (a notification) and on an interval
// (docs/design.md, "Several replicas"): the revocation feed's long polls
// wake, the key ring and the suspensions are read again.

// RevocationsChanged wakes the revocation feed's long polls, which read the
// log again from their cursors: call it when another process sharing the
// store revoked (or may have: notifications were lost).
func (s *Service) RevocationsChanged() { s.revoked.notify() }

// keyReloader is a key ring whose store other processes share.
type keyReloader interface {
	Reload(ctx context.Context, ks tokens.KeyStore) ([]string, error)
}

var _ keyReloader = (*tokens.KeyRing)(nil)

// keyStoreOf is where signing keys are stored: Config.KeyStore, or the store
// itself when it is one (nil when neither).
func (s *Service) keyStoreOf() tokens.KeyStore {
	if s.keyStore != nil {
		return s.keyStore
	}
	ks, _ := s.store.(tokens.KeyStore)
	return ks
}

// SyncKeys reads the signing keys again from the store other processes
// share: a key another replica rotated in is published here at once (and
// signs from its activation, later than any replica's next read); a key
// another withdrew by an emergency rotation verifies nothing here from now
// on — tokens verified with it before are forgotten, and the feed's long
// polls answer at once with it in revoked_keys.
func (s *Service) SyncKeys(ctx context.Context) error {
	kr, ok := s.keys.(keyReloader)
	ks := s.keyStoreOf()
	if !ok || ks == nil {
		return nil
	}
	withdrawn, err := kr.Reload(ctx, ks)
	if err != nil {
		return fmt.Errorf("sync signing keys: %w", err)
	}
	if len(withdrawn) > 0 {
		s.verified.Clear()
		s.keyEpoch.Add(1)
		s.revoked.notify()
		s.log.Warn("signing keys withdrawn by another replica", slog.Any("kids", withdrawn))
	}
	return nil
}

// SyncSuspensions reads the deviation suspensions again from the store
// other processes share, so an agent suspended through one replica gets no
// token from any (New reads them first: they outlive a restart).
func (s *Service) SyncSuspensions(ctx context.Context) error {
	held, err := s.store.Suspended(ctx, s.now())
	if err != nil {
		return fmt.Errorf("load suspensions: %w", err)
	}
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	for client, until := range held {
		if until.After(s.dev.suspended[client]) {
			s.dev.suspended[client] = until
		}
	}
	return nil
}
