package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/store"
)

// The audit trail is one hash chain per replica (mandate_audit_chains,
// mandate_audit): a replica appends only to its own, so the audit writes of
// replicas never wait on one another, and each chain verifies alone by
// store.VerifyAuditChain. AuditAfter and AuditTail read this replica's
// chain; VerifyAudit checks every chain.

// AuditAfter returns up to limit (all when limit <= 0) records of this
// replica's chain with Seq > after, oldest first.
func (d *DB) AuditAfter(ctx context.Context, after uint64, limit int) ([]store.AuditRecord, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := d.pool.Query(ctx, `SELECT seq, record FROM mandate_audit WHERE replica = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		d.replica, seqArg(after), lim)
	if err != nil {
		return nil, errorf("store/postgres: audit records: %w", err)
	}
	return collectAudit(rows)
}

// AuditTail returns the newest n records of this replica's chain, oldest
// first.
func (d *DB) AuditTail(ctx context.Context, n int) ([]store.AuditRecord, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := d.pool.Query(ctx, `SELECT seq, record FROM mandate_audit WHERE replica = $1 ORDER BY seq DESC LIMIT $2`, d.replica, n)
	if err != nil {
		return nil, errorf("store/postgres: audit records: %w", err)
	}
	out, err := collectAudit(rows)
	slices.Reverse(out)
	return out, err
}

func collectAudit(rows pgx.Rows) ([]store.AuditRecord, error) {
	var out []store.AuditRecord
	if err := decodeRows(rows, "audit records", "audit record %d", func(_ int64, r store.AuditRecord) { out = append(out, r) }); err != nil {
		return nil, err
	}
	return out, nil
}

// ChainReport is the verification of one replica's audit chain.
type ChainReport struct {
	Replica string `json:"replica"`
	store.AuditReport
}

// VerifyAuditChains verifies every replica's chain alone, by
// store.VerifyAuditChain, in one snapshot, in replica order.
func (d *DB) VerifyAuditChains(ctx context.Context) ([]ChainReport, error) {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, errorf("store/postgres: verify audit: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	type chain struct {
		replica string
		head    string
		base    store.AuditBase
	}
	rows, err := tx.Query(ctx, `SELECT replica, head, base_seq, base_hash FROM mandate_audit_chains ORDER BY replica`)
	if err != nil {
		return nil, errorf("store/postgres: verify audit: %w", err)
	}
	chains, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chain, error) {
		var c chain
		var baseSeq int64
		err := row.Scan(&c.replica, &c.head, &baseSeq, &c.base.Hash)
		c.base.Seq = uint64(baseSeq)
		return c, err
	})
	if err != nil {
		return nil, errorf("store/postgres: verify audit: %w", err)
	}
	var out []ChainReport
	for _, c := range chains {
		rows, err := tx.Query(ctx, `SELECT seq, record FROM mandate_audit WHERE replica = $1 ORDER BY seq`, c.replica)
		if err != nil {
			return nil, errorf("store/postgres: verify audit chain %q: %w", c.replica, err)
		}
		var scanErr error
		rep := store.VerifyAuditChain(c.base, c.head, func(yield func(uint64, []byte) bool) {
			for rows.Next() {
				var seq int64
				var raw []byte
				if scanErr = rows.Scan(&seq, &raw); scanErr != nil || !yield(uint64(seq), raw) {
					return
				}
			}
		})
		rows.Close()
		if err := cmp.Or(scanErr, rows.Err()); err != nil {
			return nil, errorf("store/postgres: verify audit chain %q: %w", c.replica, err)
		}
		out = append(out, ChainReport{Replica: c.replica, AuditReport: rep})
	}
	return out, nil
}

// VerifyAudit verifies every replica's chain (VerifyAuditChains) and sums
// them up in one report. With one chain (or none) it is that chain's
// report. With several, OK only when all are, Records counts all of them,
// First, Last and Head are this replica's chain's, and BrokenAt and Problem
// are the first broken chain's, the Problem naming it.
func (d *DB) VerifyAudit(ctx context.Context) (store.AuditReport, error) {
	chains, err := d.VerifyAuditChains(ctx)
	if err != nil {
		return store.AuditReport{}, err
	}
	switch len(chains) {
	case 0:
		return store.AuditReport{OK: true, First: 1}, nil
	case 1:
		return chains[0].AuditReport, nil
	}
	sum := store.AuditReport{OK: true, First: 1}
	for _, c := range chains {
		sum.Records += c.Records
		if c.Replica == d.replica {
			sum.First, sum.Last, sum.Head = c.First, c.Last, c.Head
		}
		if !c.OK && sum.OK {
			sum.OK, sum.BrokenAt, sum.Problem = false, c.BrokenAt, fmt.Sprintf("chain %q: %s", c.Replica, c.Problem)
		}
	}
	return sum, nil
}

// collectChain deletes, in one transaction on conn, the oldest records of
// one replica's chain that the retention releases at now (up to gcBatch,
// stopping at the first it keeps; cutoff is the retention's audit cutoff),
// moves the chain's base to the newest of them, and appends to that chain
// the record that vouches for the base (store.AuditCollectedEvent). Any
// replica may collect any chain: the chain's row lock orders it with that
// replica's own appends.
func (d *DB) collectChain(ctx context.Context, conn *pgx.Conn, replica string, cutoff, now time.Time) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var seq int64
	var head string
	if err := tx.QueryRow(ctx, `SELECT seq, head FROM mandate_audit_chains WHERE replica = $1 FOR UPDATE`, replica).Scan(&seq, &head); err != nil {
		return 0, fmt.Errorf("lock audit chain %q: %w", replica, err)
	}
	rows, err := tx.Query(ctx, `SELECT seq, record FROM mandate_audit WHERE replica = $1 ORDER BY seq LIMIT $2`, replica, gcBatch)
	if err != nil {
		return 0, err
	}
	n := 0
	var base store.AuditBase
	for rows.Next() {
		var s int64
		var raw []byte
		if err := rows.Scan(&s, &raw); err != nil {
			rows.Close()
			return 0, err
		}
		var r store.AuditRecord
		if unmarshal(raw, &r) != nil || !d.ret.CollectsAudit(r.Time, now) {
			break
		}
		base = store.AuditBase{Seq: uint64(s), Hash: r.Hash}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	rec := store.NextAuditRecord(uint64(seq+1), head, store.AuditCollectedEvent(now, base, n, cutoff))
	val, err := marshal(rec)
	if err != nil {
		return 0, err
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM mandate_audit WHERE replica = $1 AND seq <= $2`, replica, int64(base.Seq))
	b.Queue(`INSERT INTO mandate_audit (replica, seq, record) VALUES ($1, $2, $3)`, replica, seq+1, val)
	b.Queue(`UPDATE mandate_audit_chains SET seq = $2, head = $3, base_seq = $4, base_hash = $5 WHERE replica = $1`,
		replica, seq+1, rec.Hash, int64(base.Seq), base.Hash)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return n, nil
}

// chainNames lists the replicas that have an audit chain.
func chainNames(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT replica FROM mandate_audit_chains ORDER BY replica`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
