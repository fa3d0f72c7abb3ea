package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
	"github.com/mandate-auth/mandate/store/storetest"
	"github.com/mandate-auth/mandate/tokens"
)

// TestMain starts one throw-away PostgreSQL for the package's tests.
func TestMain(m *testing.M) { pgtest.Main(m) }

var ctx = context.Background()

// kek is the tests' key-encryption key: with PostgreSQL, keys rest sealed.
var kek = bytes.Repeat([]byte{7}, tokens.KEKSize)

// conformanceReplica names the audit chain of the conformance suite's stores.
const conformanceReplica = "conformance"

// TestConformance runs the conformance suite every store backend passes.
// The suite hands out a directory per store; each gets its own database.
func TestConformance(t *testing.T) {
	c := pgtest.Need(t)
	dbs := &dirDatabases{c: c, dsn: map[string]string{}}
	opts := func(r store.Retention) postgres.Options {
		return postgres.Options{Replica: conformanceReplica, Retention: r.Tokens, RevocationGrace: r.Revocations, AuditRetention: r.Audit}
	}
	storetest.Run(t, storetest.Backend{
		Open: func(dir string, r store.Retention) (storetest.Store, error) {
			dsn, err := dbs.dsnFor(dir)
			if err != nil {
				return nil, err
			}
			return sealed(postgres.Open(ctx, dsn, opts(r)))
		},
		OpenReadOnly: func(dir string) (storetest.Store, error) {
			dsn, err := dbs.dsnFor(dir)
			if err != nil {
				return nil, err
			}
			return sealed(postgres.OpenReadOnly(ctx, dsn, postgres.Options{Replica: conformanceReplica}))
		},
		Tamper: func(dir string, edit func(storetest.AuditTrail) error) error {
			dsn, err := dbs.dsnFor(dir)
			if err != nil {
				return err
			}
			return tamper(dsn, conformanceReplica, edit)
		},
	})
}

// dirDatabases gives each directory the suite hands out a database of its own.
type dirDatabases struct {
	c   *pgtest.Cluster
	mu  sync.Mutex
	dsn map[string]string
}

func (d *dirDatabases) dsnFor(dir string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dsn, ok := d.dsn[dir]; ok {
		return dsn, nil
	}
	name, err := d.c.CreateDatabase(ctx, "conformance")
	if err != nil {
		return "", err
	}
	d.dsn[dir] = d.c.DSN(name)
	return d.dsn[dir], nil
}

// sealedStore is the store as a server runs it on PostgreSQL: its signing
// keys pass through tokens.SealedKeyStore under the KEK, since the store
// itself refuses a key in clear.
type sealedStore struct {
	*postgres.DB
	keys *tokens.SealedKeyStore
}

func sealed(db *postgres.DB, err error) (storetest.Store, error) {
	if err != nil {
		return nil, err
	}
	ks, err := tokens.NewSealedKeyStore(db, kek)
	if err != nil {
		db.Close()
		return nil, err
	}
	return sealedStore{DB: db, keys: ks}, nil
}

func (s sealedStore) SigningKeys(ctx context.Context) ([]tokens.StoredKey, error) {
	return s.keys.SigningKeys(ctx)
}

func (s sealedStore) AddSigningKey(ctx context.Context, k tokens.StoredKey) error {
	return s.keys.AddSigningKey(ctx, k)
}

func (s sealedStore) ReplaceSigningKey(ctx context.Context, k tokens.StoredKey) error {
	return s.keys.ReplaceSigningKey(ctx, k)
}

// tamper edits one replica's audit chain in the database behind the
// store's back, for the suite's tamper-detection tests.
func tamper(dsn, replica string, edit func(storetest.AuditTrail) error) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := edit(rawTrail{tx: tx, replica: replica}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// rawTrail is one chain's rows, edited with no rule applied.
type rawTrail struct {
	tx      pgx.Tx
	replica string
}

func (r rawTrail) Record(n uint64) ([]byte, error) {
	var raw []byte
	err := r.tx.QueryRow(ctx, `SELECT record FROM mandate_audit WHERE replica = $1 AND seq = $2`, r.replica, int64(n)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return raw, err
}

func (r rawTrail) PutRecord(n uint64, raw []byte) error {
	_, err := r.tx.Exec(ctx, `INSERT INTO mandate_audit (replica, seq, record) VALUES ($1, $2, $3)
		ON CONFLICT (replica, seq) DO UPDATE SET record = excluded.record`, r.replica, int64(n), string(raw))
	return err
}

func (r rawTrail) DeleteRecord(n uint64) error {
	_, err := r.tx.Exec(ctx, `DELETE FROM mandate_audit WHERE replica = $1 AND seq = $2`, r.replica, int64(n))
	return err
}

func (r rawTrail) SetBase(b store.AuditBase) error {
	_, err := r.tx.Exec(ctx, `UPDATE mandate_audit_chains SET base_seq = $2, base_hash = $3 WHERE replica = $1`, r.replica, int64(b.Seq), b.Hash)
	return err
}

// The conformance suite's clock and token record.
var t0, rec = storetest.T0, storetest.Rec

// open opens a store on dsn as replica and closes it when t ends.
func open(t *testing.T, dsn, replica string, opts postgres.Options) *postgres.DB {
	t.Helper()
	opts.Replica = replica
	db, err := postgres.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMigrations: replicas starting at once on a new database all open it,
// migrated once, with one store id; opening again changes nothing; a
// database a newer Mandate migrated is refused.
func TestMigrations(t *testing.T) {
	c := pgtest.Need(t)
	for round := range 3 {
		dsn := c.NewDatabase(t)
		const replicas = 4
		ids := make([]string, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() {
				db, err := postgres.Open(ctx, dsn, postgres.Options{Replica: fmt.Sprintf("r%d", i)})
				if err != nil {
					t.Errorf("round %d, replica %d: %v", round, i, err)
					return
				}
				ids[i] = db.ID()
				db.Close()
			})
		}
		wg.Wait()
		for _, id := range ids[1:] {
			if id != ids[0] || id == "" {
				t.Fatalf("round %d: store ids %v, want one", round, ids)
			}
		}
		db := open(t, dsn, "r0", postgres.Options{})
		if db.ID() != ids[0] {
			t.Errorf("reopened store id %q, was %q", db.ID(), ids[0])
		}
		versions := query[int64](t, dsn, `SELECT version FROM mandate_schema_migrations ORDER BY version`)
		if len(versions) != postgres.SchemaVersion || versions[len(versions)-1] != int64(postgres.SchemaVersion) {
			t.Errorf("round %d: recorded versions %v, want 1..%d once each", round, versions, postgres.SchemaVersion)
		}
		if chains := query[int64](t, dsn, `SELECT count(*) FROM mandate_audit_chains`); chains[0] != replicas {
			t.Errorf("round %d: %d audit chains, want one per replica (%d)", round, chains[0], replicas)
		}
	}

	dsn := c.NewDatabase(t)
	open(t, dsn, "a", postgres.Options{}).Close()
	exec(t, dsn, `INSERT INTO mandate_schema_migrations (version) VALUES ($1)`, postgres.SchemaVersion+1)
	if _, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "a"}); !errors.Is(err, postgres.ErrSchemaNewer) {
		t.Errorf("open of a newer schema: %v, want ErrSchemaNewer", err)
	}
	if _, err := postgres.OpenReadOnly(ctx, dsn, postgres.Options{Replica: "a"}); !errors.Is(err, postgres.ErrSchemaNewer) {
		t.Errorf("read-only open of a newer schema: %v, want ErrSchemaNewer", err)
	}
	if _, err := postgres.OpenReadOnly(ctx, c.NewDatabase(t), postgres.Options{Replica: "a"}); !errors.Is(err, postgres.ErrNotMandate) {
		t.Errorf("read-only open of an empty database: %v, want ErrNotMandate", err)
	}
}

// query runs sql with args in dsn and returns its rows' one column.
func query[T any](t *testing.T, dsn, sql string, args ...any) []T {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, sql, args...)
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// TestRevocationLogInCommitOrder: several replicas (each its own pool and
// group committer) revoke at once, some the same jtis, while a follower
// reads the log from its cursor as a feed does. Every revocation gets one
// Seq, the Seqs are dense, and the follower — which never re-reads below
// its cursor — sees every one: no Seq ever becomes visible before a lower
// one.
func TestRevocationLogInCommitOrder(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	const replicas, each, shared = 4, 60, 20
	dbs := make([]*postgres.DB, replicas)
	for i := range dbs {
		dbs[i] = open(t, dsn, fmt.Sprintf("r%d", i), postgres.Options{})
	}
	follower := open(t, dsn, "follower", postgres.Options{})

	type ack struct {
		jti     string
		seq     uint64
		created bool
	}
	acks := make(chan ack, replicas*(each+shared))
	stop := make(chan struct{})
	seen := map[string]uint64{}
	var followed sync.WaitGroup
	followed.Go(func() {
		var cursor uint64
		for {
			// Stopped before the read: this read sees every acknowledged
			// revocation, so an empty page means the end.
			stopped := false
			select {
			case <-stop:
				stopped = true
			default:
			}
			page, next, head, err := follower.RevocationsAfter(ctx, cursor, 7)
			if err != nil {
				t.Error(err)
				return
			}
			for i, r := range page {
				if r.Seq != cursor+uint64(i)+1 {
					t.Errorf("after cursor %d the log served seq %d at %d: seq %d is skipped", cursor, r.Seq, i, cursor+uint64(i)+1)
					return
				}
				if prev, dup := seen[r.JTI]; dup {
					t.Errorf("%s served twice, as %d and %d", r.JTI, prev, r.Seq)
				}
				seen[r.JTI] = r.Seq
			}
			if len(page) > 0 && next != page[len(page)-1].Seq {
				t.Errorf("next %d after a page ending at %d (head %d): the cursor would skip", next, page[len(page)-1].Seq, head)
				return
			}
			if len(page) == 0 && next != cursor {
				t.Errorf("an empty page moved the cursor from %d to %d", cursor, next)
				return
			}
			cursor = next
			if stopped && len(page) == 0 {
				return
			}
		}
	})
	var wg sync.WaitGroup
	for i, db := range dbs {
		for j := range each + shared {
			wg.Go(func() {
				jti := fmt.Sprintf("r%d-%03d", i, j)
				if j >= each {
					jti = fmt.Sprintf("shared-%03d", j-each) // every replica revokes these
				}
				r, created, err := db.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: t0.Add(time.Hour), RevokedAt: t0},
					&store.AuditEvent{Time: t0, Type: store.AuditRevoked, JTI: jti})
				if err != nil {
					t.Error(err)
					return
				}
				acks <- ack{jti, r.Seq, created}
			})
		}
	}
	wg.Wait()
	close(stop)
	followed.Wait()
	close(acks)

	want := replicas*each + shared
	bySeq, byJTI := map[uint64]string{}, map[string]uint64{}
	created := map[string]int{}
	for a := range acks {
		if a.created {
			created[a.jti]++
			bySeq[a.seq] = a.jti
		}
		if s, ok := byJTI[a.jti]; ok && s != a.seq {
			t.Errorf("%s acknowledged with seqs %d and %d", a.jti, s, a.seq)
		}
		byJTI[a.jti] = a.seq
	}
	if len(bySeq) != want || len(byJTI) != want {
		t.Fatalf("%d seqs for %d jtis, want %d each", len(bySeq), len(byJTI), want)
	}
	for s := uint64(1); s <= uint64(want); s++ {
		if bySeq[s] == "" {
			t.Fatalf("seq %d was never assigned: seqs must be dense", s)
		}
	}
	for jti, n := range created {
		if n != 1 {
			t.Errorf("%s recorded %d times", jti, n)
		}
	}
	if len(seen) != want {
		t.Errorf("the follower saw %d revocations of %d", len(seen), want)
	}
	for jti, s := range byJTI {
		if seen[jti] != s {
			t.Errorf("%s acknowledged as seq %d, followed as %d", jti, s, seen[jti])
		}
	}
	// Each replica's audit chain holds exactly the revocations it recorded.
	chains, err := follower.VerifyAuditChains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, c := range chains {
		if !c.OK {
			t.Errorf("chain %s: %+v", c.Replica, c.AuditReport)
		}
		records += c.Records
	}
	if records != want {
		t.Errorf("%d audit records for %d revocations", records, want)
	}
}

// TestDurableOnReturn: every write is committed when it returns — a second
// store, on its own connections, reads it at once.
func TestDurableOnReturn(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	w := open(t, dsn, "writer", postgres.Options{})
	r := open(t, dsn, "reader", postgres.Options{})
	ks, err := tokens.NewSealedKeyStore(w, kek)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			jti := fmt.Sprintf("t%03d", i)
			if err := w.PutToken(ctx, rec(jti, []string{"root"}, t0.Add(time.Hour)), &store.AuditEvent{Time: t0, Type: store.AuditIssued, JTI: jti}); err != nil {
				t.Error(err)
				return
			}
			if _, err := r.Token(ctx, jti); err != nil {
				t.Errorf("token %s acknowledged but not readable elsewhere: %v", jti, err)
			}
			if i%3 != 0 {
				return
			}
			rv, _, err := w.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: t0.Add(time.Hour), RevokedAt: t0}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if got, err := r.FirstRevoked(ctx, jti); err != nil || got == nil || got.Seq != rv.Seq {
				t.Errorf("revocation of %s acknowledged (seq %d) but read elsewhere as %+v, %v", jti, rv.Seq, got, err)
			}
			if at, ok, _ := r.RevocationAt(ctx, rv.Seq); !ok || at != jti {
				t.Errorf("log entry %d read elsewhere as %q %v", rv.Seq, at, ok)
			}
		})
	}
	wg.Wait()
	if err := w.Suspend(ctx, "c", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Suspended(ctx, t0); s["c"].IsZero() {
		t.Error("suspension not readable elsewhere")
	}
	key, _ := tokens.GenerateKey(tokens.AlgEdDSA, t0)
	if err := ks.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if keys, _ := r.SigningKeys(ctx); len(keys) != 1 || keys[0].ID != key.ID {
		t.Errorf("signing key not readable elsewhere: %v", keys)
	}
	if err := w.Append(ctx, store.AuditEvent{Time: t0, Type: store.AuditKeyRotated, KID: key.ID}); err != nil {
		t.Fatal(err)
	}
	// The writer's chain, read through the reader's connections.
	rep, err := r.VerifyAuditChains(ctx)
	if err != nil || len(rep) != 2 || rep[1].Replica != "writer" || rep[1].Records != 101 || !rep[1].OK {
		t.Errorf("chains read elsewhere = %+v, %v", rep, err)
	}
	// Close lets queued writes finish; a write after Close is refused.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.PutToken(ctx, rec("late", nil, t0), nil); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

// TestRefusedWriteFailsAlone: a write the database refuses (here a CHECK
// an operator might have added) fails without failing the writes that
// would have committed with it: the group is retried one write at a time.
func TestRefusedWriteFailsAlone(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	db := open(t, dsn, "r", postgres.Options{})
	exec(t, dsn, `ALTER TABLE mandate_tokens ADD CONSTRAINT no_poison CHECK (jti <> 'poison')`)
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 60)
		for i := range errs {
			wg.Go(func() {
				jti := fmt.Sprintf("t%d-%02d", round, i)
				if i == 30 {
					jti = "poison"
				}
				errs[i] = db.PutToken(ctx, rec(jti, nil, t0.Add(time.Hour)), &store.AuditEvent{Time: t0, Type: store.AuditIssued, JTI: jti})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if (err != nil) != (i == 30) {
				t.Errorf("round %d, write %d: %v", round, i, err)
			}
		}
	}
	if rep, err := db.VerifyAudit(ctx); err != nil || !rep.OK || rep.Records != 5*59 {
		t.Errorf("audit after refused writes: %+v, %v", rep, err)
	}
}

// TestPasswordNeverInErrors: whatever goes wrong with a DSN that holds a
// password — a wrong one, a missing database or server, a DSN that does
// not parse — no error, nor any error it wraps, nor Describe, repeats it.
func TestPasswordNeverInErrors(t *testing.T) {
	c := pgtest.Need(t)
	const secret = "Zq8-secret-pw"
	name, err := c.CreateDatabase(ctx, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	role := "mandate_pw"
	for _, sql := range []string{
		"DROP ROLE IF EXISTS " + role,
		"CREATE ROLE " + role + " LOGIN PASSWORD '" + secret + "'",
		"ALTER DATABASE " + name + " OWNER TO " + role,
	} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	kv := func(password, database string) string {
		return fmt.Sprintf("host=%s user=%s password=%s dbname=%s sslmode=disable", c.Dir(), role, password, database)
	}
	good := open(t, kv(secret, name), "a", postgres.Options{})
	if err := good.PutToken(ctx, rec("t", nil, t0.Add(time.Hour)), nil); err != nil {
		t.Fatalf("the role with its password: %v", err)
	}
	for what, dsn := range map[string]string{
		"a wrong password":            kv("x"+secret, name),
		"a missing database":          kv(secret, "nope"),
		"no server at the host":       fmt.Sprintf("host=/nonexistent user=%s password=%s dbname=%s", role, secret, name),
		"a URL with a bad port":       fmt.Sprintf("postgres://%s:%s@localhost:99999999/%s", role, secret, name),
		"a URL with a bad escape":     fmt.Sprintf("postgres://%s:%s%%zz@localhost/%s", role, secret, name),
		"a URL that is not one":       fmt.Sprintf("postgres://%s:%s@[::1/%s", role, secret, name),
		"key=value with a bad port":   fmt.Sprintf("host=/tmp password=%s port=notaport", secret),
		"key=value with a bad quote":  fmt.Sprintf("host=/tmp password='%s", secret),
		"key=value with an odd token": fmt.Sprintf("host=/tmp password=%s =oops", secret),
	} {
		for _, readOnly := range []bool{false, true} {
			openFn := postgres.Open
			if readOnly {
				openFn = postgres.OpenReadOnly
			}
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			db, err := openFn(tctx, dsn, postgres.Options{Replica: "a"})
			cancel()
			if err == nil {
				db.Close()
				t.Errorf("%s: opened", what)
				continue
			}
			for e := error(err); e != nil; e = errors.Unwrap(e) {
				if bytes.Contains([]byte(e.Error()+fmt.Sprintf("%+v", e)), []byte(secret)) {
					t.Errorf("%s: the error repeats the password: %v", what, e)
				}
			}
			if what == "a wrong password" && !readOnly {
				t.Logf("%s: %v", what, err)
			}
		}
		if d := postgres.Describe(dsn); bytes.Contains([]byte(d), []byte(secret)) {
			t.Errorf("%s: Describe repeats the password: %s", what, d)
		}
	}
}

// TestSigningKeysRestSealed: the store refuses a private key in clear;
// through tokens.SealedKeyStore the key rests sealed, every replica with the
// KEK reads the same key, and without the right KEK nobody can.
func TestSigningKeysRestSealed(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	a := open(t, dsn, "a", postgres.Options{})
	b := open(t, dsn, "b", postgres.Options{})
	key, err := tokens.GenerateKey(tokens.AlgEdDSA, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddSigningKey(ctx, key); !errors.Is(err, postgres.ErrClearKey) {
		t.Fatalf("a key in clear was stored: %v", err)
	}
	ka, _ := tokens.NewSealedKeyStore(a, kek)
	if err := ka.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := a.ReplaceSigningKey(ctx, key); !errors.Is(err, postgres.ErrClearKey) {
		t.Errorf("a key in clear replaced a sealed one: %v", err)
	}
	raw := query[string](t, dsn, `SELECT record FROM mandate_signing_keys`)
	clear, _ := jsonString(key.PKCS8)
	if len(raw) != 1 || bytes.Contains([]byte(raw[0]), []byte(clear)) || !bytes.Contains([]byte(raw[0]), []byte(`"sealed":true`)) {
		t.Fatalf("stored key record %v: want it sealed", raw)
	}
	kb, _ := tokens.NewSealedKeyStore(b, kek)
	keys, err := kb.SigningKeys(ctx)
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].PKCS8, key.PKCS8) {
		t.Fatalf("the key read at another replica: %v, %v", keys, err)
	}
	other, _ := tokens.NewSealedKeyStore(b, bytes.Repeat([]byte{8}, tokens.KEKSize))
	if _, err := other.SigningKeys(ctx); !errors.Is(err, tokens.ErrKeySealed) {
		t.Errorf("the key opened under another KEK: %v", err)
	}
	// A destroyed key has nothing to seal: its record may replace the key's.
	gone := key
	gone.PKCS8 = nil
	if err := a.ReplaceSigningKey(ctx, gone); err != nil {
		t.Errorf("destroying the key: %v", err)
	}
}

// jsonString is b as encoding/json writes a []byte: base64 in quotes.
func jsonString(b []byte) (string, error) {
	raw, err := json.Marshal(b)
	return string(raw), err
}

// TestAuditChainPerReplica: each replica appends to its own chain; every
// chain verifies alone and VerifyAudit sums them up; any replica's
// collector collects every chain, each keeping a record that vouches for
// its new base, while the chain's replica keeps appending; an edit to one
// chain is reported with its name. Two processes given one replica name
// share a chain that stays whole.
func TestAuditChainPerReplica(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	r := postgres.Options{AuditRetention: time.Hour}
	a, b := open(t, dsn, "a", r), open(t, dsn, "b", r)
	b2 := open(t, dsn, "b", r) // a second process under b's name
	var wg sync.WaitGroup
	for _, db := range []*postgres.DB{a, b, b2} {
		wg.Go(func() {
			for i := range 10 {
				ev := store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), Type: store.AuditIssued, JTI: fmt.Sprintf("%s-%d", db.Replica(), i)}
				if err := db.Append(ctx, ev); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	chains, err := a.VerifyAuditChains(ctx)
	if err != nil || len(chains) != 2 || chains[0].Replica != "a" || chains[0].Records != 10 || chains[1].Records != 20 || !chains[0].OK || !chains[1].OK {
		t.Fatalf("chains = %+v, %v", chains, err)
	}
	rep, err := a.VerifyAudit(ctx)
	if err != nil || !rep.OK || rep.Records != 30 || rep.First != 1 || rep.Last != 10 || rep.Head != chains[0].Head {
		t.Fatalf("summed report at a = %+v, %v", rep, err)
	}

	// a collects both chains while b appends: records written before
	// t0+5m1s, from the start of each chain to the first kept — a's first 6,
	// and at least b's first 2 (its two writers interleave).
	wg.Go(func() {
		for i := range 20 {
			if err := b.Append(ctx, store.AuditEvent{Time: t0.Add(2 * time.Hour), Type: store.AuditRefused, JTI: fmt.Sprintf("late-%d", i)}); err != nil {
				t.Error(err)
			}
		}
	})
	res, err := a.GC(t0.Add(time.Hour + 5*time.Minute + time.Second))
	wg.Wait()
	if err != nil || res.Audit < 6+2 {
		t.Fatalf("GC = %+v, %v", res, err)
	}
	chains, err = b.VerifyAuditChains(ctx)
	if err != nil || len(chains) != 2 || !chains[0].OK || !chains[1].OK || chains[0].First != 7 || chains[0].Records != 5 {
		t.Fatalf("chains after collection = %+v, %v", chains, err)
	}
	tail, _ := b.AuditTail(ctx, 100)
	collected := 0
	for _, rec := range tail {
		if rec.Type == store.AuditCollected {
			collected++
		}
	}
	if collected != 1 || len(tail) != chains[1].Records {
		t.Errorf("b's chain after collection: %d records, %d collection records", len(tail), collected)
	}

	if err := tamper(dsn, "b", func(tr storetest.AuditTrail) error {
		return tr.PutRecord(uint64(tail[2].Seq), []byte(`{"seq":0}`))
	}); err != nil {
		t.Fatal(err)
	}
	rep, err = a.VerifyAudit(ctx)
	if err != nil || rep.OK || rep.BrokenAt != tail[2].Seq || !bytes.HasPrefix([]byte(rep.Problem), []byte(`chain "b": `)) {
		t.Errorf("report of a tampered chain b, at a = %+v, %v", rep, err)
	}
}

// TestKeysTextCannotHold: a jti, holder or client that PostgreSQL's text
// cannot hold (NUL, invalid UTF-8) is refused by writes, alone, and reads
// find nothing for it rather than fail.
func TestKeysTextCannotHold(t *testing.T) {
	db := open(t, pgtest.Need(t).NewDatabase(t), "r", postgres.Options{})
	for _, bad := range []string{"nul\x00", "bad\xff"} {
		r := rec(bad, nil, t0.Add(time.Hour))
		if err := db.PutToken(ctx, r, nil); err == nil {
			t.Errorf("token %q stored", bad)
		}
		r = rec("ok", []string{bad}, t0.Add(time.Hour))
		if err := db.PutToken(ctx, r, nil); err == nil {
			t.Errorf("parent %q stored", bad)
		}
		if _, _, err := db.Revoke(ctx, store.Revocation{JTI: bad, ExpiresAt: t0}, nil); err == nil {
			t.Errorf("revocation of %q stored", bad)
		}
		if err := db.Suspend(ctx, bad, t0); err == nil {
			t.Errorf("suspension of %q stored", bad)
		}
		if _, err := db.Token(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(%q): %v", bad, err)
		}
		if kids, err := db.Children(ctx, bad); len(kids) != 0 || err != nil {
			t.Errorf("Children(%q) = %v, %v", bad, kids, err)
		}
		if held, err := db.HeldBy(ctx, bad, t0); len(held) != 0 || err != nil {
			t.Errorf("HeldBy(%q) = %v, %v", bad, held, err)
		}
		if r, err := db.FirstRevoked(ctx, bad); r != nil || err != nil {
			t.Errorf("FirstRevoked(%q) = %v, %v", bad, r, err)
		}
	}
	if err := db.PutToken(ctx, rec("fine", nil, t0.Add(time.Hour)), nil); err != nil {
		t.Errorf("a good write after refused ones: %v", err)
	}
}
