package tokens_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

// TestSealedSigningKeys: with a key-encryption key, the private key in the
// data file is ciphertext; the ring opens with the KEK, refuses without it or
// with another, and a record's sealed key cannot be moved to another record.
func TestSealedSigningKeys(t *testing.T) {
	dir := t.TempDir()
	kek := bytes.Repeat([]byte{7}, tokens.KEKSize)
	opts := tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Hour, Now: func() time.Time { return now }}
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := tokens.NewSealedKeyStore(db, kek)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.OpenKeyRing(t.Context(), sealed, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ring.Sign(sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := db.SigningKeys(t.Context())
	if len(stored) != 1 || !stored[0].Sealed {
		t.Fatalf("stored: %+v", stored)
	}
	if _, err := x509.ParsePKCS8PrivateKey(stored[0].PKCS8); err == nil {
		t.Fatal("the stored private key parses as PKCS8: it is not encrypted")
	}
	if len(sealed.Unsealed()) != 0 {
		t.Errorf("unsealed: %v", sealed.Unsealed())
	}
	// Reopened with the KEK: the same key signs and verifies.
	again, err := tokens.OpenKeyRing(t.Context(), sealed, opts)
	if err != nil || again.CurrentKeyID() != ring.CurrentKeyID() {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := again.Verify(tok); err != nil {
		t.Fatal(err)
	}
	// Without the KEK, or with another: refused, never a fresh key.
	if _, err := tokens.OpenKeyRing(t.Context(), db, opts); !errors.Is(err, tokens.ErrKeySealed) {
		t.Errorf("without the KEK: %v", err)
	}
	wrong, _ := tokens.NewSealedKeyStore(db, bytes.Repeat([]byte{8}, tokens.KEKSize))
	if _, err := tokens.OpenKeyRing(t.Context(), wrong, opts); !errors.Is(err, tokens.ErrKeySealed) {
		t.Errorf("with another KEK: %v", err)
	}
	if n, _ := db.SigningKeys(t.Context()); len(n) != 1 {
		t.Errorf("a failed open stored %d keys", len(n))
	}
	// A sealed key copied under another kid does not open (the kid is bound).
	moved := stored[0]
	moved.ID = "another-kid"
	if err := db.AddSigningKey(t.Context(), moved); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.OpenKeyRing(t.Context(), sealed, opts); !errors.Is(err, tokens.ErrKeySealed) {
		t.Errorf("a moved sealed key opened: %v", err)
	}
	db.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, bolt.FileName))
	der := mustOpen(t, dir, kek)
	if bytes.Contains(raw, der) {
		t.Error("the data file holds the private key in clear")
	}
	if _, err := tokens.NewSealedKeyStore(nil, kek[:16]); err == nil {
		t.Error("a 16-byte KEK was accepted")
	}
}

// TestSealingAnExistingStoreReportsClearKeys: keys stored before sealing was
// configured still load, and are reported so the operator rotates.
func TestSealingAnExistingStoreReportsClearKeys(t *testing.T) {
	dir := t.TempDir()
	first := openRing(t, dir, tokens.AlgEdDSA)
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sealed, _ := tokens.NewSealedKeyStore(db, bytes.Repeat([]byte{7}, tokens.KEKSize))
	ring, err := tokens.OpenKeyRing(t.Context(), sealed, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Hour, Now: func() time.Time { return now }})
	if err != nil || ring.CurrentKeyID() != first.CurrentKeyID() {
		t.Fatalf("open: %v", err)
	}
	if u := sealed.Unsealed(); len(u) != 1 || u[0] != first.CurrentKeyID() {
		t.Errorf("unsealed = %v", u)
	}
}

// mustOpen returns the opened private key of the first record in dir's store.
func mustOpen(t *testing.T, dir string, kek []byte) []byte {
	t.Helper()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored, _ := db.SigningKeys(t.Context())
	for _, k := range stored {
		if k.ID == "another-kid" {
			continue
		}
		s, _ := tokens.NewSealedKeyStore(oneKey{k}, kek)
		keys, err := s.SigningKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return keys[0].PKCS8
	}
	t.Fatal("no key")
	return nil
}

// oneKey is a KeyStore holding one key.
type oneKey struct{ k tokens.StoredKey }

func (o oneKey) SigningKeys(context.Context) ([]tokens.StoredKey, error) {
	return []tokens.StoredKey{o.k}, nil
}
func (o oneKey) AddSigningKey(context.Context, tokens.StoredKey) error     { return nil }
func (o oneKey) ReplaceSigningKey(context.Context, tokens.StoredKey) error { return nil }

// TestResealSealsKeysStoredInClear: once a KEK is configured, the keys
// stored before it are sealed in place, and still load.
func TestResealSealsKeysStoredInClear(t *testing.T) {
	dir := t.TempDir()
	first := openRing(t, dir, tokens.AlgEdDSA)
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kek := bytes.Repeat([]byte{7}, tokens.KEKSize)
	sealed, _ := tokens.NewSealedKeyStore(db, kek)
	done, err := sealed.Reseal(t.Context())
	if err != nil || len(done) != 1 || done[0] != first.CurrentKeyID() {
		t.Fatalf("reseal: %v %v", done, err)
	}
	stored, _ := db.SigningKeys(t.Context())
	for _, k := range stored {
		if _, err := x509.ParsePKCS8PrivateKey(k.PKCS8); !k.Sealed || err == nil {
			t.Errorf("key %s still in clear", k.ID)
		}
	}
	ring, err := tokens.OpenKeyRing(t.Context(), sealed, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Hour, Now: func() time.Time { return now }})
	if err != nil || ring.CurrentKeyID() != first.CurrentKeyID() || len(sealed.Unsealed()) != 0 {
		t.Fatalf("after reseal: %v, unsealed %v", err, sealed.Unsealed())
	}
	if again, _ := sealed.Reseal(t.Context()); len(again) != 0 {
		t.Errorf("resealed twice: %v", again)
	}
}
