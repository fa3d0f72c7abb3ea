package delegation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
)

// DefaultFeedPageSize bounds the entries of one feed answer (about 370 KB of
// JSON); a reader with more to catch up on gets More and asks again at once.
const DefaultFeedPageSize = 5000

// MaxFeedWait caps a long poll on the revocation feed; it stays below the HTTP
// server's write timeout so a held request always completes.
const MaxFeedWait = 25 * time.Second

// FeedEntry names one revoked token (never its descendants: verifiers find
// those through lineage). Times are Unix seconds.
type FeedEntry struct {
	JTI       string `json:"jti"`
	Exp       int64  `json:"exp"`
	RevokedAt int64  `json:"revoked_at"`
}

// Feed is one answer of the revocation feed. Reset means the reader's cursor
// could not be served and this answer starts the live set from the beginning;
// More means another page follows at once (ask again with Cursor).
type Feed struct {
	Revocations []FeedEntry `json:"revocations"`
	Cursor      string      `json:"cursor"`
	Reset       bool        `json:"reset"`
	More        bool        `json:"more"`
	// RevokedKeys are the kids of signing keys withdrawn by an emergency
	// rotation: verifiers drop them at once, rather than at their next JWKS
	// refresh.
	RevokedKeys []string `json:"revoked_keys"`
}

// broadcast wakes every waiter at once by closing a channel; waiters hold no
// goroutine or timer of their own beyond their request's, and nothing is
// allocated while nobody waits.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel that is closed by the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// Close releases every long poll at once (they answer with what they have) and
// makes later ones return immediately; call it when the server shuts down.
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// RevocationFeed answers a resource server's feed request. With a cursor this
// store issued, it returns the revocations since then; with none, or one it
// cannot serve (malformed, another store's, or not matching this store's log
// at its position, as after a restore from backup), it starts from the
// beginning with Reset. An answer holds at most Config.FeedPageSize entries. With
// wait > 0 and nothing new, it holds until a revocation happens, the wait
// passes (capped at MaxFeedWait), ctx ends, or the service closes; at the
// wait's end it reads the log once more, so an empty answer always comes
// from a read that succeeded then.
func (s *Service) RevocationFeed(ctx context.Context, c *Registration, since string, wait time.Duration) (*Feed, error) {
	if !c.CanIntrospect() {
		return nil, oauth.New(oauth.CodeAccessDenied, "the revocation feed is for resource_server and admin clients")
	}
	if wait > MaxFeedWait {
		wait = MaxFeedWait
	}
	after, ok, err := s.parseCursor(ctx, since)
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeServerError, "could not read the revocation log")
	}
	var deadline <-chan time.Time
	if ok && wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
		s.feedWaiters.Add(1)
		defer s.feedWaiters.Add(-1)
	}
	epoch := s.keyEpoch.Load()
	for {
		woken := s.revoked.wait() // before reading, so no revocation slips between
		revs, next, head, err := s.revLog.RevocationsAfter(ctx, after, s.feedPage)
		if err != nil {
			return nil, oauth.Wrap(err, oauth.CodeServerError, "could not read the revocation log")
		}
		if ok && after > head {
			ok, after = false, 0 // a cursor from the future: this store was restored
			continue
		}
		cursor, err := s.cursorAt(ctx, next, revs)
		if err != nil {
			return nil, oauth.Wrap(err, oauth.CodeServerError, "could not read the revocation log")
		}
		feed := &Feed{Revocations: live(revs, s.now().Add(-chain.RevocationGrace)), Cursor: cursor, Reset: !ok, More: next < head,
			RevokedKeys: s.revokedKeys()}
		if !ok || len(feed.Revocations) > 0 || feed.More || deadline == nil || s.keyEpoch.Load() != epoch {
			return feed, nil
		}
		after = next
		select {
		case <-woken:
		case <-deadline:
			// Read once more before answering "nothing new": a store that
			// went away during the wait answers an error (503), never an
			// empty page it could not vouch for.
			deadline = nil
		case <-ctx.Done():
			return feed, nil
		case <-s.closing:
			return feed, nil
		}
	}
}

// FeedSubscribers is the number of revocation-feed requests open now (long
// polls waiting for a revocation), for monitoring.
func (s *Service) FeedSubscribers() int64 { return s.feedWaiters.Load() }

// VerifiedCacheStats is the size of the cache of tokens verified at the
// token endpoint, in entries and bytes, for monitoring.
func (s *Service) VerifiedCacheStats() (entries int, bytes int64) {
	return s.verified.Len(), s.verified.Bytes()
}

// live keeps the entries whose token expired after cutoff.
func live(revs []store.Revocation, cutoff time.Time) []FeedEntry {
	out := make([]FeedEntry, 0, len(revs))
	for _, r := range revs {
		if r.ExpiresAt.After(cutoff) {
			out = append(out, FeedEntry{JTI: r.JTI, Exp: r.ExpiresAt.Unix(), RevokedAt: r.RevokedAt.Unix()})
		}
	}
	return out
}

// A cursor is "<store id>.<seq>.<tag>": the position in this store's log and
// a tag of the jti logged there, so a cursor is only honoured by the store,
// and the history, that issued it. A restored backup that has logged other
// revocations at that position, or a position whose entry has been
// collected, gets a reset instead of a silent gap.
func (s *Service) cursorAt(ctx context.Context, seq uint64, revs []store.Revocation) (string, error) {
	if seq == 0 {
		return s.revLog.ID() + ".0", nil
	}
	var jti string
	if n := len(revs); n > 0 && revs[n-1].Seq == seq {
		jti = revs[n-1].JTI
	} else {
		var err error
		if jti, _, err = s.revLog.RevocationAt(ctx, seq); err != nil {
			return "", err
		}
	}
	return s.revLog.ID() + "." + strconv.FormatUint(seq, 10) + "." + cursorTag(jti), nil
}

func cursorTag(jti string) string {
	if jti == "" {
		return ""
	}
	h := sha256.Sum256([]byte(jti))
	return hex.EncodeToString(h[:6])
}

// parseCursor returns the log position of a cursor this store can serve, and
// false for any other.
func (s *Service) parseCursor(ctx context.Context, c string) (uint64, bool, error) {
	parts := strings.Split(c, ".")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != s.revLog.ID() {
		return 0, false, nil
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return 0, false, nil
	}
	if seq == 0 {
		return 0, len(parts) == 2, nil
	}
	if len(parts) != 3 || parts[2] == "" {
		return 0, false, nil
	}
	jti, found, err := s.revLog.RevocationAt(ctx, seq)
	if err != nil || !found {
		return 0, false, err
	}
	return seq, cursorTag(jti) == parts[2], nil
}
