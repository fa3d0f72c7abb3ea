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
	// Count names the kinds of refusal that count (DefaultDeviationKinds
	// when empty): an operator may leave out a kind that would count
	// refusals his own fleet makes in good faith, or add depth.
	Count []string
}

// The kinds of refusal that can count as deviation. None is a refusal
// everyone gets when the operator errs: Cedar's default deny and a policy
// that fails to evaluate never count, nor do malformed requests.
const (
	// DeviationWidening: asking for a scope or an audience beyond what the
	// parent or the registration grants (invalid_scope, invalid_target).
	DeviationWidening = "widening"
	// DeviationForbidden: a request a forbid policy names.
	DeviationForbidden = "forbidden"
	// DeviationForeignToken: presenting a token held by another client (as
	// subject_token, as a scoped bearer actor_token, as another owner's
	// ephemeral agent token) or revoking one.
	DeviationForeignToken = "foreign_token"
	// DeviationDepth: delegating beyond max_depth. It counts only when
	// named in Deviation.Count: a max_depth set one too low (an operator's
	// typo) is hit in good faith on every task, and counting it would
	// suspend the whole fleet.
	DeviationDepth = "depth"
	// DeviationMayAct: naming an actor the subject token's may_act excludes.
	DeviationMayAct = "may_act"
)

// DeviationKinds lists every kind Deviation.Count may name.
var DeviationKinds = []string{DeviationWidening, DeviationForbidden, DeviationForeignToken, DeviationDepth, DeviationMayAct}

// DefaultDeviationKinds are the kinds that count when Deviation.Count is
// empty: every kind but depth.
var DefaultDeviationKinds = []string{DeviationWidening, DeviationForbidden, DeviationForeignToken, DeviationMayAct}

// Causes of refusals that deviation can count, wrapped into their OAuth
// errors.
var (
	errForeignToken = errors.New("a token held by another client")
	errTooDeep      = errors.New("delegation beyond max_depth")
	errMayAct       = errors.New("an actor may_act excludes")
)

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
	kinds     map[string]bool // the kinds that count
	mu        sync.Mutex
	denials   map[string][]time.Time
	suspended map[string]time.Time
}

func newDeviations(cfg Deviation) *deviations {
	kinds := map[string]bool{}
	count := cfg.Count
	if len(count) == 0 {
		count = DefaultDeviationKinds
	}
	for _, k := range count {
		kinds[k] = true
	}
	return &deviations{cfg: cfg, kinds: kinds, denials: map[string][]time.Time{}, suspended: map[string]time.Time{}}
}

// deviationKind names the kind of a refusal, or "" when it never counts.
func deviationKind(err error) string {
	switch {
	case errors.Is(err, errPolicyForbidden):
		return DeviationForbidden
	case errors.Is(err, errForeignToken), errors.Is(err, errBearerActor):
		return DeviationForeignToken
	case errors.Is(err, errTooDeep):
		return DeviationDepth
	case errors.Is(err, errMayAct):
		return DeviationMayAct
	}
	// Widening, including malformed scope values, which is how it is tried.
	if e := oauth.As(err); e.Code == oauth.CodeInvalidScope || e.Code == oauth.CodeInvalidTarget {
		return DeviationWidening
	}
	return ""
}

// counts reports whether a refusal counts against the client, by its kind.
func (d *deviations) counts(err error) bool {
	k := deviationKind(err)
	return k != "" && d.kinds[k]
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
	if !s.dev.counts(err) {
		return
	}
	now := s.now()
	n, tripped := s.dev.record(c.ID, now)
	if !tripped {
		return
	}
	reason := fmt.Sprintf("deviation: %d denied requests within %s", n, s.dev.cfg.Window)
	if err := s.store.Suspend(ctx, c.ID, now.Add(s.dev.cfg.Window)); err != nil {
		// It holds in this process; a restart before the window ends lifts it.
		s.log.Error("deviation: could not record the suspension durably", slog.String("client", c.ID), slog.String("error", err.Error()))
	}
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
