package delegation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mandate-auth/mandate/store"
)

// RefusalWindow is how long repeated refusals of one kind for one client are
// counted together: the first of a window is audited (and logged) as it
// happens, the rest become one counted record when the window closes. A
// runaway agent's refusals cost the audit trail a record or two per
// window, not one per request, and none is lost from the count.
const RefusalWindow = time.Minute

// refusalKey is a kind of refusal: whose, for which grant, with which code,
// of which deviation kind ("" for none) and named by which policies. A
// refusal that may count toward a suspension (a foreign token, say) is
// never folded into another of the same OAuth code (an expired token), nor
// one forbid policy's denials into another's. Every part comes from a
// bounded set (registered clients, served grants or "other", OAuth codes,
// DeviationKinds, the loaded policies' ids), so the map is bounded too.
type refusalKey struct{ client, grant, code, kind, policies string }

// refusalBucket is the refusals of one kind in the current window.
type refusalBucket struct {
	start   time.Time // of the window, when its first refusal was audited
	last    time.Time
	pending int // refused since, not yet audited
	reason  string
	policy  []string
}

// refusals coalesces repeated refusals into counted audit records.
type refusals struct {
	mu sync.Mutex
	m  map[refusalKey]*refusalBucket
}

// admit reports whether a refusal of kind k at now opens a new window (and
// is audited as it happens); otherwise it is counted into the open window.
// A window that has closed is returned as flushed, for its summary record.
func (r *refusals) admit(k refusalKey, now time.Time, reason string, policies []string) (audit bool, flushed *refusalBucket) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[refusalKey]*refusalBucket{}
	}
	b := r.m[k]
	if b != nil && now.Sub(b.start) < RefusalWindow {
		b.pending++
		b.last, b.reason, b.policy = now, reason, policies
		return false, nil
	}
	if b != nil && b.pending > 0 {
		flushed = b
	}
	r.m[k] = &refusalBucket{start: now, last: now}
	return true, flushed
}

// due takes the windows closed at now (all of them when all is set) that
// counted refusals, for their summary records.
func (r *refusals) due(now time.Time, all bool) map[refusalKey]*refusalBucket {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[refusalKey]*refusalBucket{}
	for k, b := range r.m {
		if all || now.Sub(b.start) >= RefusalWindow {
			if b.pending > 0 {
				out[k] = b
			}
			delete(r.m, k)
		}
	}
	return out
}

// summary is the audit record of a window's counted refusals.
func summary(k refusalKey, b *refusalBucket) store.AuditEvent {
	return store.AuditEvent{Time: b.last, Type: store.AuditRefused, Client: k.client, Grant: k.grant, Code: k.code, Count: b.pending,
		Policies: b.policy,
		Reason: bounded(fmt.Sprintf("%d more refusal(s) of this kind from %s to %s; the last: %s",
			b.pending, b.start.UTC().Format(time.RFC3339), b.last.UTC().Format(time.RFC3339), b.reason))}
}

// FlushRefusals writes the counted records of every refusal window that has
// closed (all windows, when all is set: at shutdown), so the trail holds
// every refusal's count. serve calls it with the collection loop and before
// closing the store.
func (s *Service) FlushRefusals(ctx context.Context, all bool) {
	for k, b := range s.refused.due(s.now(), all) {
		s.audit(ctx, summary(k, b))
		s.log.LogAttrs(ctx, slog.LevelInfo, "token requests refused", slog.String("grant", k.grant), slog.String("client", k.client),
			slog.String("error", k.code), slog.Int("count", b.pending))
	}
}
