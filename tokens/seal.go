package tokens

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// ErrKeySealed reports a stored signing key that is encrypted while no
// key-encryption key is configured (or is not the one it was sealed with).
var ErrKeySealed = errors.New("signing key is encrypted")

// SealedKeyStore wraps a KeyStore so private keys rest encrypted under a
// key-encryption key (AES-256-GCM, the key id and algorithm as associated
// data, so a sealed key cannot be moved to another record). A copy of the
// data file alone then yields no signing key. Keys stored before sealing
// was turned on are read as they are and reported by Unsealed.
type SealedKeyStore struct {
	inner KeyStore
	aead  cipher.AEAD
	mu    sync.Mutex
	plain []string
}

// NewSealedKeyStore seals inner's keys with kek (KEKSize random bytes).
func NewSealedKeyStore(inner KeyStore, kek []byte) (*SealedKeyStore, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, not %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SealedKeyStore{inner: inner, aead: aead}, nil
}

func sealAAD(k StoredKey) []byte { return []byte("mandate signing key\x00" + k.ID + "\x00" + k.Alg) }

// SigningKeys returns every stored key, opened.
func (s *SealedKeyStore) SigningKeys(ctx context.Context) ([]StoredKey, error) {
	stored, err := s.inner.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var plain []string
	defer func() {
		s.mu.Lock()
		s.plain = plain
		s.mu.Unlock()
	}()
	for i, k := range stored {
		if !k.Sealed {
			if !k.Destroyed() {
				plain = append(plain, k.ID)
			}
			continue
		}
		n := s.aead.NonceSize()
		if len(k.PKCS8) < n {
			return nil, fmt.Errorf("%w: %s: sealed key is truncated", ErrKeySealed, k.ID)
		}
		der, err := s.aead.Open(nil, k.PKCS8[:n], k.PKCS8[n:], sealAAD(k))
		if err != nil {
			return nil, fmt.Errorf("%w: %s does not open with the configured key-encryption key", ErrKeySealed, k.ID)
		}
		stored[i].PKCS8, stored[i].Sealed = der, false
	}
	return stored, nil
}

// AddSigningKey seals k and stores it.
func (s *SealedKeyStore) AddSigningKey(ctx context.Context, k StoredKey) error {
	sealed, err := s.seal(k)
	if err != nil {
		return err
	}
	return s.inner.AddSigningKey(ctx, sealed)
}

// ReplaceSigningKey seals k (a destroyed key has nothing to seal) and
// replaces the stored key of its kid.
func (s *SealedKeyStore) ReplaceSigningKey(ctx context.Context, k StoredKey) error {
	sealed, err := s.seal(k)
	if err != nil {
		return err
	}
	return s.inner.ReplaceSigningKey(ctx, sealed)
}

func (s *SealedKeyStore) seal(k StoredKey) (StoredKey, error) {
	if k.Destroyed() || k.Sealed {
		return k, nil
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(k.PKCS8)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return k, err
	}
	k.PKCS8 = s.aead.Seal(nonce, nonce, k.PKCS8, sealAAD(k))
	k.Sealed = true
	return k, nil
}

// Reseal seals every key still stored in clear (made before a KEK was
// configured), so no private key rests readable in the data file once one
// is. It returns the kids it sealed.
func (s *SealedKeyStore) Reseal(ctx context.Context) ([]string, error) {
	stored, err := s.inner.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, k := range stored {
		if k.Sealed || k.Destroyed() {
			continue
		}
		if err := s.ReplaceSigningKey(ctx, k); err != nil {
			return done, fmt.Errorf("seal key %s: %w", k.ID, err)
		}
		done = append(done, k.ID)
	}
	return done, nil
}

// Unsealed lists the keys the last SigningKeys found stored in clear (made
// before sealing was configured): rotate, so new keys are sealed.
func (s *SealedKeyStore) Unsealed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.plain...)
}

// MemoryKeyStore keeps signing keys in memory only, for a key ring that
// lives no longer than the process: tests, examples, a benchmark's throw-away
// key. Nothing it holds survives a restart; a server stores its keys in its
// store (sealed under the KEK when one is set).
type MemoryKeyStore struct {
	mu   sync.Mutex
	keys []StoredKey
}

var _ KeyStore = (*MemoryKeyStore)(nil)

// SigningKeys returns the keys added so far.
func (m *MemoryKeyStore) SigningKeys(context.Context) ([]StoredKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]StoredKey(nil), m.keys...), nil
}

// AddSigningKey keeps k.
func (m *MemoryKeyStore) AddSigningKey(_ context.Context, k StoredKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.keys {
		if o.ID == k.ID {
			return fmt.Errorf("signing key %s already stored", k.ID)
		}
	}
	m.keys = append(m.keys, k)
	return nil
}

// ReplaceSigningKey replaces the key of k's kid.
func (m *MemoryKeyStore) ReplaceSigningKey(_ context.Context, k StoredKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.keys {
		if o.ID == k.ID {
			m.keys[i] = k
			return nil
		}
	}
	return fmt.Errorf("signing key %s is not stored", k.ID)
}
