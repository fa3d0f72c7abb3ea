package bolt_test

import (
	"encoding/binary"
	"path/filepath"

	bbolt "go.etcd.io/bbolt"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/storetest"
)

// tamper edits the audit trail in the raw bbolt file of a closed store, for
// the conformance suite's tamper-detection tests.
func tamper(dir string, edit func(storetest.AuditTrail) error) error {
	raw, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, nil)
	if err != nil {
		return err
	}
	defer raw.Close()
	return raw.Update(func(tx *bbolt.Tx) error {
		return edit(rawTrail{audit: tx.Bucket([]byte("audit")), meta: tx.Bucket([]byte("meta"))})
	})
}

// rawTrail is the audit bucket and the base, edited with no rule applied.
type rawTrail struct{ audit, meta *bbolt.Bucket }

func seq(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func (r rawTrail) Record(n uint64) ([]byte, error) {
	return append([]byte(nil), r.audit.Get(seq(n))...), nil
}
func (r rawTrail) PutRecord(n uint64, raw []byte) error { return r.audit.Put(seq(n), raw) }
func (r rawTrail) DeleteRecord(n uint64) error          { return r.audit.Delete(seq(n)) }
func (r rawTrail) SetBase(b store.AuditBase) error {
	return r.meta.Put([]byte("audit_base"), append(seq(b.Seq), b.Hash...))
}
