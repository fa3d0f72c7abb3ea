package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the key of the transaction-scoped advisory lock that
// Open holds while it reads and advances the schema version ("mandate" +
// "m" in ASCII), so replicas starting together migrate one at a time: the
// first applies what is missing, the others wait, then find nothing to do.
// Advisory locks are per database, so two databases never contend.
const migrationLock int64 = 0x6d616e646174656d

// collectorLock is the key of the session advisory lock a collection pass
// holds, so retention runs on one replica at a time ("mandate" + "g").
const collectorLock int64 = 0x6d616e6461746567

// migrations are the schema's versions, in order: version n is
// migrations[n-1]. A released migration is never edited; a change of schema
// is a new entry. Each runs in the one transaction that records it, so a
// version is applied whole or not at all.
//
// Why the tables look as they do, for several replicas on one database:
//
//   - Text keys are COLLATE "C", so they sort by their UTF-8 bytes as the
//     bbolt store's keys do (ScanTokens and Children answer in that order)
//     whatever collation the database was created with. Records are the
//     same JSON the bbolt store keeps, in text columns (not jsonb, which
//     rewrites the text and refuses \u0000), beside the columns that are
//     searched: parent (the child index), holder and expiry (the holder and
//     collection indexes).
//   - mandate_revocation_head is the revocation log's counter, one row. Revoke
//     locks it before it looks for an existing revocation and takes the next
//     Seq from it in the same transaction, so revocations commit one at a
//     time and commit order is Seq order: a reader that sees Seq n committed
//     sees every Seq below it, and a feed cursor never passes a revocation
//     that commits later. A sequence would not do: nextval is handed out
//     when called, not when its transaction commits, so under READ
//     COMMITTED Seq 8 can be visible while 7 is not yet, and a cursor at 8
//     would skip 7 for ever (and a rolled-back nextval leaves a gap).
//   - The audit trail is one hash chain per replica (mandate_audit_chains
//     holds each chain's last Seq, head hash and collected base), so no one
//     row serializes the audit writes of the whole cluster; each chain is
//     verified alone by store.VerifyAuditChain. A writer locks its chain's
//     row, so even two processes given the same replica name keep one
//     consistent chain, only slower.
//   - mandate_signing_keys holds tokens.StoredKey JSON as the bbolt store
//     does; the store refuses a private key in clear, so what rests there
//     is sealed under the KEK (tokens.SealedKeyStore).
//   - mandate_replays holds the single-use values a replica accepted (a
//     DPoP proof's or a client assertion's jti, keyed by kind), so another
//     replica refuses them again; collection deletes them once expired.
//   - Writes other replicas must learn of at once notify a channel in the
//     same transaction (delivered at commit): mandate_revocations (the
//     log's new head), mandate_signing_keys, mandate_suspensions; Listen
//     follows them (listen.go).
var migrations = []string{
	// Version 1: the whole store.
	`
CREATE TABLE mandate_meta (
	one      boolean PRIMARY KEY DEFAULT true CHECK (one),
	store_id text NOT NULL
);
CREATE TABLE mandate_tokens (
	jti        text COLLATE "C" PRIMARY KEY,
	parent     text COLLATE "C",
	holder     text COLLATE "C" NOT NULL,
	expires_at timestamptz NOT NULL,
	record     text NOT NULL
);
CREATE INDEX mandate_tokens_children ON mandate_tokens (parent, jti) WHERE parent IS NOT NULL;
CREATE INDEX mandate_tokens_holder ON mandate_tokens (holder, expires_at, jti);
CREATE INDEX mandate_tokens_expiry ON mandate_tokens (expires_at);
CREATE TABLE mandate_revocation_head (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq bigint NOT NULL CHECK (seq >= 0)
);
INSERT INTO mandate_revocation_head (seq) VALUES (0);
CREATE TABLE mandate_revocations (
	jti        text COLLATE "C" PRIMARY KEY,
	seq        bigint NOT NULL UNIQUE CHECK (seq > 0),
	expires_at timestamptz NOT NULL,
	record     text NOT NULL
);
CREATE INDEX mandate_revocations_expiry ON mandate_revocations (expires_at);
CREATE TABLE mandate_suspensions (
	client          text COLLATE "C" PRIMARY KEY,
	suspended_until timestamptz NOT NULL
);
CREATE TABLE mandate_signing_keys (
	kid    text COLLATE "C" PRIMARY KEY,
	record text NOT NULL
);
CREATE TABLE mandate_audit_chains (
	replica   text COLLATE "C" PRIMARY KEY,
	seq       bigint NOT NULL DEFAULT 0,
	head      text NOT NULL DEFAULT '',
	base_seq  bigint NOT NULL DEFAULT 0,
	base_hash text NOT NULL DEFAULT ''
);
CREATE TABLE mandate_audit (
	replica text COLLATE "C" NOT NULL,
	seq     bigint NOT NULL,
	record  text NOT NULL,
	PRIMARY KEY (replica, seq)
);
`,
	// Version 2: single-use values every replica remembers (DPoP proof and
	// client assertion jtis), until they could no longer be accepted.
	`
CREATE TABLE mandate_replays (
	kind       text COLLATE "C" NOT NULL,
	key        text COLLATE "C" NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX mandate_replays_expiry ON mandate_replays (expires_at);
`,
}

// SchemaVersion is the schema version this build of Mandate migrates to.
var SchemaVersion = len(migrations)

// ErrSchemaNewer reports a database migrated by a newer Mandate than this
// one: this build does not know its schema, so it refuses to use it.
var ErrSchemaNewer = errors.New("the database's schema is newer than this Mandate")

// ErrNotMandate reports a database that holds no Mandate schema, opened
// read-only (which never creates one).
var ErrNotMandate = errors.New("not a Mandate database")

const versionTable = `CREATE TABLE IF NOT EXISTS mandate_schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate brings the schema to SchemaVersion under the migration lock, in
// one transaction, and gives a new database its store id. It returns the
// store id.
func migrate(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return "", fmt.Errorf("take the migration lock: %w", err)
	}
	// Created under the lock: two replicas racing to create it would collide.
	if _, err := tx.Exec(ctx, versionTable); err != nil {
		return "", fmt.Errorf("create the schema version table: %w", err)
	}
	var version int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM mandate_schema_migrations`).Scan(&version); err != nil {
		return "", fmt.Errorf("read the schema version: %w", err)
	}
	if version > SchemaVersion {
		return "", fmt.Errorf("%w: it is at version %d, this Mandate knows up to %d; run the newer Mandate", ErrSchemaNewer, version, SchemaVersion)
	}
	for v := version + 1; v <= SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return "", fmt.Errorf("migrate the schema to version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mandate_schema_migrations (version) VALUES ($1)`, v); err != nil {
			return "", fmt.Errorf("record schema version %d: %w", v, err)
		}
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO mandate_meta (store_id) VALUES ($1) ON CONFLICT (one) DO NOTHING`, hex.EncodeToString(raw[:])); err != nil {
		return "", fmt.Errorf("make the store id: %w", err)
	}
	var id string
	if err := tx.QueryRow(ctx, `SELECT store_id FROM mandate_meta`).Scan(&id); err != nil {
		return "", fmt.Errorf("read the store id: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("commit the schema: %w", err)
	}
	return id, nil
}

// checkSchema reads, without changing anything, that the database holds the
// schema this build knows, and returns the store id.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var version int
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM mandate_schema_migrations`).Scan(&version)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return "", fmt.Errorf("%w: it has no mandate_schema_migrations table", ErrNotMandate)
	}
	if err != nil {
		return "", fmt.Errorf("read the schema version: %w", err)
	}
	switch {
	case version > SchemaVersion:
		return "", fmt.Errorf("%w: it is at version %d, this Mandate knows up to %d", ErrSchemaNewer, version, SchemaVersion)
	case version < SchemaVersion:
		return "", fmt.Errorf("the database's schema is at version %d, older than this Mandate's %d: start a replica (which migrates) before opening it read-only", version, SchemaVersion)
	}
	var id string
	if err := pool.QueryRow(ctx, `SELECT store_id FROM mandate_meta`).Scan(&id); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("%w: it has no store id", ErrNotMandate)
		}
		return "", fmt.Errorf("read the store id: %w", err)
	}
	return id, nil
}
