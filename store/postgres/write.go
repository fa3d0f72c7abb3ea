package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-auth/mandate/store"
)

// The writes that acknowledge something — PutToken, Revoke, Append, and
// FirstUse (a single-use value recorded) — are group-committed: each is queued, and one committer takes every queued
// write (up to MaxBatch) into one transaction, so concurrent requests share
// its round trips and its commit, and each caller returns once that commit
// succeeded. While one group commits the next gathers, so a lone write
// waits for nothing. A group is:
//
//  1. BEGIN, then lock the revocation log's counter — for update when the
//     group revokes, shared when it only writes tokens with ancestors —
//     and this replica's audit chain (when it records events), reading the
//     counter, the chain's head, the revocations already recorded for the
//     group's jtis and for its tokens' ancestors — after the counter's
//     lock, so no concurrent revocation can slip in between: a token whose
//     ancestor is revoked is left out (store.ErrAncestorRevoked), never
//     recorded, so an exchange racing the revocation of an ancestor at
//     another replica never issues a child;
//  2. the single-use values (whose answer is read), the token upserts,
//     revocations, log counter and its notification, audit records and
//     chain head, in one pipelined round trip;
//  3. COMMIT.
//
// Locks are always taken counter first, then chain, so replicas never
// deadlock on them.

type opKind uint8

const (
	opToken opKind = iota
	opRevoke
	opAppend
	opReplay
)

// op is one queued write and, once done is closed, its outcome.
type op struct {
	kind      opKind
	token     *store.TokenRecord
	tokenJSON string
	rev       store.Revocation
	ev        *store.AuditEvent
	replay    replayKey // opReplay: the value to remember
	replayExp time.Time

	result  store.Revocation // Revoke: the stored revocation
	created bool             // Revoke, FirstUse: whether this call recorded it
	refused error            // PutToken: why the group left it out (an ancestor revoked)
	err     error
	done    chan struct{}
}

// submit queues o and waits for its group's commit. A caller whose ctx
// ends first gets ctx's error: its write may still commit, but it was not
// acknowledged.
func (d *DB) submit(ctx context.Context, o *op) error {
	if o.kind == opToken {
		val, err := marshal(o.token)
		if err != nil {
			return errorf("store/postgres: encode token record: %w", err)
		}
		o.tokenJSON = val
	}
	o.done = make(chan struct{})
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return &unavailableError{ErrClosed}
	}
	select {
	case d.queue <- o:
		d.mu.RUnlock()
	case <-ctx.Done():
		d.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append durably adds a record for ev to this replica's audit chain, in a
// group commit.
func (d *DB) Append(ctx context.Context, ev store.AuditEvent) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	return d.submit(ctx, &op{kind: opAppend, ev: &ev})
}

// commitLoop commits the queued writes group by group until the queue is
// closed and empty.
func (d *DB) commitLoop() {
	defer close(d.drained)
	for o := range d.queue {
		group := []*op{o}
	fill:
		for len(group) < d.maxBatch {
			select {
			case o, ok := <-d.queue:
				if !ok {
					break fill
				}
				group = append(group, o)
			default:
				break fill
			}
		}
		d.commit(group)
	}
}

// commit commits group and answers its callers. When the server refused a
// statement (not a lost connection, whose outcome may be unknown), the
// writes are committed one by one instead, as bbolt's Batch does, so one
// write the database refuses fails alone.
func (d *DB) commit(group []*op) {
	err := d.commitGroup(group)
	var pgErr *pgconn.PgError
	if err != nil && len(group) > 1 && errors.As(err, &pgErr) {
		for _, o := range group {
			if o.err = d.commitGroup([]*op{o}); o.err == nil {
				o.err = o.refused
			}
			close(o.done)
		}
		return
	}
	for _, o := range group {
		if o.err = err; err == nil {
			o.err = o.refused
		}
		close(o.done)
	}
}

// groupRows are the rows one group writes, as column arrays for unnest.
type groupRows struct {
	tokens map[string]*op // by jti: the last write of each

	rJTI, rValue []string
	rSeq         []int64
	rExp         []time.Time

	aSeq   []int64
	aValue []string

	replays map[replayKey]*op // the first op of each value: later ones are replays
	pKind   []string
	pKey    []string
	pExp    []time.Time
}

// replayKey is a single-use value in its namespace.
type replayKey struct{ kind, key string }

// commitGroup writes group in one transaction (see the top of this file).
func (d *DB) commitGroup(group []*op) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	var revokes, lineage []string
	events := false
	for _, o := range group {
		o.result, o.created, o.refused = store.Revocation{}, false, nil
		switch o.kind {
		case opRevoke:
			revokes = append(revokes, o.rev.JTI)
		case opToken:
			lineage = append(lineage, o.token.Lineage...)
		}
		events = events || o.ev != nil
	}

	// Round trip 1: begin, lock and read.
	var tx pgx.Tx
	defer func() {
		if tx != nil {
			_ = tx.Rollback(ctx) // after Commit, a no-op
		}
	}()
	st := groupState{existing: map[string]store.Revocation{}, ancestors: map[string]bool{}}
	if len(revokes) > 0 || len(lineage) > 0 || events {
		b := &pgx.Batch{}
		b.BeginTx(pgx.TxOptions{})
		switch {
		case len(revokes) > 0:
			b.Queue(`SELECT seq FROM mandate_revocation_head FOR UPDATE`)
			// A statement after the lock: under READ COMMITTED it sees
			// every revocation committed before the lock was granted.
			b.Queue(`SELECT jti, record FROM mandate_revocations WHERE jti = ANY($1)`, revokes)
		case len(lineage) > 0:
			// Shared with other token groups, exclusive of revocations:
			// a revocation committing now has committed before the read
			// below (which sees it), or waits until this group commits
			// (and finds its tokens recorded below it).
			b.Queue(`SELECT seq FROM mandate_revocation_head FOR SHARE`)
		}
		if len(lineage) > 0 {
			b.Queue(`SELECT jti FROM mandate_revocations WHERE jti = ANY($1)`, lineage)
		}
		if events {
			b.Queue(`SELECT seq, head FROM mandate_audit_chains WHERE replica = $1 FOR UPDATE`, d.replica)
		}
		br := d.pool.SendBatch(ctx, b)
		tx = br.Tx()
		if err := d.readGroupState(br, len(revokes) > 0, len(lineage) > 0, events, &st); err != nil {
			_ = br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return errorf("store/postgres: begin a group commit: %w", err)
		}
	}

	// In Go: the order of the group is the order of its Seqs and records.
	rows := groupRows{tokens: map[string]*op{}, replays: map[replayKey]*op{}}
	appendEvent := func(ev *store.AuditEvent) error {
		if ev == nil {
			return nil
		}
		st.chainSeq++
		rec := store.NextAuditRecord(uint64(st.chainSeq), st.chainHead, *ev)
		val, err := marshal(rec)
		if err != nil {
			return errorf("store/postgres: encode audit record: %w", err)
		}
		rows.aSeq, rows.aValue, st.chainHead = append(rows.aSeq, st.chainSeq), append(rows.aValue, val), rec.Hash
		return nil
	}
	for _, o := range group {
		switch o.kind {
		case opToken:
			if a := st.revokedAncestor(o.token.Lineage); a != "" {
				// Never recorded, so never issued: not even audited
				// as issued (the core audits the refusal).
				o.refused = fmt.Errorf("store/postgres: token %s: %w (%s)", o.token.JTI, store.ErrAncestorRevoked, a)
				continue
			}
			rows.tokens[o.token.JTI] = o // a jti written twice in a group keeps its last record
		case opReplay:
			if _, seen := rows.replays[o.replay]; !seen { // a value twice in a group: the second is a replay
				rows.replays[o.replay] = o
				rows.pKind, rows.pKey, rows.pExp = append(rows.pKind, o.replay.kind), append(rows.pKey, o.replay.key), append(rows.pExp, o.replayExp)
			}
		case opRevoke:
			if old, ok := st.existing[o.rev.JTI]; ok {
				o.result = old
				continue // already revoked: nothing changes, nothing is recorded
			}
			st.revHead++
			r := o.rev
			r.Seq = uint64(st.revHead)
			val, err := marshal(r)
			if err != nil {
				return errorf("store/postgres: encode revocation: %w", err)
			}
			rows.rJTI, rows.rSeq, rows.rExp, rows.rValue = append(rows.rJTI, r.JTI), append(rows.rSeq, st.revHead), append(rows.rExp, expirySecond(r.ExpiresAt)), append(rows.rValue, val)
			st.existing[r.JTI] = r
			o.result, o.created = r, true
		}
		if err := appendEvent(o.ev); err != nil {
			return err
		}
	}

	// Round trip 2: every write, pipelined; the replays first, since their
	// answer is read.
	wb := &pgx.Batch{}
	began := tx == nil
	if began {
		wb.BeginTx(pgx.TxOptions{})
	}
	if len(rows.pKey) > 0 {
		wb.Queue(`INSERT INTO mandate_replays (kind, key, expires_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
			ON CONFLICT (kind, key) DO NOTHING RETURNING kind, key`, rows.pKind, rows.pKey, rows.pExp)
	}
	if len(rows.tokens) > 0 {
		tJTI, tParent, tHolder, tExp, tValue := rows.tokenColumns()
		wb.Queue(`INSERT INTO mandate_tokens (jti, parent, holder, expires_at, record)
			SELECT j, NULLIF(p, ''), h, e, r FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS t(j, p, h, e, r)
			ON CONFLICT (jti) DO UPDATE SET parent = excluded.parent, holder = excluded.holder, expires_at = excluded.expires_at, record = excluded.record`,
			tJTI, tParent, tHolder, tExp, tValue)
	}
	if len(rows.rJTI) > 0 {
		wb.Queue(`INSERT INTO mandate_revocations (jti, seq, expires_at, record)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[])`,
			rows.rJTI, rows.rSeq, rows.rExp, rows.rValue)
		wb.Queue(`UPDATE mandate_revocation_head SET seq = $1`, st.revHead)
		// Delivered at commit: every replica's listener wakes its feed's
		// long polls (Listen).
		wb.Queue(`SELECT pg_notify($1, $2)`, ChannelRevocations, strconv.FormatInt(st.revHead, 10))
	}
	if len(rows.aSeq) > 0 {
		wb.Queue(`INSERT INTO mandate_audit (replica, seq, record) SELECT $1, s, r FROM unnest($2::bigint[], $3::text[]) AS t(s, r)`,
			d.replica, rows.aSeq, rows.aValue)
		wb.Queue(`UPDATE mandate_audit_chains SET seq = $2, head = $3 WHERE replica = $1`, d.replica, st.chainSeq, st.chainHead)
	}
	if wb.Len() > 0 {
		var wbr pgx.BatchResults
		if tx == nil {
			wbr = d.pool.SendBatch(ctx, wb)
			tx = wbr.Tx()
		} else {
			wbr = tx.SendBatch(ctx, wb)
		}
		if err := readReplays(wbr, began, &rows); err != nil {
			_ = wbr.Close()
			return errorf("store/postgres: write a group of %d: %w", len(group), err)
		}
		if err := wbr.Close(); err != nil {
			return errorf("store/postgres: write a group of %d: %w", len(group), err)
		}
	}
	if tx == nil {
		return nil // nothing to write (cannot happen: every op writes or reads)
	}

	// Round trip 3.
	if err := tx.Commit(ctx); err != nil {
		return errorf("store/postgres: commit a group of %d: %w", len(group), err)
	}
	return nil
}

// readReplays reads round trip 2's first answers: the BEGIN when it began
// the transaction, then which replayed values were new, marking their ops
// created (an op whose value another op of the group, or an earlier group,
// recorded stays not created: a replay).
func readReplays(br pgx.BatchResults, began bool, rows *groupRows) error {
	if began {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	if len(rows.pKey) == 0 {
		return nil
	}
	res, err := br.Query()
	if err != nil {
		return err
	}
	defer res.Close()
	for res.Next() {
		var k replayKey
		if err := res.Scan(&k.kind, &k.key); err != nil {
			return err
		}
		if o := rows.replays[k]; o != nil {
			o.created = true
		}
	}
	return res.Err()
}

// groupState is what round trip 1 reads: the revocation log's head, the
// revocations already recorded for the group's jtis, and this replica's
// chain's last Seq and head hash.
type groupState struct {
	revHead   int64
	existing  map[string]store.Revocation
	ancestors map[string]bool // the group's tokens' ancestors found revoked
	chainSeq  int64
	chainHead string
}

// revokedAncestor is the first of lineage revoked before this group or by
// a revocation earlier in it ("" when none is).
func (st *groupState) revokedAncestor(lineage []string) string {
	for _, a := range lineage {
		if _, ok := st.existing[a]; ok || st.ancestors[a] {
			return a
		}
	}
	return ""
}

// readGroupState reads round trip 1's answers into st: the BEGIN, the log
// counter (locked for update when revokes, shared when only tokens with
// ancestors are written) and the existing revocations of the jtis revoked
// and of the tokens' ancestors, the chain (when events).
func (d *DB) readGroupState(br pgx.BatchResults, revokes, lineage, events bool, st *groupState) error {
	if _, err := br.Exec(); err != nil {
		return errorf("store/postgres: begin a group commit: %w", err)
	}
	if revokes || lineage {
		if err := br.QueryRow().Scan(&st.revHead); err != nil {
			return errorf("store/postgres: lock the revocation log: %w", err)
		}
	}
	if revokes {
		rows, err := br.Query()
		if err != nil {
			return errorf("store/postgres: read revocations: %w", err)
		}
		if st.existing, err = collectRevocations(rows); err != nil {
			return err
		}
	}
	if lineage {
		rows, err := br.Query()
		if err != nil {
			return errorf("store/postgres: read the ancestors' revocations: %w", err)
		}
		jtis, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return errorf("store/postgres: read the ancestors' revocations: %w", err)
		}
		for _, j := range jtis {
			st.ancestors[j] = true
		}
	}
	if events {
		err := br.QueryRow().Scan(&st.chainSeq, &st.chainHead)
		if errors.Is(err, pgx.ErrNoRows) {
			return errorf("store/postgres: the audit chain of replica %q is missing from mandate_audit_chains (reopen the store to recreate it)", d.replica)
		}
		if err != nil {
			return errorf("store/postgres: lock the audit chain: %w", err)
		}
	}
	return nil
}

// tokenColumns are the group's token rows as columns, in jti order: two
// groups upserting the same jtis lock them in the same order, so they
// never deadlock.
func (g *groupRows) tokenColumns() (jti, parent, holder []string, exp []time.Time, value []string) {
	jti = slices.Sorted(maps.Keys(g.tokens))
	for _, j := range jti {
		o := g.tokens[j]
		parent, holder = append(parent, o.token.Parent), append(holder, o.token.Holder)
		exp, value = append(exp, expirySecond(o.token.ExpiresAt)), append(value, o.tokenJSON)
	}
	return jti, parent, holder, exp, value
}

// expirySecond is the whole second an expiry falls in, as the expiry
// columns keep it: store.Retention and the holder index count expiry in
// whole seconds, as JWT does, so ordering and comparing these columns
// answers exactly as the bbolt store's expiry keys do. The record keeps
// the exact time.
func expirySecond(t time.Time) time.Time { return time.Unix(t.Unix(), 0) }

// marshal is v's JSON as text: records are kept as the bbolt store keeps
// them.
func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func unmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
