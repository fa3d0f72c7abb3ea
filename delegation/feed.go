package delegation

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
)

// FeedGrace keeps a revocation in the feed this long after its token expires,
// so a verifier that tolerates clock skew (its exp leeway) still learns of it.
const FeedGrace = time.Minute

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

// Feed is one answer of the revocation feed. Reset means Revocations is the
// whole set of live revocations, replacing whatever the reader held.
type Feed struct {
	Revocations []FeedEntry `json:"revocations"`
	Cursor      string      `json:"cursor"`
	Reset       bool        `json:"reset"`
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
// cannot serve (malformed, another store's, ahead of this store), it returns
// every live revocation with Reset. With wait > 0 and nothing new, it holds
// until a revocation happens, the wait passes (capped at MaxFeedWait), ctx
// ends, or the service closes.
func (s *Service) RevocationFeed(ctx context.Context, c *Client, since string, wait time.Duration) (*Feed, error) {
	if !c.CanIntrospect() {
		return nil, oauth.New(oauth.CodeAccessDenied, "the revocation feed is for resource_server and admin clients")
	}
	if wait > MaxFeedWait {
		wait = MaxFeedWait
	}
	after, ok := s.parseCursor(since)
	var deadline <-chan time.Time
	if ok && wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		woken := s.revoked.wait() // before reading, so no revocation slips between
		revs, head, err := s.revLog.RevocationsAfter(ctx, after)
		if err != nil {
			return nil, oauth.Wrap(err, oauth.CodeServerError, "could not read the revocation log")
		}
		if ok && after > head {
			ok, after = false, 0 // a cursor from the future: this store was restored
			continue
		}
		feed := &Feed{Revocations: live(revs, s.now().Add(-FeedGrace)), Cursor: s.cursor(head), Reset: !ok}
		if !ok || len(feed.Revocations) > 0 || deadline == nil {
			return feed, nil
		}
		after = head
		select {
		case <-woken:
		case <-deadline:
			return feed, nil
		case <-ctx.Done():
			return feed, nil
		case <-s.closing:
			return feed, nil
		}
	}
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

// A cursor is "<store id>.<log sequence>": opaque to readers, and tied to the
// store that issued it.
func (s *Service) cursor(head uint64) string {
	return s.revLog.ID() + "." + strconv.FormatUint(head, 10)
}

func (s *Service) parseCursor(c string) (uint64, bool) {
	id, seq, found := strings.Cut(c, ".")
	if !found || id != s.revLog.ID() {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
