// Package bolt is Mandate's embedded store on a single bbolt file.
//
// Layout: one bucket per kind of record, JSON values, and two expiry indexes
// (big-endian expiry seconds + jti) so garbage collection reads only what has
// expired. Token writes go through bbolt's Batch, so concurrent requests share
// one fsync (group commit) and each caller returns only once its transaction is
// on disk. The file is created 0600 in a 0700 directory and Open refuses a file
// others can read and a directory others can write, since the file holds the
// private signing keys.
package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

var (
	bucketTokens      = []byte("tokens")       // jti → TokenRecord
	bucketChildren    = []byte("children")     // parent jti 0x00 child jti → nil
	bucketHolders     = []byte("holders")      // holder 0x00 exp(8) jti → nil
	bucketTokenExpiry = []byte("token_expiry") // exp(8) jti → nil
	bucketRevocations = []byte("revocations")  // jti → Revocation
	bucketRevExpiry   = []byte("rev_expiry")   // exp(8) jti → nil
	bucketRevLog      = []byte("rev_log")      // seq(8) → jti; bucket sequence = head
	bucketKeys        = []byte("keys")         // kid → tokens.StoredKey
	bucketSuspensions = []byte("suspensions")  // client → until (RFC 3339); newer than the rest: optional read-only
	bucketOnce        = []byte("once")         // kind 0x00 key → exp(8): single-use values (RecordOnce); newer
	bucketOnceExpiry  = []byte("once_expiry")  // exp(8) kind 0x00 key → nil
	bucketMeta        = []byte("meta")         // store_id → random id; audit_head, audit_base
	bucketAudit       = []byte("audit")        // seq(8) → AuditRecord
	allBuckets        = [][]byte{bucketTokens, bucketChildren, bucketHolders, bucketTokenExpiry, bucketRevocations, bucketRevExpiry, bucketRevLog, bucketKeys, bucketMeta, bucketAudit}
	newerBuckets      = [][]byte{bucketSuspensions, bucketOnce, bucketOnceExpiry} // created by Open; a file from before may lack them
	keyStoreID        = []byte("store_id")
	keyAuditHead      = []byte("audit_head") // hash of the newest audit record
	keyAuditBase      = []byte("audit_base") // seq(8) hash of the newest collected record
)

// FileName is the store's file inside the data directory.
const FileName = "mandate.db"

// appendFill is how full bbolt packs pages of buckets whose keys mostly
// arrive in order (jtis sort by issuance time; expiry and audit keys by
// time): an appended key never lands in a page it would have to split, so
// packing them full (instead of bbolt's half-full default) halves the pages.
const appendFill = 0.95

// ErrInsecurePermissions reports a data file or directory others can read or write.
var ErrInsecurePermissions = errors.New("insecure permissions")

// Options configures Open.
type Options struct {
	// Retention keeps expired token records this long for lineage and audit
	// before collection.
	Retention time.Duration
	// AuditRetention keeps audit records this long (zero: for ever); older ones
	// are collected, and a chained record vouches for the new start.
	AuditRetention time.Duration
	// RevocationGrace keeps a revocation record this long after its token's
	// expiry (the revocation feed serves it to verifiers that allow clock
	// skew), then collects it.
	RevocationGrace time.Duration
	// LockTimeout bounds the wait for another process's lock on the file (default 2s).
	LockTimeout time.Duration
}

// DB is the bbolt-backed store, safe for concurrent use.
type DB struct {
	db       *bbolt.DB
	ret      store.Retention
	readOnly bool
	id       string
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
	_ store.SingleUse     = (*DB)(nil)
	_ io.Closer           = (*DB)(nil)
)

// retention gathers the options' retention rules.
func (o Options) retention() store.Retention {
	return store.Retention{Tokens: o.Retention, Revocations: o.RevocationGrace, Audit: o.AuditRetention}
}

// Open opens (creating if needed) <dir>/mandate.db. The directory is created
// 0700 and the file 0600; an existing file others can read, or a directory
// others can write, is refused rather than silently used.
func Open(dir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	if err := checkPrivate(dir, true); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	if err := checkPrivate(path, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: the file is locked by another process (is another mandate running on this data_dir?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	bdb.MaxBatchDelay = 2 * time.Millisecond
	var id string
	err = bdb.Update(func(tx *bbolt.Tx) error {
		indexHolders := tx.Bucket(bucketHolders) == nil && tx.Bucket(bucketTokens) != nil
		for _, b := range append(allBuckets, newerBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if indexHolders { // a store from before the holder index: build it once
			if err := backfillHolders(tx); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyStoreID); v != nil {
			id = string(v)
			return nil
		}
		var raw [8]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return err
		}
		id = hex.EncodeToString(raw[:])
		return meta.Put(keyStoreID, []byte(id))
	})
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("initialise %s: %w", path, err)
	}
	return &DB{db: bdb, ret: opts.retention(), id: id}, nil
}

// backfillHolders builds the holder index of a store written before it existed.
func backfillHolders(tx *bbolt.Tx) error {
	idx := tx.Bucket(bucketHolders)
	return tx.Bucket(bucketTokens).ForEach(func(_, v []byte) error {
		var rec store.TokenRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		return idx.Put(holderKey(rec.Holder, rec.ExpiresAt, rec.JTI), nil)
	})
}

// checkPrivate refuses a data file others can read or write, and a data
// directory others can write (they could swap the file); a directory others can
// merely list is fine, since the file inside is 0600.
func checkPrivate(path string, isDir bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() != isDir {
		return fmt.Errorf("%s: expected a %s", path, map[bool]string{true: "directory", false: "file"}[isDir])
	}
	forbidden, want := fs.FileMode(0o077), "600"
	if isDir {
		forbidden, want = 0o022, "700"
	}
	if st.Mode().Perm()&forbidden != 0 {
		return fmt.Errorf("%w: %s is %v; it holds signing keys, so run chmod %s %s", ErrInsecurePermissions, path, st.Mode().Perm(), want, path)
	}
	return nil
}

// Close releases the file.
func (d *DB) Close() error { return d.db.Close() }

// Path returns the file's path.
func (d *DB) Path() string { return d.db.Path() }

// Ping reports whether the store is open and readable, for readiness checks.
func (d *DB) Ping() error {
	return d.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketTokens) == nil {
			return errors.New("store not initialised")
		}
		return nil
	})
}

func expiryKey(exp time.Time, jti string) []byte {
	k := make([]byte, 8+len(jti))
	binary.BigEndian.PutUint64(k, uint64(exp.Unix()))
	copy(k[8:], jti)
	return k
}

func childKey(parent, child string) []byte {
	k := make([]byte, 0, len(parent)+1+len(child))
	k = append(k, parent...)
	k = append(k, 0)
	return append(k, child...)
}

// PutToken durably stores rec, its expiry index entry and its parent → child
// link in one group-committed transaction, unless an ancestor in
// rec.Lineage is revoked (store.ErrAncestorRevoked): checked in the same
// transaction, which bbolt serializes with every revocation.
func (d *DB) PutToken(_ context.Context, rec *store.TokenRecord, ev *store.AuditEvent) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	if rec.JTI == "" {
		return errors.New("token record without jti")
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode token record: %w", err)
	}
	var revoked string // set by the batch function (which may run more than once)
	err = d.db.Batch(func(tx *bbolt.Tx) error {
		revoked = ""
		rb := tx.Bucket(bucketRevocations)
		for _, a := range rec.Lineage {
			if rb.Get([]byte(a)) != nil {
				// Refused without failing the batch, which would make
				// bbolt run every other write of it again.
				revoked = a
				return nil
			}
		}
		tb, eb := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenExpiry)
		tb.FillPercent, eb.FillPercent = appendFill, appendFill
		if err := tb.Put([]byte(rec.JTI), val); err != nil {
			return err
		}
		if err := eb.Put(expiryKey(rec.ExpiresAt, rec.JTI), nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketHolders).Put(holderKey(rec.Holder, rec.ExpiresAt, rec.JTI), nil); err != nil {
			return err
		}
		if rec.Parent != "" {
			if err := tx.Bucket(bucketChildren).Put(childKey(rec.Parent, rec.JTI), nil); err != nil {
				return err
			}
		}
		return appendAudit(tx, ev)
	})
	if err == nil && revoked != "" {
		return fmt.Errorf("token %s: %w (%s)", rec.JTI, store.ErrAncestorRevoked, revoked)
	}
	return err
}

// Token returns the record with the given jti, or store.ErrNotFound.
func (d *DB) Token(_ context.Context, jti string) (*store.TokenRecord, error) {
	var rec store.TokenRecord
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get([]byte(jti))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// Children returns the jtis issued directly from jti, in key order.
func (d *DB) Children(_ context.Context, jti string) ([]string, error) {
	var out []string
	prefix := childKey(jti, "")
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketChildren).Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[len(prefix):]))
		}
		return nil
	})
	return out, err
}

func holderKey(holder string, exp time.Time, jti string) []byte {
	k := make([]byte, 0, len(holder)+1+8+len(jti))
	k = append(k, holder...)
	k = append(k, 0)
	return append(k, expiryKey(exp, jti)...)
}

// HeldBy returns the records of holder's tokens that expire after now, read
// through the holder index (sorted by expiry, so expired ones are skipped by
// one seek).
func (d *DB) HeldBy(_ context.Context, holder string, now time.Time) ([]*store.TokenRecord, error) {
	var out []*store.TokenRecord
	prefix := append([]byte(holder), 0)
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketHolders).Cursor()
		toks := tx.Bucket(bucketTokens)
		for k, _ := c.Seek(holderKey(holder, now.Add(time.Second), "")); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			v := toks.Get(k[len(prefix)+8:])
			if v == nil {
				continue
			}
			var rec store.TokenRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, &rec)
		}
		return nil
	})
	return out, err
}

// ScanTokens returns up to limit records after the given jti, in jti order.
// (A callback run inside the read transaction would deadlock the moment it
// opened another read while a writer waited to grow the file.)
func (d *DB) ScanTokens(_ context.Context, after string, limit int) ([]*store.TokenRecord, error) {
	var out []*store.TokenRecord
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketTokens).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			var rec store.TokenRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("token record %q: %w", k, err)
			}
			out = append(out, &rec)
		}
		return nil
	})
	return out, err
}

func hasPrefix(k, p []byte) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}

// Revoke durably records r and appends it to the revocation log, unless the
// token is already revoked, in which case the existing record is returned with
// false.
func (d *DB) Revoke(_ context.Context, r store.Revocation, ev *store.AuditEvent) (store.Revocation, bool, error) {
	if d.readOnly {
		return r, false, store.ErrReadOnly
	}
	if r.JTI == "" {
		return r, false, errors.New("revocation without jti")
	}
	var existing *store.Revocation
	rec := r
	err := d.db.Batch(func(tx *bbolt.Tx) error {
		existing, rec = nil, r // Batch may retry fn
		b := tx.Bucket(bucketRevocations)
		if v := b.Get([]byte(r.JTI)); v != nil {
			var old store.Revocation
			if err := json.Unmarshal(v, &old); err != nil {
				return err
			}
			existing = &old
			return nil
		}
		log := tx.Bucket(bucketRevLog)
		seq, err := log.NextSequence()
		if err != nil {
			return err
		}
		rec.Seq = seq
		val, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode revocation: %w", err)
		}
		if err := b.Put([]byte(r.JTI), val); err != nil {
			return err
		}
		if err := log.Put(seqKey(seq), []byte(r.JTI)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRevExpiry).Put(expiryKey(r.ExpiresAt, r.JTI), nil); err != nil {
			return err
		}
		return appendAudit(tx, ev)
	})
	if err != nil {
		return r, false, err
	}
	if existing != nil {
		return *existing, false, nil
	}
	return rec, true, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// ID identifies this store file; it is created once and never changes.
func (d *DB) ID() string { return d.id }

// RevocationsAfter returns up to limit revocations logged after seq, in order,
// the Seq of the last entry examined (head when the end was reached) and the
// log's head.
func (d *DB) RevocationsAfter(_ context.Context, after uint64, limit int) ([]store.Revocation, uint64, uint64, error) {
	var out []store.Revocation
	var next, head uint64
	err := d.db.View(func(tx *bbolt.Tx) error {
		log := tx.Bucket(bucketRevLog)
		head = log.Sequence()
		next = head
		revs := tx.Bucket(bucketRevocations)
		c := log.Cursor()
		for k, jti := c.Seek(seqKey(after + 1)); k != nil; k, jti = c.Next() {
			if limit > 0 && len(out) == limit {
				return nil
			}
			next = binary.BigEndian.Uint64(k)
			v := revs.Get(jti)
			if v == nil {
				continue
			}
			var r store.Revocation
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		next = head
		return nil
	})
	return out, next, head, err
}

// RevocationAt returns the jti logged at seq, if the entry is still stored.
func (d *DB) RevocationAt(_ context.Context, seq uint64) (string, bool, error) {
	var jti string
	err := d.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketRevLog).Get(seqKey(seq)); v != nil {
			jti = string(v)
		}
		return nil
	})
	return jti, jti != "", err
}

// FirstRevoked returns the revocation of the first revoked jti in jtis, or nil.
func (d *DB) FirstRevoked(_ context.Context, jtis ...string) (*store.Revocation, error) {
	var found *store.Revocation
	err := d.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		for _, j := range jtis {
			if v := b.Get([]byte(j)); v != nil {
				var r store.Revocation
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
				found = &r
				return nil
			}
		}
		return nil
	})
	return found, err
}

// SigningKeys returns every stored signing key.
func (d *DB) SigningKeys(_ context.Context) ([]tokens.StoredKey, error) {
	var out []tokens.StoredKey
	err := d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			var k tokens.StoredKey
			if err := json.Unmarshal(v, &k); err != nil {
				return fmt.Errorf("decode signing key: %w", err)
			}
			out = append(out, k)
			return nil
		})
	})
	return out, err
}

// Suspend durably records client's suspension until until (one entry per
// client, replaced: bounded by the registry).
func (d *DB) Suspend(_ context.Context, client string, until time.Time) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSuspensions).Put([]byte(client), []byte(until.UTC().Format(time.RFC3339Nano)))
	})
}

// Suspended returns the suspensions in force at now.
func (d *DB) Suspended(_ context.Context, now time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := d.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSuspensions)
		if b == nil { // a file from before suspensions were kept
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil && now.Before(t) {
				out[string(k)] = t
			}
			return nil
		})
	})
	return out, err
}

// AddSigningKey durably stores a new signing key; a kid already present is an error.
func (d *DB) AddSigningKey(_ context.Context, k tokens.StoredKey) error {
	return d.putSigningKey(k, false)
}

// ReplaceSigningKey durably replaces the stored key of k's kid (to destroy
// a retired key's private part, or mark a key compromised).
func (d *DB) ReplaceSigningKey(_ context.Context, k tokens.StoredKey) error {
	return d.putSigningKey(k, true)
}

// putSigningKey stores k: over a stored key of its kid when replace is set,
// never over one otherwise.
func (d *DB) putSigningKey(k tokens.StoredKey, replace bool) error {
	if d.readOnly {
		return store.ErrReadOnly
	}
	val, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		switch stored := b.Get([]byte(k.ID)) != nil; {
		case stored && !replace:
			return fmt.Errorf("signing key %s already stored", k.ID)
		case !stored && replace:
			return fmt.Errorf("signing key %s is not stored", k.ID)
		}
		return b.Put([]byte(k.ID), val)
	})
}

// gcBatch bounds the deletions of one write transaction so a large backlog
// never holds the writer lock for long.
const gcBatch = 1000

// GC applies the store's retention (see store.Retention): it deletes
// revocation records (and their log entries) whose token expired at or before
// now - RevocationGrace, audit records written before now - AuditRetention,
// and token records (with their child links and holder index entries) that
// expired at or before now - Retention. A chained record vouches for the
// collected audit's new base, so what is kept still verifies and a deleted
// start does not.
func (d *DB) GC(now time.Time) (store.GCResult, error) {
	var res store.GCResult
	if d.readOnly {
		return res, store.ErrReadOnly
	}
	for {
		n, err := d.collect(bucketRevExpiry, func(exp time.Time) bool { return d.ret.CollectsRevocation(exp, now) }, func(tx *bbolt.Tx, jti []byte) error {
			b := tx.Bucket(bucketRevocations)
			if v := b.Get(jti); v != nil {
				var r store.Revocation
				if err := json.Unmarshal(v, &r); err == nil && r.Seq != 0 {
					if err := tx.Bucket(bucketRevLog).Delete(seqKey(r.Seq)); err != nil {
						return err
					}
				}
			}
			return b.Delete(jti)
		})
		res.Revocations += n
		if err != nil {
			return res, err
		}
		if n < gcBatch {
			break
		}
	}
	if cutoff, ok := d.ret.AuditCutoff(now); ok {
		for {
			n, err := d.collectAudit(cutoff, now)
			res.Audit += n
			if err != nil {
				return res, err
			}
			if n < gcBatch {
				break
			}
		}
	}
	for {
		// Single-use values, once they could no longer be accepted.
		n, err := d.collect(bucketOnceExpiry, func(exp time.Time) bool { return exp.Before(now) }, func(tx *bbolt.Tx, k []byte) error {
			return tx.Bucket(bucketOnce).Delete(k)
		})
		if err != nil {
			return res, err
		}
		if n < gcBatch {
			break
		}
	}
	for {
		n, err := d.collect(bucketTokenExpiry, func(exp time.Time) bool { return d.ret.CollectsToken(exp, now) }, func(tx *bbolt.Tx, jti []byte) error {
			b := tx.Bucket(bucketTokens)
			v := b.Get(jti)
			if v == nil {
				return nil
			}
			var rec store.TokenRecord
			if err := json.Unmarshal(v, &rec); err == nil {
				if err := tx.Bucket(bucketHolders).Delete(holderKey(rec.Holder, rec.ExpiresAt, rec.JTI)); err != nil {
					return err
				}
				if rec.Parent != "" {
					if err := tx.Bucket(bucketChildren).Delete(childKey(rec.Parent, rec.JTI)); err != nil {
						return err
					}
				}
			}
			return b.Delete(jti)
		})
		res.Tokens += n
		if err != nil {
			return res, err
		}
		if n < gcBatch {
			return res, nil
		}
	}
}

// collect deletes, oldest first, up to gcBatch entries of an expiry index
// whose expiry collects says is due, calling del for each jti, in one
// transaction.
func (d *DB) collect(index []byte, collects func(exp time.Time) bool, del func(*bbolt.Tx, []byte) error) (int, error) {
	n := 0
	err := d.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		c := tx.Bucket(index).Cursor()
		for k, _ := c.First(); k != nil && n < gcBatch; k, _ = c.First() {
			if !collects(expiryOf(k)) {
				break
			}
			jti := append([]byte(nil), k[8:]...)
			if err := c.Delete(); err != nil {
				return err
			}
			if err := del(tx, jti); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// RecordOnce durably records key in namespace kind until expires and
// reports whether this call recorded it (false: it was recorded before, a
// replay), so a single-use assertion's jti outlives a restart. It is one
// write transaction per call, for the rare values that need it (ID-JAGs,
// single-use workload tokens), not for every DPoP proof.
func (d *DB) RecordOnce(_ context.Context, kind, key string, expires time.Time) (bool, error) {
	if d.readOnly {
		return false, store.ErrReadOnly
	}
	if kind == "" || key == "" || strings.IndexByte(kind, 0) >= 0 {
		return false, errors.New("store/bolt: a single-use value needs a kind (without NUL) and a key")
	}
	k := append(append([]byte(kind), 0), key...)
	created := false // Update runs its function once
	err := d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOnce)
		if b.Get(k) != nil {
			return nil
		}
		var exp [8]byte
		binary.BigEndian.PutUint64(exp[:], uint64(expires.Unix()))
		if err := b.Put(k, exp[:]); err != nil {
			return err
		}
		created = true
		return tx.Bucket(bucketOnceExpiry).Put(expiryKey(expires, string(k)), nil)
	})
	return created, err
}

// expiryOf is the expiry an expiry index key starts with.
func expiryOf(k []byte) time.Time { return time.Unix(int64(binary.BigEndian.Uint64(k[:8])), 0) }

// RunGC collects expired records every interval until ctx ends, reporting each
// pass (including errors) to report, which may be nil (see store.RunGC).
func (d *DB) RunGC(ctx context.Context, interval time.Duration, now func() time.Time, report func(store.GCResult, error)) {
	store.RunGC(ctx, d, interval, now, report)
}

// Stats counts the records of each kind, and the file's size and free pages
// (which a bounded store reuses instead of growing).
type Stats struct {
	Tokens      int // token records, expired ones within retention included
	Unexpired   int // token records whose exp is after now (revoked ones included)
	Revocations int // revocation entries (kept until their token's exp)
	Keys        int
	FileBytes   int64
	FreePages   int // pages free for reuse, in the file
	PageSize    int
	// TokenBytes is what token records and their indexes occupy (pages
	// allocated to those buckets); AuditBytes the audit trail's, and
	// AuditRecords its length: audit is kept for audit.retention, far
	// longer than tokens live, so the two are reported apart.
	TokenBytes   int64
	AuditBytes   int64
	AuditRecords int
}

// Stats returns the current record counts; Unexpired is counted from the
// expiry index, in time proportional to the unexpired records.
func (d *DB) Stats(now time.Time) (Stats, error) {
	var s Stats
	err := d.db.View(func(tx *bbolt.Tx) error {
		s.Tokens = tx.Bucket(bucketTokens).Stats().KeyN
		s.Revocations = tx.Bucket(bucketRevocations).Stats().KeyN
		s.Keys = tx.Bucket(bucketKeys).Stats().KeyN
		cur := tx.Bucket(bucketTokenExpiry).Cursor()
		var from [8]byte
		binary.BigEndian.PutUint64(from[:], uint64(now.Unix()+1))
		for k, _ := cur.Seek(from[:]); k != nil; k, _ = cur.Next() {
			s.Unexpired++
		}
		s.FileBytes = tx.Size()
		for _, b := range [][]byte{bucketTokens, bucketTokenExpiry, bucketHolders, bucketChildren} {
			bs := tx.Bucket(b).Stats()
			s.TokenBytes += int64(bs.LeafAlloc + bs.BranchAlloc)
		}
		as := tx.Bucket(bucketAudit).Stats()
		s.AuditBytes, s.AuditRecords = int64(as.LeafAlloc+as.BranchAlloc), as.KeyN
		return nil
	})
	st := d.db.Stats()
	s.FreePages, s.PageSize = st.FreePageN, d.db.Info().PageSize
	return s, err
}

// OpenReadOnly opens a data file (or the mandate.db of a data directory)
// without writing to it, for forensics on a stopped server: every write
// returns store.ErrReadOnly. A running server holds the file's lock, so this
// fails after a short wait rather than read a store that is being written.
func OpenReadOnly(path string) (*DB, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, FileName)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: a running server holds it; use --server to ask that server instead", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &DB{db: bdb, readOnly: true}
	err = bdb.View(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s is not a Mandate data file (no %s bucket)", path, b)
			}
		}
		d.id = string(tx.Bucket(bucketMeta).Get(keyStoreID))
		return nil
	})
	if err != nil {
		bdb.Close()
		return nil, err
	}
	return d, nil
}
