package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Signing algorithms Mandate can sign with.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
)

// StoredKey is a signing key as a KeyStore persists it. PKCS8 is secret: a
// KeyStore must keep it where only Mandate's own user can read it.
type StoredKey struct {
	ID        string    `json:"kid"`
	Alg       string    `json:"alg"`
	PKCS8     []byte    `json:"pkcs8"`
	CreatedAt time.Time `json:"created_at"`
}

// KeyStore persists signing keys. It is owned here, where it is consumed; the
// store package satisfies it.
type KeyStore interface {
	// SigningKeys returns every stored key.
	SigningKeys(ctx context.Context) ([]StoredKey, error)
	// AddSigningKey durably stores a new key.
	AddSigningKey(ctx context.Context, k StoredKey) error
}

// GenerateKey makes a fresh signing key for alg ("EdDSA" or "ES256"); its kid
// is the key's RFC 7638 thumbprint, so the same key always has the same kid.
func GenerateKey(alg string, now time.Time) (StoredKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return StoredKey{}, fmt.Errorf("signing algorithm %q is not supported (use %s or %s)", alg, AlgEdDSA, AlgES256)
	}
	if err != nil {
		return StoredKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, fmt.Errorf("encode key: %w", err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return StoredKey{}, err
	}
	return StoredKey{ID: kid, Alg: alg, PKCS8: der, CreatedAt: now.UTC()}, nil
}

// KeyRing is the issuer's set of signing keys: the current one signs, all of them
// verify and are published in the JWKS. It is safe for concurrent use.
type KeyRing struct {
	mu      sync.RWMutex
	current *signingKey
	public  map[string]PublicKey
	jwks    []byte
}

type signingKey struct {
	id   string
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
	hdrs jws.Headers
}

// OpenKeyRing loads the keys in ks and makes the newest key of alg the signing
// key, generating and storing one first when there is none (first start, or the
// configured algorithm changed). Older keys stay published for verification.
func OpenKeyRing(ctx context.Context, ks KeyStore, alg string, now time.Time) (*KeyRing, error) {
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	var newest *StoredKey
	for i := range stored {
		k := &stored[i]
		if k.Alg == alg && (newest == nil || k.CreatedAt.After(newest.CreatedAt)) {
			newest = k
		}
	}
	if newest == nil {
		k, err := GenerateKey(alg, now)
		if err != nil {
			return nil, err
		}
		if err := ks.AddSigningKey(ctx, k); err != nil {
			return nil, fmt.Errorf("store new signing key: %w", err)
		}
		stored = append(stored, k)
		newest = &stored[len(stored)-1]
	}
	r := &KeyRing{public: map[string]PublicKey{}}
	for _, k := range stored {
		sk, err := loadSigningKey(k)
		if err != nil {
			return nil, err
		}
		r.public[k.ID] = PublicKey{ID: k.ID, Alg: sk.alg, Key: sk.priv.Public()}
		if k.ID == newest.ID {
			r.current = sk
		}
	}
	if r.jwks, err = buildJWKS(stored, r.public); err != nil {
		return nil, err
	}
	return r, nil
}

func loadSigningKey(k StoredKey) (*signingKey, error) {
	raw, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	priv, ok := raw.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: unsupported key type %T", k.ID, raw)
	}
	var alg jwa.SignatureAlgorithm
	switch k.Alg {
	case AlgEdDSA:
		alg = jwa.EdDSA
	case AlgES256:
		alg = jwa.ES256
	default:
		return nil, fmt.Errorf("signing key %s: unsupported algorithm %q", k.ID, k.Alg)
	}
	if !algFitsKey(alg, priv.Public()) {
		return nil, fmt.Errorf("signing key %s: algorithm %s does not fit its key", k.ID, k.Alg)
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.KeyIDKey, k.ID); err != nil {
		return nil, err
	}
	if err := hdrs.Set(jws.TypeKey, TypeAccessToken); err != nil {
		return nil, err
	}
	return &signingKey{id: k.ID, alg: alg, priv: priv, hdrs: hdrs}, nil
}

// Rotate generates a key for alg, stores it in ks and makes it the signing key.
// Earlier keys stay published so the tokens they signed keep verifying.
func (r *KeyRing) Rotate(ctx context.Context, ks KeyStore, alg string, now time.Time) (StoredKey, error) {
	k, err := GenerateKey(alg, now)
	if err != nil {
		return k, err
	}
	sk, err := loadSigningKey(k)
	if err != nil {
		return k, err
	}
	if err := ks.AddSigningKey(ctx, k); err != nil {
		return k, fmt.Errorf("store new signing key: %w", err)
	}
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return k, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.public[k.ID] = PublicKey{ID: k.ID, Alg: sk.alg, Key: sk.priv.Public()}
	jwks, err := buildJWKS(stored, r.public)
	if err != nil {
		return k, err
	}
	r.current, r.jwks = sk, jwks
	return k, nil
}

// Sign serializes the claims and signs them with the current key, with "kid" and
// "typ: at+jwt" in the protected header.
func (r *KeyRing) Sign(c *Claims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	r.mu.RLock()
	k := r.current
	r.mu.RUnlock()
	out, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(k.hdrs)))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(out), nil
}

// Verify checks a Mandate token's signature and type against the ring's keys and
// decodes its claims. It does not check time, issuer or revocation: callers do.
func (r *KeyRing) Verify(token string) (*Claims, error) {
	payload, _, err := Verify(token, r, TypeAccessToken)
	if err != nil {
		return nil, err
	}
	return ParseClaims(payload)
}

// ResolveKey returns the public key with the given kid.
func (r *KeyRing) ResolveKey(kid string) (PublicKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.public[kid]
	return k, ok
}

// CurrentKeyID is the kid of the key that signs new tokens.
func (r *KeyRing) CurrentKeyID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current.id
}

// CurrentAlg is the JWS algorithm of the key that signs new tokens.
func (r *KeyRing) CurrentAlg() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current.alg.String()
}

// JWKS returns the RFC 7517 JSON Web Key Set of every public key, as served at
// jwks_uri. The returned slice must not be modified.
func (r *KeyRing) JWKS() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.jwks
}

func buildJWKS(stored []StoredKey, public map[string]PublicKey) ([]byte, error) {
	sort.Slice(stored, func(i, j int) bool { return stored[i].CreatedAt.After(stored[j].CreatedAt) })
	set := jwk.NewSet()
	for _, s := range stored {
		pk := public[s.ID]
		k, err := jwk.FromRaw(pk.Key)
		if err != nil {
			return nil, fmt.Errorf("jwk for %s: %w", s.ID, err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: s.ID, jwk.AlgorithmKey: pk.Alg, jwk.KeyUsageKey: "sig"} {
			if err := k.Set(name, v); err != nil {
				return nil, err
			}
		}
		if err := set.AddKey(k); err != nil {
			return nil, err
		}
	}
	return json.Marshal(set)
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url.
func thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// SetResolver resolves keys from a JWKS document, such as a trusted external
// issuer's. Symmetric keys and keys marked for encryption are ignored.
type SetResolver struct {
	keys map[string]PublicKey
}

// ErrNoUsableKeys reports a JWKS with no asymmetric signature key that has a kid.
var ErrNoUsableKeys = errors.New("JWKS has no usable signature key")

// NewSetResolver parses a JWKS document into a resolver. Keys without a kid, of
// use "enc", symmetric ("oct"), malformed or too weak, or whose "alg" does not
// fit them are skipped; a set with none left is an error.
func NewSetResolver(jwksJSON []byte) (*SetResolver, error) {
	set, err := jwk.Parse(jwksJSON)
	if err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	r := &SetResolver{keys: map[string]PublicKey{}}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if k.KeyID() == "" || k.KeyUsage() == "enc" || k.KeyType() == jwa.OctetSeq {
			continue
		}
		var raw any
		if err := k.Raw(&raw); err != nil {
			continue
		}
		pub, err := jwk.PublicRawKeyOf(raw)
		if err != nil {
			continue
		}
		if !wellFormed(pub) {
			continue
		}
		var alg jwa.SignatureAlgorithm
		if a := k.Algorithm().String(); a != "" {
			alg = jwa.SignatureAlgorithm(a)
			if verifiers[alg] == nil || !algFitsKey(alg, pub) {
				continue
			}
		} else if !usableKey(pub) {
			continue
		}
		r.keys[k.KeyID()] = PublicKey{ID: k.KeyID(), Alg: alg, Key: pub}
	}
	if len(r.keys) == 0 {
		return nil, ErrNoUsableKeys
	}
	return r, nil
}

// usableKey reports whether some allowed algorithm fits the key (so it is well
// formed and strong enough).
func usableKey(pub any) bool {
	for alg := range verifiers {
		if algFitsKey(alg, pub) {
			return true
		}
	}
	return false
}

// Has reports whether the set holds a key with the given kid.
func (r *SetResolver) Has(kid string) bool {
	_, ok := r.keys[kid]
	return ok
}

// Withdrawn reports whether some key of r is absent from next.
func (r *SetResolver) Withdrawn(next *SetResolver) bool {
	for kid := range r.keys {
		if !next.Has(kid) {
			return true
		}
	}
	return false
}

// ResolveKey returns the key with the given kid.
func (r *SetResolver) ResolveKey(kid string) (PublicKey, bool) {
	k, ok := r.keys[kid]
	return k, ok
}
