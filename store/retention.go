package store

import (
	"context"
	"time"
)

// Retention says how long each kind of record is kept once it no longer
// decides anything. Every backend's collector applies these rules, so how
// long Mandate remembers does not depend on where it remembers it.
type Retention struct {
	// Tokens keeps a token record this long after the token expired, for
	// lineage listings and audit.
	Tokens time.Duration
	// Revocations keeps a revocation record this long after its token
	// expired (a grace for verifiers that allow clock skew): before that, no
	// descendant can still be accepted anywhere.
	Revocations time.Duration
	// Audit keeps an audit record this long after it was written; zero keeps
	// the trail for ever.
	Audit time.Duration
}

// expiredBy reports whether a token expiring at exp has expired by cutoff,
// in whole seconds as JWT expiry is: a token is expired at its exp.
func expiredBy(exp, cutoff time.Time) bool { return exp.Unix() <= cutoff.Unix() }

// TokenCutoff is the time at or before which a token must have expired for
// its record to be collected at now.
func (r Retention) TokenCutoff(now time.Time) time.Time { return now.Add(-r.Tokens) }

// CollectsToken reports whether, at now, the record of a token that expires
// at exp is collected (with its child link and holder index entry).
func (r Retention) CollectsToken(exp, now time.Time) bool {
	return expiredBy(exp, r.TokenCutoff(now))
}

// RevocationCutoff is the time at or before which a revoked token must have
// expired for its revocation record (and log entry) to be collected at now.
func (r Retention) RevocationCutoff(now time.Time) time.Time { return now.Add(-r.Revocations) }

// CollectsRevocation reports whether, at now, the revocation of a token that
// expires at exp is collected.
func (r Retention) CollectsRevocation(exp, now time.Time) bool {
	return expiredBy(exp, r.RevocationCutoff(now))
}

// AuditCutoff is the time before which audit records are collected at now;
// ok is false when Audit is zero and the trail is kept for ever.
func (r Retention) AuditCutoff(now time.Time) (cutoff time.Time, ok bool) {
	if r.Audit <= 0 {
		return time.Time{}, false
	}
	return now.Add(-r.Audit), true
}

// CollectsAudit reports whether, at now, an audit record written at written
// is collected.
func (r Retention) CollectsAudit(written, now time.Time) bool {
	cutoff, ok := r.AuditCutoff(now)
	return ok && written.Before(cutoff)
}

// GCResult counts what one collection pass removed.
type GCResult struct {
	Tokens      int
	Revocations int
	Audit       int
}

// Collector deletes what its Retention no longer keeps, so a store under
// steady load stops growing.
type Collector interface {
	// GC collects every record the retention rules release at now: revocations
	// first, then audit records (appending the record that vouches for the
	// trail's new base), then token records with their index entries.
	GC(now time.Time) (GCResult, error)
}

// RunGC runs c.GC(now()) every interval until ctx ends, reporting each pass
// (including errors) to report, which may be nil.
func RunGC(ctx context.Context, c Collector, interval time.Duration, now func() time.Time, report func(GCResult, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				return
			}
			res, err := c.GC(now())
			if report != nil {
				report(res, err)
			}
		}
	}
}
