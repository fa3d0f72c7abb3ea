package server

import (
	"context"
	"errors"
	"time"

	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/tokens"
)

// CopyReport counts what CopyStore copied.
type CopyReport struct {
	StoreID     string `json:"store_id"`
	Tokens      int    `json:"tokens"`
	Revocations int    `json:"revocations"`
	RevHead     uint64 `json:"revocation_head"`
	Suspensions int    `json:"suspensions"`
	Keys        int    `json:"signing_keys"`
	Audit       int    `json:"audit_records"`
	Replica     string `json:"replica"`
}

// CopyStore copies a stopped server's bbolt data file (or data_dir) into
// the empty PostgreSQL database dsn names, in one transaction: every token,
// the revocation log with its Seqs, head and store id (so verifiers' feed
// cursors stay valid), suspensions, the signing keys sealed under kek (keys
// the file holds sealed must open with it), and the audit chain, byte for
// byte, as the chain of replica. The file is opened read-only.
func CopyStore(ctx context.Context, from, dsn, replica string, kek []byte) (CopyReport, error) {
	var rep CopyReport
	if kek == nil {
		return rep, errors.New("the key-encryption key is required: PostgreSQL keeps signing keys sealed (MANDATE_SIGNING_KEK or signing.kek_file)")
	}
	src, err := bolt.OpenReadOnly(from)
	if err != nil {
		return rep, err
	}
	defer src.Close()
	snap := postgres.Snapshot{StoreID: src.ID()}
	for after := ""; ; {
		batch, err := src.ScanTokens(ctx, after, 1000)
		if err != nil {
			return rep, err
		}
		if len(batch) == 0 {
			break
		}
		snap.Tokens = append(snap.Tokens, batch...)
		after = batch[len(batch)-1].JTI
	}
	if snap.Revocations, _, snap.RevHead, err = src.RevocationsAfter(ctx, 0, 0); err != nil {
		return rep, err
	}
	if snap.Suspensions, err = src.Suspended(ctx, time.Time{}); err != nil {
		return rep, err
	}
	// Open the file's keys (sealed ones must open with kek), then seal them all.
	opener, err := tokens.NewSealedKeyStore(src, kek)
	if err != nil {
		return rep, err
	}
	keys, err := opener.SigningKeys(ctx)
	if err != nil {
		return rep, err
	}
	sealed := &tokens.MemoryKeyStore{}
	sealer, err := tokens.NewSealedKeyStore(sealed, kek)
	if err != nil {
		return rep, err
	}
	for _, k := range keys {
		if err := sealer.AddSigningKey(ctx, k); err != nil {
			return rep, err
		}
	}
	if snap.Keys, err = sealed.SigningKeys(ctx); err != nil {
		return rep, err
	}
	if snap.AuditBase, snap.AuditHead, snap.Audit, err = src.AuditChain(ctx); err != nil {
		return rep, err
	}
	dst, err := postgres.Open(ctx, dsn, postgres.Options{Replica: replica})
	if err != nil {
		return rep, err
	}
	defer dst.Close()
	if err := dst.Import(ctx, snap); err != nil {
		return rep, err
	}
	return CopyReport{StoreID: snap.StoreID, Tokens: len(snap.Tokens), Revocations: len(snap.Revocations), RevHead: snap.RevHead,
		Suspensions: len(snap.Suspensions), Keys: len(snap.Keys), Audit: len(snap.Audit), Replica: dst.Replica()}, nil
}

// KEKBytes is the configured key-encryption key (nil when none is set).
func (s SigningConfig) KEKBytes() ([]byte, error) { return s.kek() }
