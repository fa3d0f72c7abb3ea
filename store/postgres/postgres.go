// Package postgres is Mandate's store on PostgreSQL, for several replicas
// of Mandate serving one issuer from one database.
//
// It keeps what store/bolt keeps, with the same JSON records, and passes the
// same conformance suite (store/storetest). Open migrates the schema to this
// build's version under an advisory lock, so replicas starting together are
// safe. Writes that acknowledge something (tokens, revocations, audit
// events) are group-committed: concurrent calls share one transaction and
// one commit, and each returns only once that commit succeeded. The design
// for several replicas — the revocation log's Seq taken from a locked
// counter so commit order is Seq order, one audit hash chain per replica,
// signing keys refused unless sealed — is told at migrations (schema.go).
//
// The DSN's password is never put in an error (nor logged: this package
// logs nothing); Describe names a DSN's database without it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

// DefaultStatementTimeout is the statement_timeout of Mandate's sessions
// when the DSN sets none: the write timeout (a group commit), so no statement
// outlives the request that waits for it.
const DefaultStatementTimeout = "30s"

// DefaultConnectTimeout bounds one connection attempt when the DSN sets no
// connect_timeout.
const DefaultConnectTimeout = 5 * time.Second

// ErrDSN reports a DSN that cannot be used. Its text never repeats the DSN,
// which may hold a password.
var ErrDSN = errors.New("store/postgres: invalid DSN")

// ErrClosed is returned by writes to a store that was closed.
var ErrClosed = errors.New("store/postgres: store closed")

// ErrClearKey is returned when a signing key's private part is handed to
// the store in clear: in a database several replicas share, keys rest sealed
// under the key-encryption key (wrap the store in tokens.SealedKeyStore).
var ErrClearKey = errors.New("store/postgres: signing key not sealed: with PostgreSQL the key-encryption key is required (MANDATE_SIGNING_KEK or signing.kek_file)")

// Options configures Open.
type Options struct {
	// Replica names this process's audit hash chain: each replica appends to
	// its own chain, so audit writes of different replicas never wait for
	// one another. It must be stable across restarts and differ between
	// replicas running at once (two sharing one stay correct, but contend).
	// Empty: the host name.
	Replica string
	// Retention keeps expired token records this long (see store.Retention).
	Retention time.Duration
	// AuditRetention keeps audit records this long (zero: for ever).
	AuditRetention time.Duration
	// RevocationGrace keeps a revocation record this long after its token's
	// expiry.
	RevocationGrace time.Duration
	// WriteTimeout bounds one group commit (default 30s): past it the
	// writes waiting on it fail, and nothing of them is acknowledged.
	WriteTimeout time.Duration
	// MaxBatch bounds the writes one group commit carries (default 512).
	MaxBatch int
}

func (o Options) retention() store.Retention {
	return store.Retention{Tokens: o.Retention, Revocations: o.RevocationGrace, Audit: o.AuditRetention}
}

// DB is the PostgreSQL store, safe for concurrent use.
type DB struct {
	pool     *pgxpool.Pool
	desc     string // describe(cfg): the database, never the password
	ret      store.Retention
	replica  string
	id       string
	readOnly bool
	timeout  time.Duration
	maxBatch int

	mu      sync.RWMutex // guards closed against sends on queue
	closed  bool
	queue   chan *op
	drained chan struct{} // closed when the committer has exited
	once    sync.Once

	closing   chan struct{}  // closed by Close: listeners stop
	listeners sync.WaitGroup // Listen's goroutines
}

// Compile-time checks that DB is a complete store: everything the core
// persists through, the collector, and the signing-key store.
var (
	_ store.Tokens        = (*DB)(nil)
	_ store.Revocations   = (*DB)(nil)
	_ store.RevocationLog = (*DB)(nil)
	_ store.Audit         = (*DB)(nil)
	_ store.Collector     = (*DB)(nil)
	_ store.Suspensions   = (*DB)(nil)
	_ tokens.KeyStore     = (*DB)(nil)
	_ store.Replays       = (*DB)(nil)
	_ store.SingleUse     = (*DB)(nil)
	_ io.Closer           = (*DB)(nil)
)

// Open connects to the database dsn names (a postgres:// URL or key=value
// pairs, as libpq reads them; pool_max_conns and the like as pgxpool reads
// them), migrates its schema to SchemaVersion, and starts the group
// committer. A database migrated by a newer Mandate is refused
// (ErrSchemaNewer).
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	return open(ctx, dsn, opts, false)
}

// OpenReadOnly opens the database dsn names without changing it, for
// forensics: its sessions are read-only, it migrates nothing (a database
// not at SchemaVersion is refused), and every write returns
// store.ErrReadOnly. Options.Replica chooses the chain AuditAfter and
// AuditTail read.
func OpenReadOnly(ctx context.Context, dsn string, opts Options) (*DB, error) {
	return open(ctx, dsn, opts, true)
}

func open(ctx context.Context, dsn string, opts Options, readOnly bool) (*DB, error) {
	replica, err := replicaName(opts.Replica)
	if err != nil {
		return nil, err
	}
	cfg, err := parseDSN(dsn, readOnly)
	if err != nil {
		return nil, err
	}
	secret := cfg.ConnConfig.Password
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(errorf("store/postgres: connect: %w", err), secret)
	}
	d := &DB{pool: pool, desc: describe(cfg), closing: make(chan struct{}), ret: opts.retention(), replica: replica, readOnly: readOnly, timeout: opts.WriteTimeout, maxBatch: opts.MaxBatch}
	if d.timeout <= 0 {
		d.timeout = 30 * time.Second
	}
	if d.maxBatch <= 0 {
		d.maxBatch = 512
	}
	if readOnly {
		d.id, err = checkSchema(ctx, pool)
	} else {
		d.id, err = migrate(ctx, pool)
		if err == nil {
			_, err = pool.Exec(ctx, `INSERT INTO mandate_audit_chains (replica) VALUES ($1) ON CONFLICT (replica) DO NOTHING`, replica)
		}
	}
	if err != nil {
		pool.Close()
		return nil, scrub(errorf("store/postgres: open %s: %w", describe(cfg), err), secret)
	}
	d.drained = make(chan struct{})
	if readOnly {
		close(d.drained)
	} else {
		d.queue = make(chan *op, 4*d.maxBatch)
		go d.commitLoop()
	}
	return d, nil
}

// replicaName is opts.Replica, or the host name when it is empty.
func replicaName(name string) (string, error) {
	if name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return "", errorf("store/postgres: no replica name given and no host name to use: %v", err)
		}
		name = host
	}
	if len(name) > 200 || !validText(name) {
		return "", errors.New("store/postgres: a replica name is up to 200 bytes of UTF-8 text without NUL")
	}
	return name, nil
}

// parseDSN parses dsn, never repeating it (nor the parser's words, which
// may quote it) in an error.
func parseDSN(dsn string, readOnly bool) (*pgxpool.Config, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("%w: it is empty", ErrDSN)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not parse as a postgres:// URL or key=value pairs (its text is not shown: it may hold a password)", ErrDSN)
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "mandate"
	}
	if readOnly {
		rp["default_transaction_read_only"] = "on"
	}
	if rp["statement_timeout"] == "" {
		// A database that answers connections but not statements (a lock
		// held by a stuck session, a saturated disk) fails a request
		// after this, as unavailable, instead of holding it and its
		// connection for ever. A DSN's own statement_timeout wins.
		rp["statement_timeout"] = DefaultStatementTimeout
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without one, a database host that drops packets holds every
		// request that needs a new connection for as long as TCP retries,
		// instead of answering that the store is unavailable.
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg, nil
}

// Describe names the database dsn points at — user, hosts, port and
// database, never the password — for logs and status lines.
func Describe(dsn string) string {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return "(a DSN that does not parse)"
	}
	return describe(cfg)
}

func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	hosts := []string{fmt.Sprintf("%s:%d", c.Host, c.Port)}
	for _, fb := range c.Fallbacks {
		hosts = append(hosts, fmt.Sprintf("%s:%d", fb.Host, fb.Port))
	}
	return fmt.Sprintf("postgres database %q on %s as %q", c.Database, strings.Join(hosts, ","), c.User)
}

// scrubbedError is an error whose text had the password cut out.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub removes secret from err's text. The driver's errors do not quote
// passwords; this is the second lock on that door.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &scrubbedError{msg: strings.ReplaceAll(err.Error(), secret, "[password]"), err: err}
}

// validText reports whether s can be stored in a PostgreSQL text column:
// UTF-8 without NUL.
func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// checkText refuses a key PostgreSQL's text cannot hold, before it reaches
// a group commit it would fail.
func checkText(what, s string) error {
	if !validText(s) {
		return errorf("store/postgres: %s is not UTF-8 text without NUL", what)
	}
	return nil
}

// Close stops listening (Listen), stops accepting writes, waits for those
// already queued to commit, and closes the connections. Closing twice is
// harmless.
func (d *DB) Close() error {
	d.once.Do(func() {
		close(d.closing)
		d.listeners.Wait()
		d.mu.Lock()
		d.closed = true
		if d.queue != nil {
			close(d.queue)
		}
		d.mu.Unlock()
		<-d.drained
		d.pool.Close()
	})
	return nil
}

// ID identifies this store: made once per database, shared by every
// replica on it, so a feed cursor is valid at any replica.
func (d *DB) ID() string { return d.id }

// Replica is the name of the audit chain this DB appends to.
func (d *DB) Replica() string { return d.replica }

// Describe names the database this DB is connected to (as Describe does
// for a DSN): never the password.
func (d *DB) Describe() string { return d.desc }

// PoolStats is a reading of the connection pool, for monitoring.
type PoolStats struct {
	Total, Idle, Acquired, Max int32
	// Acquires counts connections handed out; EmptyAcquires those a caller
	// had to wait for (none was idle), and AcquireWait the time callers
	// spent waiting in all.
	Acquires, EmptyAcquires int64
	AcquireWait             time.Duration
}

// PoolStats reads the connection pool's state.
func (d *DB) PoolStats() PoolStats {
	s := d.pool.Stat()
	return PoolStats{Total: s.TotalConns(), Idle: s.IdleConns(), Acquired: s.AcquiredConns(), Max: s.MaxConns(),
		Acquires: s.AcquireCount(), EmptyAcquires: s.EmptyAcquireCount(), AcquireWait: s.AcquireDuration()}
}

// Ping reports whether the database answers and holds the store, for
// readiness checks.
func (d *DB) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var id string
	if err := d.pool.QueryRow(ctx, `SELECT store_id FROM mandate_meta`).Scan(&id); err != nil {
		return errorf("store/postgres: ping: %w", err)
	}
	return nil
}

// seqArg is a log position as a bigint; positions beyond int64 exist
// nowhere, so they are clamped to the largest.
func seqArg(seq uint64) int64 {
	if seq > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(seq)
}

// PutToken durably stores rec (replacing a record of its jti) and appends
// ev, if not nil, to this replica's audit chain, in a group commit.
func (d *DB) PutToken(ctx context.Context, rec *store.TokenRecord, ev *store.AuditEvent) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	if rec == nil || rec.JTI == "" {
		return errors.New("store/postgres: token record without jti")
	}
	for what, s := range map[string]string{"jti": rec.JTI, "parent": rec.Parent, "holder": rec.Holder} {
		if err := checkText(what, s); err != nil {
			return err
		}
	}
	return d.submit(ctx, &op{kind: opToken, token: rec, ev: ev})
}

// Token returns the record with the given jti, or store.ErrNotFound.
func (d *DB) Token(ctx context.Context, jti string) (*store.TokenRecord, error) {
	if !validText(jti) {
		return nil, store.ErrNotFound // never stored: writes refuse it
	}
	var raw []byte
	err := d.pool.QueryRow(ctx, `SELECT record FROM mandate_tokens WHERE jti = $1`, jti).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, errorf("store/postgres: token %q: %w", jti, err)
	}
	return decodeToken(jti, raw)
}

func decodeToken(jti string, raw []byte) (*store.TokenRecord, error) {
	var rec store.TokenRecord
	if err := unmarshal(raw, &rec); err != nil {
		return nil, errorf("store/postgres: token record %q: %w", jti, err)
	}
	return &rec, nil
}

// Children returns the jtis issued directly from jti, in jti order.
func (d *DB) Children(ctx context.Context, jti string) ([]string, error) {
	if !validText(jti) {
		return nil, nil
	}
	rows, err := d.pool.Query(ctx, `SELECT jti FROM mandate_tokens WHERE parent = $1 ORDER BY jti`, jti)
	if err != nil {
		return nil, errorf("store/postgres: children of %q: %w", jti, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, errorf("store/postgres: children of %q: %w", jti, err)
	}
	return out, nil
}

// afterSecond is the first whole second after t's: an expiry column (whole
// seconds, see expirySecond) at or after it has not expired by t.
func afterSecond(t time.Time) time.Time { return time.Unix(t.Unix()+1, 0) }

// HeldBy returns the records of holder's tokens that expire after now,
// soonest expiry first.
func (d *DB) HeldBy(ctx context.Context, holder string, now time.Time) ([]*store.TokenRecord, error) {
	if !validText(holder) {
		return nil, nil
	}
	rows, err := d.pool.Query(ctx, `SELECT jti, record FROM mandate_tokens WHERE holder = $1 AND expires_at >= $2 ORDER BY expires_at, jti`,
		holder, afterSecond(now))
	if err != nil {
		return nil, errorf("store/postgres: tokens held by %q: %w", holder, err)
	}
	return collectTokens(rows)
}

// ScanTokens returns up to limit records with a jti after the given one, in
// jti order, holding nothing once it returns.
func (d *DB) ScanTokens(ctx context.Context, after string, limit int) ([]*store.TokenRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	if err := checkText("the jti to scan after", after); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `SELECT jti, record FROM mandate_tokens WHERE jti > $1 ORDER BY jti LIMIT $2`, after, limit)
	if err != nil {
		return nil, errorf("store/postgres: scan tokens: %w", err)
	}
	return collectTokens(rows)
}

func collectTokens(rows pgx.Rows) ([]*store.TokenRecord, error) {
	var out []*store.TokenRecord
	err := decodeRows(rows, "read token records", "token record %q", func(_ string, rec store.TokenRecord) { out = append(out, &rec) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeRows reads rows of a key and a JSON record, passing each record,
// decoded into a V, to add with its key. Errors name the rows (what) or
// the record (one: a format of its key).
func decodeRows[K, V any](rows pgx.Rows, what, one string, add func(K, V)) error {
	defer rows.Close()
	for rows.Next() {
		var key K
		var raw []byte
		if err := rows.Scan(&key, &raw); err != nil {
			return errorf("store/postgres: %s: %w", what, err)
		}
		var v V
		if err := unmarshal(raw, &v); err != nil {
			return errorf("store/postgres: "+one+": %w", key, err)
		}
		add(key, v)
	}
	if err := rows.Err(); err != nil {
		return errorf("store/postgres: %s: %w", what, err)
	}
	return nil
}

// Revoke durably records r, appending it to the revocation log with the
// next Seq, and appends ev (if not nil) to the audit trail, in a group
// commit. If the token is already revoked it returns the existing record
// and false, changing nothing.
func (d *DB) Revoke(ctx context.Context, r store.Revocation, ev *store.AuditEvent) (store.Revocation, bool, error) {
	if d.readOnly {
		return r, false, store.ErrReadOnly
	}
	if r.JTI == "" {
		return r, false, errors.New("store/postgres: revocation without jti")
	}
	if err := checkText("jti", r.JTI); err != nil {
		return r, false, err
	}
	o := &op{kind: opRevoke, rev: r, ev: ev}
	if err := d.submit(ctx, o); err != nil {
		return r, false, err
	}
	return o.result, o.created, nil
}

// FirstRevoked returns the revocation of the first jti in jtis that is
// revoked, or nil.
func (d *DB) FirstRevoked(ctx context.Context, jtis ...string) (*store.Revocation, error) {
	valid := make([]string, 0, len(jtis)) // others were never stored: writes refuse them
	for _, j := range jtis {
		if validText(j) {
			valid = append(valid, j)
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	rows, err := d.pool.Query(ctx, `SELECT jti, record FROM mandate_revocations WHERE jti = ANY($1)`, valid)
	if err != nil {
		return nil, errorf("store/postgres: revocations: %w", err)
	}
	found, err := collectRevocations(rows)
	if err != nil {
		return nil, err
	}
	for _, j := range jtis {
		if r, ok := found[j]; ok {
			return &r, nil
		}
	}
	return nil, nil
}

func collectRevocations(rows pgx.Rows) (map[string]store.Revocation, error) {
	out := map[string]store.Revocation{}
	if err := decodeRows(rows, "read revocations", "revocation of %q", func(jti string, r store.Revocation) { out[jti] = r }); err != nil {
		return nil, err
	}
	return out, nil
}

// RevocationsAfter returns up to limit (all when limit <= 0) stored
// revocations with Seq > after, in order; next is the Seq of the last entry
// returned when more follow, else head, the Seq of the newest revocation
// ever recorded. The head and the entries are read in one statement, so one
// snapshot: since revocations commit in Seq order, no entry at or below
// next can commit after this read.
func (d *DB) RevocationsAfter(ctx context.Context, after uint64, limit int) ([]store.Revocation, uint64, uint64, error) {
	var lim *int
	if limit > 0 {
		n := limit + 1 // one more, to tell a full page from the end
		lim = &n
	}
	rows, err := d.pool.Query(ctx, `SELECT h.seq, r.seq, r.record FROM mandate_revocation_head h
		LEFT JOIN LATERAL (SELECT seq, record FROM mandate_revocations WHERE seq > $1 ORDER BY seq LIMIT $2) r ON true
		ORDER BY r.seq`, seqArg(after), lim)
	if err != nil {
		return nil, 0, 0, errorf("store/postgres: revocation log: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	var head int64
	var seqs []int64
	for rows.Next() {
		var seq *int64
		var raw []byte
		if err := rows.Scan(&head, &seq, &raw); err != nil {
			return nil, 0, 0, errorf("store/postgres: revocation log: %w", err)
		}
		if seq == nil {
			continue
		}
		var r store.Revocation
		if err := unmarshal(raw, &r); err != nil {
			return nil, 0, 0, errorf("store/postgres: revocation log entry %d: %w", *seq, err)
		}
		out, seqs = append(out, r), append(seqs, *seq)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, errorf("store/postgres: revocation log: %w", err)
	}
	next := uint64(head)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		next = uint64(seqs[limit-1])
	}
	return out, next, uint64(head), nil
}

// RevocationAt returns the jti logged at seq, if that entry is still stored.
func (d *DB) RevocationAt(ctx context.Context, seq uint64) (string, bool, error) {
	var jti string
	err := d.pool.QueryRow(ctx, `SELECT jti FROM mandate_revocations WHERE seq = $1`, seqArg(seq)).Scan(&jti)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, errorf("store/postgres: revocation log entry %d: %w", seq, err)
	}
	return jti, true, nil
}

// Suspend durably records that client gets no token until until (one entry
// per client, replaced).
func (d *DB) Suspend(ctx context.Context, client string, until time.Time) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	if err := checkText("client", client); err != nil {
		return err
	}
	// One transaction, so the notification is delivered at its commit.
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`INSERT INTO mandate_suspensions (client, suspended_until) VALUES ($1, $2)
		ON CONFLICT (client) DO UPDATE SET suspended_until = excluded.suspended_until`, client, until)
	b.Queue(`SELECT pg_notify($1, $2)`, ChannelSuspensions, client)
	err := d.sendAndCommit(ctx, b)
	if err != nil {
		return errorf("store/postgres: suspend %q: %w", client, err)
	}
	return nil
}

// Suspended returns the suspensions in force at now.
func (d *DB) Suspended(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	rows, err := d.pool.Query(ctx, `SELECT client, suspended_until FROM mandate_suspensions`)
	if err != nil {
		return nil, errorf("store/postgres: suspensions: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var client string
		var until time.Time
		if err := rows.Scan(&client, &until); err != nil {
			return nil, errorf("store/postgres: suspensions: %w", err)
		}
		if now.Before(until) {
			out[client] = until.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("store/postgres: suspensions: %w", err)
	}
	return out, nil
}

// SigningKeys returns every stored signing key, as stored (sealed).
func (d *DB) SigningKeys(ctx context.Context) ([]tokens.StoredKey, error) {
	rows, err := d.pool.Query(ctx, `SELECT kid, record FROM mandate_signing_keys ORDER BY kid`)
	if err != nil {
		return nil, errorf("store/postgres: signing keys: %w", err)
	}
	var out []tokens.StoredKey
	if err := decodeRows(rows, "signing keys", "signing key %s", func(_ string, k tokens.StoredKey) { out = append(out, k) }); err != nil {
		return nil, err
	}
	return out, nil
}

// AddSigningKey durably stores a new signing key, which must be sealed (or
// destroyed); a kid already present is an error.
func (d *DB) AddSigningKey(ctx context.Context, k tokens.StoredKey) error {
	return d.putSigningKey(ctx, k, false)
}

// ReplaceSigningKey durably replaces the stored key of k's kid (to destroy
// a retired key's private part, or mark a key compromised); k must be
// sealed or destroyed.
func (d *DB) ReplaceSigningKey(ctx context.Context, k tokens.StoredKey) error {
	return d.putSigningKey(ctx, k, true)
}

func (d *DB) putSigningKey(ctx context.Context, k tokens.StoredKey, replace bool) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	if !k.Sealed && !k.Destroyed() {
		return fmt.Errorf("%w (key %s)", ErrClearKey, k.ID)
	}
	if err := checkText("kid", k.ID); err != nil {
		return err
	}
	val, err := marshal(k)
	if err != nil {
		return errorf("store/postgres: encode signing key %s: %w", k.ID, err)
	}
	query := `INSERT INTO mandate_signing_keys (kid, record) VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING`
	if replace {
		query = `UPDATE mandate_signing_keys SET record = $2 WHERE kid = $1`
	}
	var tag pgconn.CommandTag
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var err error
		if tag, err = tx.Exec(ctx, query, k.ID, val); err != nil {
			return err
		}
		// Delivered at commit: every replica re-reads its key ring.
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelSigningKeys, k.ID)
		return err
	})
	switch {
	case err != nil:
		return errorf("store/postgres: store signing key %s: %w", k.ID, err)
	case tag.RowsAffected() == 0 && replace:
		return errorf("store/postgres: signing key %s is not stored", k.ID)
	case tag.RowsAffected() == 0:
		return errorf("store/postgres: signing key %s already stored", k.ID)
	}
	return nil
}

// sendAndCommit sends b, which begins a transaction (Batch.BeginTx), reads
// every answer, and commits.
func (d *DB) sendAndCommit(ctx context.Context, b *pgx.Batch) error {
	br := d.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(ctx) }() // after Commit, a no-op
	if err := br.Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// RecordOnce is FirstUse (store.SingleUse): every replica shares the record.
func (d *DB) RecordOnce(ctx context.Context, kind, key string, expires time.Time) (bool, error) {
	return d.FirstUse(ctx, kind, key, expires)
}

// FirstUse durably records key in namespace kind (store.ReplayDPoP, …)
// until expires, in a group
// commit, and reports whether this call recorded it: false when it was
// recorded before (by any replica) and has not been collected, a replay.
// Records are collected once expired.
func (d *DB) FirstUse(ctx context.Context, kind, key string, expires time.Time) (bool, error) {
	if d.readOnly {
		return false, store.ErrReadOnly
	}
	if kind == "" || key == "" {
		return false, errors.New("store/postgres: a single-use value needs a kind and a key")
	}
	for what, s := range map[string]string{"kind": kind, "key": key} {
		if err := checkText(what, s); err != nil {
			return false, err
		}
	}
	o := &op{kind: opReplay, replay: replayKey{kind, key}, replayExp: expires}
	if err := d.submit(ctx, o); err != nil {
		return false, err
	}
	return o.created, nil
}
