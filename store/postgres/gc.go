package postgres

import (
	"context"
	"time"

	"github.com/mandate-auth/mandate/store"
)

// gcBatch bounds the deletions of one transaction, so a large backlog never
// holds locks or a snapshot for long.
const gcBatch = 1000

// GC applies the store's retention (store.Retention): revocation records
// (and with them their log entries) whose token expired at or before now -
// RevocationGrace, the audit records of every replica's chain written
// before now - AuditRetention (a chained record vouching for each chain's
// new base), and token records (with their child links and holder index
// entries, which are columns of the record's row) that expired at or
// before now - Retention, and the single-use values (FirstUse) expired by
// now. One replica collects at a time: a pass that
// finds another replica's pass under way (the collector's advisory lock
// held) returns at once with nothing collected.
func (d *DB) GC(now time.Time) (store.GCResult, error) {
	var res store.GCResult
	if d.readOnly {
		return res, store.ErrReadOnly
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return res, errorf("store/postgres: collect: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, collectorLock).Scan(&locked); err != nil {
		return res, errorf("store/postgres: collect: take the collector's lock: %w", err)
	}
	if !locked {
		return res, nil
	}
	defer func() {
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, collectorLock); err != nil {
			// A session lock must not go back to the pool: closing the
			// connection releases it.
			_ = conn.Conn().Close(uctx)
		}
	}()

	del := func(table string, cutoff time.Time) (int, error) {
		total := 0
		for {
			tag, err := conn.Exec(ctx, `DELETE FROM `+table+` WHERE jti IN (SELECT jti FROM `+table+` WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)`,
				afterSecond(cutoff), gcBatch)
			if err != nil {
				return total, errorf("store/postgres: collect %s: %w", table, err)
			}
			n := int(tag.RowsAffected())
			total += n
			if n < gcBatch {
				return total, nil
			}
		}
	}
	if res.Revocations, err = del("mandate_revocations", d.ret.RevocationCutoff(now)); err != nil {
		return res, err
	}
	if cutoff, ok := d.ret.AuditCutoff(now); ok {
		names, err := chainNames(ctx, conn.Conn())
		if err != nil {
			return res, errorf("store/postgres: collect audit: %w", err)
		}
		for _, replica := range names {
			for {
				n, err := d.collectChain(ctx, conn.Conn(), replica, cutoff, now)
				res.Audit += n
				if err != nil {
					return res, errorf("store/postgres: collect audit chain %q: %w", replica, err)
				}
				if n < gcBatch {
					break
				}
			}
		}
	}
	if res.Tokens, err = del("mandate_tokens", d.ret.TokenCutoff(now)); err != nil {
		return res, err
	}
	// Single-use values past their expiry could no longer be accepted
	// anyway: forgetting them refuses nothing new.
	for {
		tag, err := conn.Exec(ctx, `DELETE FROM mandate_replays WHERE (kind, key) IN
			(SELECT kind, key FROM mandate_replays WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)`, now, gcBatch)
		if err != nil {
			return res, errorf("store/postgres: collect single-use values: %w", err)
		}
		if tag.RowsAffected() < gcBatch {
			return res, nil
		}
	}
}

// RunGC collects expired records every interval until ctx ends, reporting
// each pass (including errors) to report, which may be nil (see
// store.RunGC).
func (d *DB) RunGC(ctx context.Context, interval time.Duration, now func() time.Time, report func(store.GCResult, error)) {
	store.RunGC(ctx, d, interval, now, report)
}
