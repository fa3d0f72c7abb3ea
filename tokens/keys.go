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
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Signing algorithms Mandate can sign with.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
)

// StoredKey is a signing key as a KeyStore persists it. PKCS8 is secret: a
// KeyStore must keep it where only Mandate's own user can read it. A key is
// published from CreatedAt, signs from ActivatesAt (zero: from CreatedAt)
// until the next key activates, and stays published for the ring's overlap
// after that, until every token it signed has expired.
type StoredKey struct {
	ID    string `json:"kid"`
	Alg   string `json:"alg"`
	PKCS8 []byte `json:"pkcs8"`
	// Sealed: PKCS8 is encrypted under a key-encryption key (SealedKeyStore).
	Sealed      bool      `json:"sealed,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ActivatesAt time.Time `json:"activates_at,omitempty"`
	// Overlap is the ring's overlap when the key was made: it stays published
	// at least this long after it retires, even if the configured token
	// lifetime is lowered later.
	Overlap time.Duration `json:"overlap,omitempty"`
	// CompromisedAt is when an operator declared the key leaked: from then
	// it signs nothing, is published nowhere and verifies nothing, and
	// verifiers are told to drop it (the feed's revoked_keys).
	CompromisedAt time.Time `json:"compromised_at,omitempty"`
}

// Destroyed reports whether the key's private part is gone (a retired or
// compromised key keeps only its record): it can never sign again.
func (k StoredKey) Destroyed() bool { return len(k.PKCS8) == 0 }

// destroy drops the private part, keeping the record.
func (k StoredKey) destroy() StoredKey {
	k.PKCS8, k.Sealed = nil, false
	return k
}

// overlap is how long k stays published after it retires.
func (k StoredKey) overlap(ring time.Duration) time.Duration { return max(k.Overlap, ring) }

func (k StoredKey) activation() time.Time {
	if k.ActivatesAt.IsZero() {
		return k.CreatedAt
	}
	return k.ActivatesAt
}

// KeyStore persists signing keys. It is owned here, where it is consumed;
// every storage backend satisfies it (store/bolt asserts so), and
// SealedKeyStore wraps one to keep the keys encrypted.
type KeyStore interface {
	// SigningKeys returns every stored key.
	SigningKeys(ctx context.Context) ([]StoredKey, error)
	// AddSigningKey durably stores a new key.
	AddSigningKey(ctx context.Context, k StoredKey) error
	// ReplaceSigningKey durably replaces the stored key of k's kid: to
	// destroy a retired key's private part, or mark a key compromised.
	ReplaceSigningKey(ctx context.Context, k StoredKey) error
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

// KeyActivationDelay is how long a rotated-in key is published before it
// signs: longer than a verifier's least interval between JWKS fetches (10 s by
// default), so no verifier meets a token whose key it cannot yet fetch.
const KeyActivationDelay = 30 * time.Second

// KeyRingOptions configures OpenKeyRing.
type KeyRingOptions struct {
	// Alg is the algorithm new keys use ("EdDSA" or "ES256").
	Alg string
	// Overlap is how long a key stays published after it stops signing: the
	// longest token lifetime plus the leeway verifiers allow.
	Overlap time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// KeyRing is the issuer's set of signing keys: the active one signs; the
// JWKS publishes it, any key waiting to activate, and retired keys until
// their tokens have expired. It is safe for concurrent use.
type KeyRing struct {
	opts KeyRingOptions

	mu      sync.RWMutex
	keys    []ringKey // by activation time, oldest first
	current *signingKey
	public  map[string]PublicKey // every stored key
	inJWKS  map[string]bool      // the kids published now: the only keys our tokens verify with
	jwks    []byte
	// nextChange is when the active key or the published set next changes
	// (Unix nanoseconds; 0 for never), checked without the lock on Sign.
	nextChange atomic.Int64
}

type ringKey struct {
	stored StoredKey
	sk     *signingKey
}

type signingKey struct {
	id     string
	alg    jwa.SignatureAlgorithm
	priv   crypto.Signer
	header string     // the base64url protected header, made once: read-only, shared by every Sign
	signer jws.Signer // jwx's signer for alg (stateless)
}

// OpenKeyRing loads the keys in ks. With none, it generates and stores a key
// that signs at once. When the active key's algorithm is not opts.Alg (the
// configuration changed), it publishes a key of opts.Alg that signs after
// KeyActivationDelay (unless one is already waiting), and the old key signs
// until then, so verifiers are never surprised by a restart.
func OpenKeyRing(ctx context.Context, ks KeyStore, opts KeyRingOptions) (*KeyRing, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	r := &KeyRing{opts: opts, public: map[string]PublicKey{}}
	for _, k := range stored {
		if err := r.add(k); err != nil {
			return nil, err
		}
	}
	now := opts.Now()
	r.mu.Lock()
	err = r.recompute(now)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	pending := false
	for _, k := range r.keys {
		if k.stored.Alg == opts.Alg && k.stored.activation().After(now) {
			pending = true
		}
	}
	if r.current == nil || (r.current.alg.String() != opts.Alg && !pending) {
		k, err := GenerateKey(opts.Alg, now)
		if err != nil {
			return nil, err
		}
		k.Overlap = opts.Overlap
		if r.current != nil {
			k.ActivatesAt = now.Add(KeyActivationDelay).UTC()
		}
		if err := ks.AddSigningKey(ctx, k); err != nil {
			return nil, fmt.Errorf("store new signing key: %w", err)
		}
		if err := r.add(k); err != nil {
			return nil, err
		}
		r.mu.Lock()
		err = r.recompute(now)
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// sortKeys orders a ring's keys by activation, then kid: the key that signs
// is the last activated, and rings that load the same keys (replicas on
// one store) pick the same one, even between keys activated at once.
func sortKeys(keys []ringKey) {
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i].stored.activation(), keys[j].stored.activation()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return keys[i].stored.ID < keys[j].stored.ID
	})
}

// Reload merges the keys stored in ks into the ring, for a ring whose
// store other processes share (replicas on one database): a key another
// added (a rotation) is published at once and signs from its activation; a
// key another destroyed (retired) is dropped, and one another declared
// compromised is withdrawn at once (it verifies nothing from then on).
// It returns the kids newly withdrawn as compromised. Keys only this ring
// knows are kept.
func (r *KeyRing) Reload(ctx context.Context, ks KeyStore) ([]string, error) {
	stored, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("reload signing keys: %w", err)
	}
	r.mu.RLock()
	known := make(map[string]StoredKey, len(r.keys))
	for _, k := range r.keys {
		known[k.stored.ID] = k.stored
	}
	r.mu.RUnlock()
	// New keys are parsed outside the lock: signing goes on meanwhile.
	fresh := map[string]*signingKey{}
	for _, k := range stored {
		if _, ok := known[k.ID]; ok || k.Destroyed() || !k.CompromisedAt.IsZero() {
			continue
		}
		sk, err := loadSigningKey(k)
		if err != nil {
			return nil, err
		}
		fresh[k.ID] = sk
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	index := make(map[string]int, len(r.keys))
	for i, k := range r.keys {
		index[k.stored.ID] = i
	}
	var withdrawn []string
	changed := false
	for _, k := range stored {
		i, ok := index[k.ID]
		switch {
		case !ok:
			sk := fresh[k.ID]
			if sk == nil && !k.Destroyed() && k.CompromisedAt.IsZero() {
				continue // added meanwhile by another reload: the next one takes it
			}
			r.keys = append(r.keys, ringKey{stored: k, sk: sk})
			if sk != nil {
				r.public[k.ID] = PublicKey{ID: k.ID, Alg: sk.alg, Key: sk.priv.Public()}
			} else if !k.CompromisedAt.IsZero() {
				withdrawn = append(withdrawn, k.ID)
			}
			changed = true
		case !k.CompromisedAt.IsZero() && r.keys[i].stored.CompromisedAt.IsZero():
			r.keys[i] = ringKey{stored: k}
			delete(r.public, k.ID)
			withdrawn = append(withdrawn, k.ID)
			changed = true
		case k.Destroyed() && r.keys[i].sk != nil:
			r.keys[i] = ringKey{stored: k}
			delete(r.public, k.ID)
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	sortKeys(r.keys)
	return withdrawn, r.recompute(r.opts.Now())
}

// add loads a stored key into the ring (callers recompute afterwards).
func (r *KeyRing) add(k StoredKey) error {
	var sk *signingKey
	if !k.Destroyed() && k.CompromisedAt.IsZero() {
		var err error
		if sk, err = loadSigningKey(k); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, ringKey{stored: k, sk: sk})
	sortKeys(r.keys)
	if sk != nil {
		r.public[k.ID] = PublicKey{ID: k.ID, Alg: sk.alg, Key: sk.priv.Public()}
	}
	return nil
}

// recompute picks the active key and the published set at now, and when they
// next change. The caller holds mu.
func (r *KeyRing) recompute(now time.Time) error {
	var next time.Time
	later := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	r.current = nil
	r.inJWKS = map[string]bool{}
	var published []StoredKey
	var pub []PublicKey
	for i, k := range r.keys {
		if k.sk == nil { // compromised, or retired and destroyed: nothing to sign or publish
			continue
		}
		act := k.stored.activation()
		if act.After(now) { // waiting to activate: published ahead
			later(act)
			published, pub = append(published, k.stored), append(pub, r.public[k.stored.ID])
			continue
		}
		retires := time.Time{}
		for _, n := range r.keys[i+1:] {
			if n.sk != nil && !n.stored.activation().After(now) {
				retires = n.stored.activation()
				break
			}
		}
		if retires.IsZero() {
			r.current = k.sk
		}
		if leaves := retires.Add(k.stored.overlap(r.opts.Overlap)); retires.IsZero() || now.Before(leaves) {
			if !retires.IsZero() {
				later(leaves)
			}
			published, pub = append(published, k.stored), append(pub, r.public[k.stored.ID])
		}
	}
	for _, k := range published {
		r.inJWKS[k.ID] = true
	}
	jwks, err := buildJWKS(published, pub)
	if err != nil {
		return err
	}
	r.jwks = jwks
	if next.IsZero() {
		r.nextChange.Store(0)
	} else {
		r.nextChange.Store(next.UnixNano())
	}
	return nil
}

// refresh recomputes when a scheduled change (an activation, a retired key
// leaving the JWKS) is due.
func (r *KeyRing) refresh() {
	n := r.nextChange.Load()
	if n == 0 {
		return
	}
	now := r.opts.Now()
	if now.UnixNano() < n {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.recompute(now) // the keys were all built before; this cannot fail
}

// Rotate generates a key for alg (empty: the current key's algorithm),
// stores it, and publishes it at once; it starts signing after
// KeyActivationDelay, and the key it replaces stays published until every
// token it signed has expired.
func (r *KeyRing) Rotate(ctx context.Context, ks KeyStore, alg string) (StoredKey, error) {
	now := r.opts.Now()
	if alg == "" {
		alg = r.CurrentAlg()
	}
	k, err := GenerateKey(alg, now)
	if err != nil {
		return k, err
	}
	k.ActivatesAt = now.Add(KeyActivationDelay).UTC()
	k.Overlap = r.opts.Overlap
	if err := ks.AddSigningKey(ctx, k); err != nil {
		return k, fmt.Errorf("store new signing key: %w", err)
	}
	if err := r.add(k); err != nil {
		return k, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return k, r.recompute(now)
}

// RotateCompromised is the emergency rotation, for a key that leaked (kid;
// empty: the key signing now): it is marked compromised and its private
// part destroyed, so it leaves the JWKS at once and verifies nothing here (a
// token it signed is refused everywhere Mandate checks one), and a new key of
// alg (empty: the withdrawn key's algorithm) signs at once. The store learns
// of the compromise first: a failure part way leaves the leaked key
// withdrawn, and a retry with its kid is safe. The ring changes in one step,
// so no token is ever signed with the new key while the old one still
// verifies. It returns the new key and the withdrawn kid, which the
// revocation feed then names in revoked_keys.
func (r *KeyRing) RotateCompromised(ctx context.Context, ks KeyStore, alg, kid string) (StoredKey, string, error) {
	now := r.opts.Now()
	r.refresh()
	r.mu.RLock()
	if kid == "" && r.current != nil {
		kid = r.current.id
	}
	var old StoredKey
	for _, k := range r.keys {
		if k.stored.ID == kid {
			old = k.stored
		}
	}
	r.mu.RUnlock()
	if old.ID == "" {
		return StoredKey{}, "", fmt.Errorf("no signing key %q", kid)
	}
	if alg == "" {
		alg = old.Alg
	}
	k, err := GenerateKey(alg, now)
	if err != nil {
		return k, "", err
	}
	k.ActivatesAt = now.UTC() // signs at once: no verifier must meet the old key again
	k.Overlap = r.opts.Overlap
	sk, err := loadSigningKey(k)
	if err != nil {
		return k, "", err
	}
	gone := old.destroy()
	if gone.CompromisedAt.IsZero() {
		gone.CompromisedAt = now.UTC()
	}
	if err := ks.ReplaceSigningKey(ctx, gone); err != nil {
		return k, "", fmt.Errorf("mark key %s compromised: %w", old.ID, err)
	}
	if err := ks.AddSigningKey(ctx, k); err != nil {
		return k, "", fmt.Errorf("store new signing key: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.keys {
		if r.keys[i].stored.ID == old.ID {
			r.keys[i] = ringKey{stored: gone}
		}
	}
	delete(r.public, old.ID)
	r.keys = append(r.keys, ringKey{stored: k, sk: sk})
	sortKeys(r.keys)
	r.public[k.ID] = PublicKey{ID: k.ID, Alg: sk.alg, Key: sk.priv.Public()}
	return k, old.ID, r.recompute(now)
}

// CompromisedKeys lists every kid ever declared compromised: what the
// revocation feed tells verifiers to drop. The list never ages: whoever
// holds a leaked key can sign tokens with any exp, and a verifier starting
// later behind a stale JWKS must still learn not to trust it.
func (r *KeyRing) CompromisedKeys() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []string{}
	for _, k := range r.keys {
		if !k.stored.CompromisedAt.IsZero() {
			out = append(out, k.stored.ID)
		}
	}
	return out
}

// Prune destroys the private part of every key that will never sign or be
// published again (retired past its overlap), so a copy of the data file
// holds only keys still in use. It returns the kids it destroyed.
func (r *KeyRing) Prune(ctx context.Context, ks KeyStore) ([]string, error) {
	r.refresh()
	r.mu.RLock()
	var stale []StoredKey
	for _, k := range r.keys {
		if k.sk != nil && !r.inJWKS[k.stored.ID] && (r.current == nil || r.current.id != k.stored.ID) && !k.stored.activation().After(r.opts.Now()) {
			stale = append(stale, k.stored)
		}
	}
	r.mu.RUnlock()
	var done []string
	for _, k := range stale {
		gone := k.destroy()
		if err := ks.ReplaceSigningKey(ctx, gone); err != nil {
			return done, fmt.Errorf("destroy retired key %s: %w", k.ID, err)
		}
		r.mu.Lock()
		for i := range r.keys {
			if r.keys[i].stored.ID == k.ID {
				r.keys[i] = ringKey{stored: gone}
			}
		}
		delete(r.public, k.ID)
		r.mu.Unlock()
		done = append(done, k.ID)
	}
	return done, nil
}

// KeyInfo describes a key for operators.
type KeyInfo struct {
	ID          string     `json:"kid"`
	Alg         string     `json:"alg"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	// Status is "pending" (published, not signing yet), "active", "retiring"
	// (published until its tokens expire), "retired" (no longer published)
	// or "compromised" (withdrawn at once by an emergency rotation).
	Status    string     `json:"status"`
	Published bool       `json:"published"`
	LeavesAt  *time.Time `json:"leaves_jwks_at,omitempty"`
}

// Keys lists every key with its status now.
func (r *KeyRing) Keys() []KeyInfo {
	r.refresh()
	r.mu.RLock()
	stored := make([]StoredKey, len(r.keys))
	for i, k := range r.keys {
		stored[i] = k.stored
	}
	r.mu.RUnlock()
	return DescribeKeys(stored, r.opts.Overlap, r.opts.Now())
}

// DescribeKeys gives each stored key its status at now, for a ring whose
// retired keys stay published for overlap (what KeyRing.Keys reports, and
// what an operator reads from a stopped server's file).
func DescribeKeys(stored []StoredKey, overlap time.Duration, now time.Time) []KeyInfo {
	keys := append([]StoredKey(nil), stored...)
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].activation().Before(keys[j].activation()) })
	out := make([]KeyInfo, 0, len(keys))
	for i, k := range keys {
		info := KeyInfo{ID: k.ID, Alg: k.Alg, CreatedAt: k.CreatedAt, ActivatesAt: k.activation()}
		if !k.CompromisedAt.IsZero() {
			at := k.CompromisedAt
			info.Status, info.RetiredAt = "compromised", &at
			out = append(out, info)
			continue
		}
		var retires time.Time
		for _, n := range keys[i+1:] {
			if n.CompromisedAt.IsZero() && !n.activation().After(now) {
				retires = n.activation()
				break
			}
		}
		switch {
		case info.ActivatesAt.After(now):
			info.Status, info.Published = "pending", true
		case retires.IsZero():
			info.Status, info.Published = "active", true
		default:
			leaves := retires.Add(k.overlap(overlap))
			info.RetiredAt, info.LeavesAt = &retires, &leaves
			info.Status, info.Published = "retired", false
			if now.Before(leaves) {
				info.Status, info.Published = "retiring", true
			}
		}
		out = append(out, info)
	}
	return out
}

func loadSigningKey(k StoredKey) (*signingKey, error) {
	if k.Sealed {
		return nil, fmt.Errorf("%w: %s (configure the key-encryption key it was sealed with)", ErrKeySealed, k.ID)
	}
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
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg.String(), k.ID, TypeAccessToken})
	if err != nil {
		return nil, err
	}
	signer, err := jws.NewSigner(alg)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	return &signingKey{id: k.ID, alg: alg, priv: priv, header: b64.EncodeToString(header), signer: signer}, nil
}

// Sign serializes the claims and signs them with the current key, with "kid" and
// "typ: at+jwt" in the protected header.
func (r *KeyRing) Sign(c *jwt.Claims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	r.refresh()
	r.mu.RLock()
	k := r.current
	r.mu.RUnlock()
	// The compact form is assembled here from the key's fixed header: jws.Sign
	// would write into a shared header object on every call (a data race
	// under concurrent issuance), and the header never changes anyway.
	input := make([]byte, 0, len(k.header)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(132))
	input = append(input, k.header...)
	input = append(input, '.')
	input = b64.AppendEncode(input, payload)
	sig, err := k.signer.Sign(input, k.priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	input = append(input, '.')
	return string(b64.AppendEncode(input, sig)), nil
}

// Verify checks a Mandate token's signature and type against the ring's keys and
// decodes its claims. It does not check time, issuer or revocation: callers do.
func (r *KeyRing) Verify(token string) (*jwt.Claims, error) {
	payload, _, err := Verify(token, r, TypeAccessToken)
	if err != nil {
		return nil, err
	}
	return jwt.Parse(payload)
}

// ResolveKey returns the public key with the given kid while it is
// published: a key withdrawn from the JWKS verifies nothing here either, as
// at every resource server.
func (r *KeyRing) ResolveKey(kid string) (PublicKey, bool) {
	r.refresh()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.inJWKS[kid] {
		return PublicKey{}, false
	}
	k, ok := r.public[kid]
	return k, ok
}

// CurrentKeyID is the kid of the key that signs new tokens.
func (r *KeyRing) CurrentKeyID() string {
	r.refresh()
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
	r.refresh()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.jwks
}

// buildJWKS publishes keys newest first.
func buildJWKS(stored []StoredKey, public []PublicKey) ([]byte, error) {
	set := jwk.NewSet()
	for i := len(stored) - 1; i >= 0; i-- {
		s, pk := stored[i], public[i]
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

// Without is the set less the keys of kids (keys withdrawn as compromised).
func (r *SetResolver) Without(kids map[string]bool) *SetResolver {
	out := &SetResolver{keys: make(map[string]PublicKey, len(r.keys))}
	for kid, k := range r.keys {
		if !kids[kid] {
			out.keys[kid] = k
		}
	}
	return out
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
