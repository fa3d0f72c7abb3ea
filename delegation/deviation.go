package delegation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
)

// Deviation configures automatic revocation of an agent that keeps asking for
// what it may not have: at MaxDenials counted refusals within Window, its live
// tokens are revoked (cascading to everything delegated from them) and it gets
// no new token until Window has passed. Zero MaxDenials turns it off.
type Deviation struct {
	MaxDenials int
	Window     time.Duration
}

// Causes of policy refusals (matched through *policyDenial). Only
// errPolicyForbidden (a forbid policy named the request) counts as a
// deviation: Cedar's default deny and failing policies are what a broken or
// emptied policy set produces for everyone, and must not make Mandate revoke
// the whole fleet.
var (
	errPolicyDenied    = errors.New("denied by policy")
	errPolicyForbidden = errors.New("forbidden by policy")
)

// errSuspended refuses a request from a suspended client.
func errSuspended(c *Registration, until time.Time) error {
	return oauth.New(oauth.CodeInvalidRequest, "client %q is suspended until %s after repeated denied requests", c.ID, until.UTC().Format(time.RFC3339))
}

// deviations counts, per client, the refusals that signal an agent going
// beyond its mandate: policy denials and widening attempts (invalid_scope,
// invalid_target). Memory is bounded: at most MaxDenials timestamps per
// registered client.
type deviations struct {
	cfg       Deviation
	mu        sync.Mutex
	denials   map[string][]time.Time
	suspended map[string]time.Time
}

func newDeviations(cfg Deviation) *deviations {
	return &deviations{cfg: cfg, denials: map[string][]time.Time{}, suspended: map[string]time.Time{}}
}

// countsAsDeviation reports whether a refusal counts against the client: a
// forbid policy's denial, or an attempt to widen scope or audience (including
// malformed scope values, which is how widening is tried).
func countsAsDeviation(err error) bool {
	if errors.Is(err, errPolicyForbidden) {
		return true
	}
	e := oauth.As(err)
	return e.Code == oauth.CodeInvalidScope || e.Code == oauth.CodeInvalidTarget
}

// suspendedUntil reports whether client is suspended at now, and until when.
func (d *deviations) suspendedUntil(client string, now time.Time) (time.Time, bool) {
	if d.cfg.MaxDenials <= 0 {
		return time.Time{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.suspended[client]
	if ok && !now.Before(until) {
		delete(d.suspended, client)
		return time.Time{}, false
	}
	return until, ok
}

// record notes a counted refusal and reports whether it crossed the threshold
// (which also suspends the client and clears its count).
func (d *deviations) record(client string, now time.Time) (int, bool) {
	if d.cfg.MaxDenials <= 0 {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recent := d.denials[client][:0]
	for _, t := range d.denials[client] {
		if now.Sub(t) < d.cfg.Window {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	if len(recent) < d.cfg.MaxDenials {
		d.denials[client] = recent
		return len(recent), false
	}
	delete(d.denials, client)
	d.suspended[client] = now.Add(d.cfg.Window)
	return len(recent), true
}

// countDeviation counts a refusal of c's request against c and, at the
// threshold, suspends c and revokes every live token it holds, with the
// reason recorded on each revocation.
func (s *Service) countDeviation(ctx context.Context, c *Registration, err error) {
	if !countsAsDeviation(err) {
		return
	}
	now := s.now()
	n, tripped := s.dev.record(c.ID, now)
	if !tripped {
		return
	}
	reason := fmt.Sprintf("deviation: %d denied requests within %s", n, s.dev.cfg.Window)
	var held []*store.TokenRecord
	var herr error
	for attempt := 0; attempt < 3; attempt++ {
		if held, herr = s.store.HeldBy(ctx, c.ID, now); herr == nil {
			break
		}
	}
	if herr != nil {
		// The suspension still stands: the agent gets no new token.
		s.log.Error("deviation: could not list the agent's tokens; they are NOT revoked", slog.String("client", c.ID), slog.String("error", herr.Error()))
		return
	}
	revoked := 0
	for _, rec := range held {
		if _, rerr := s.recordRevocation(ctx, rec.JTI, rec.ExpiresAt, reason, "mandate/deviation"); rerr == nil {
			revoked++
		}
	}
	s.log.Warn("agent suspended for deviation", slog.String("client", c.ID), slog.String("reason", reason),
		slog.Int("tokens_revoked", revoked), slog.Time("until", now.Add(s.dev.cfg.Window)))
	s.audit(ctx, store.AuditEvent{Time: now, Type: store.AuditSuspended, Client: c.ID,
		Reason: fmt.Sprintf("%s; %d live tokens revoked; suspended until %s", reason, revoked, now.Add(s.dev.cfg.Window).UTC().Format(time.RFC3339))})
}
