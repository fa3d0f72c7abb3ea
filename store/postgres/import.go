package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

// ErrNotEmpty is returned by Import into a database that already holds
// records: a copy only ever fills an empty store.
var ErrNotEmpty = errors.New("store/postgres: the target database is not empty")

// Snapshot is a whole store to import into an empty database (mandate store
// copy).
type Snapshot struct {
	// StoreID is the source's store id (store.RevocationLog.ID). Import keeps
	// it, with every revocation's Seq and the log's head, so the log is the
	// same log and a verifier's feed cursor keeps its meaning.
	StoreID     string
	Tokens      []*store.TokenRecord
	Revocations []store.Revocation
	RevHead     uint64
	Suspensions map[string]time.Time
	// Keys must be sealed (or destroyed): ErrClearKey otherwise.
	Keys []tokens.StoredKey
	// The audit chain as stored: it becomes this replica's chain.
	AuditBase store.AuditBase
	AuditHead string
	Audit     [][]byte // each record's JSON, in sequence order
}

// Import writes s into the database in one transaction, refusing one that
// already holds any token, revocation, suspension, signing key or audit
// record (ErrNotEmpty). The audit chain becomes this replica's (Options.Replica)
// and is verified before it commits. Run it before any replica serves.
func (d *DB) Import(ctx context.Context, s Snapshot) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	if s.StoreID == "" {
		return errors.New("store/postgres: import: the source has no store id")
	}
	for _, k := range s.Keys {
		if !k.Sealed && !k.Destroyed() {
			return fmt.Errorf("%w (key %s)", ErrClearKey, k.ID)
		}
	}
	rep := store.VerifyAuditChain(s.AuditBase, s.AuditHead, func(yield func(uint64, []byte) bool) {
		for _, raw := range s.Audit {
			var r struct {
				Seq uint64 `json:"seq"`
			}
			_ = json.Unmarshal(raw, &r)
			if !yield(r.Seq, raw) {
				return
			}
		}
	})
	if !rep.OK {
		return fmt.Errorf("store/postgres: import: the source's audit chain does not verify: record %d: %s", rep.BrokenAt, rep.Problem)
	}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		// The migration lock keeps replicas starting now from racing the copy's check.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mandate_tokens) OR EXISTS (SELECT 1 FROM mandate_revocations)
			OR EXISTS (SELECT 1 FROM mandate_suspensions) OR EXISTS (SELECT 1 FROM mandate_signing_keys)
			OR EXISTS (SELECT 1 FROM mandate_audit) OR (SELECT seq FROM mandate_revocation_head) > 0
			OR EXISTS (SELECT 1 FROM mandate_audit_chains WHERE seq > 0)`).Scan(&used); err != nil {
			return err
		}
		if used {
			return ErrNotEmpty
		}
		if _, err := tx.Exec(ctx, `UPDATE mandate_meta SET store_id = $1`, s.StoreID); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, rec := range s.Tokens {
			val, err := marshal(rec)
			if err != nil {
				return err
			}
			var parent *string
			if rec.Parent != "" {
				parent = &rec.Parent
			}
			b.Queue(`INSERT INTO mandate_tokens (jti, parent, holder, expires_at, record) VALUES ($1, $2, $3, $4, $5)`,
				rec.JTI, parent, rec.Holder, expirySecond(rec.ExpiresAt), val)
		}
		head := s.RevHead
		for _, r := range s.Revocations {
			val, err := marshal(r)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO mandate_revocations (jti, seq, expires_at, record) VALUES ($1, $2, $3, $4)`,
				r.JTI, seqArg(r.Seq), expirySecond(r.ExpiresAt), val)
			head = max(head, r.Seq)
		}
		b.Queue(`UPDATE mandate_revocation_head SET seq = $1`, seqArg(head))
		for client, until := range s.Suspensions {
			b.Queue(`INSERT INTO mandate_suspensions (client, suspended_until) VALUES ($1, $2)`, client, until)
		}
		for _, k := range s.Keys {
			val, err := marshal(k)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO mandate_signing_keys (kid, record) VALUES ($1, $2)`, k.ID, val)
		}
		for _, raw := range s.Audit {
			var r struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			if !validText(string(raw)) {
				return fmt.Errorf("audit record %d is not valid text", r.Seq)
			}
			b.Queue(`INSERT INTO mandate_audit (replica, seq, record) VALUES ($1, $2, $3)`, d.replica, seqArg(r.Seq), string(raw))
		}
		b.Queue(`UPDATE mandate_audit_chains SET seq = $2, head = $3, base_seq = $4, base_hash = $5 WHERE replica = $1`,
			d.replica, seqArg(rep.Last), s.AuditHead, seqArg(s.AuditBase.Seq), s.AuditBase.Hash)
		return tx.SendBatch(ctx, b).Close()
	})
	if errors.Is(err, ErrNotEmpty) {
		return err
	}
	if err != nil {
		return errorf("store/postgres: import: %w", err)
	}
	return nil
}
