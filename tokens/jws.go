package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Errors returned by Verify; callers branch on them with errors.Is.
var (
	// ErrMalformed: not a JWS compact serialization, too large, or a payload that is not a JSON object.
	ErrMalformed = errors.New("malformed token")
	// ErrUnknownKey: the "kid" names no key the resolver knows, or is missing.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrAlgorithm: the header "alg" is not allowed, or is not the key's algorithm.
	ErrAlgorithm = errors.New("signature algorithm not allowed")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrType: the "typ" header is not the one expected, or "crit" names an extension.
	ErrType = errors.New("wrong token type")
)

// MaxTokenSize bounds the size of a token Mandate will parse (16 KiB); a longer
// input is refused as malformed before any decoding.
const MaxTokenSize = 16 << 10

// PublicKey is a verification key: its kid, the one JWS algorithm it may be used
// with (empty when the publisher did not say, in which case the algorithm must
// fit the key type) and the raw public key.
type PublicKey struct {
	ID  string
	Alg jwa.SignatureAlgorithm
	Key any
}

// KeyResolver finds a verification key by kid. Implementations must be safe for
// concurrent use and must never fetch a key named by the token itself (jku, x5u, jwk).
type KeyResolver interface {
	ResolveKey(kid string) (PublicKey, bool)
}

// allowedAlgs are the only JWS algorithms Mandate ever verifies: asymmetric, never
// "none", never HMAC (whose key would be a public key an attacker also has).
var allowedAlgs = map[jwa.SignatureAlgorithm]bool{
	jwa.EdDSA: true, jwa.ES256: true, jwa.ES384: true, jwa.ES512: true,
	jwa.RS256: true, jwa.RS384: true, jwa.RS512: true,
	jwa.PS256: true, jwa.PS384: true, jwa.PS512: true,
}

// Header is the part of a verified token's protected header callers may need.
type Header struct {
	KeyID string
	Alg   jwa.SignatureAlgorithm
	Type  string
}

// Verify checks a compact JWS against keys and returns its payload. wantType,
// when not empty, is the required "typ" ("at+jwt" and "application/at+jwt" are
// the same type, compared case-insensitively as RFC 7515 §4.1.9 says). It
// refuses JSON serialization, multiple signatures, "crit" extensions, and any
// alg other than the resolved key's own.
func Verify(token string, keys KeyResolver, wantType string) ([]byte, Header, error) {
	var hdr Header
	if len(token) > MaxTokenSize {
		return nil, hdr, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenSize)
	}
	if strings.Count(token, ".") != 2 {
		return nil, hdr, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	var crit []string
	provider := jws.KeyProviderFunc(func(_ context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		h := sig.ProtectedHeaders()
		hdr = Header{KeyID: h.KeyID(), Alg: h.Algorithm(), Type: h.Type()}
		crit = h.Critical()
		if !allowedAlgs[hdr.Alg] {
			return fmt.Errorf("%w: %q", ErrAlgorithm, hdr.Alg.String())
		}
		if hdr.KeyID == "" {
			return fmt.Errorf("%w: no kid in header", ErrUnknownKey)
		}
		k, ok := keys.ResolveKey(hdr.KeyID)
		if !ok {
			return fmt.Errorf("%w: kid %q", ErrUnknownKey, printable(hdr.KeyID))
		}
		if k.Alg != "" && k.Alg != hdr.Alg {
			return fmt.Errorf("%w: key %q is for %s, token says %s", ErrAlgorithm, printable(k.ID), k.Alg, hdr.Alg)
		}
		if !algFitsKey(hdr.Alg, k.Key) {
			return fmt.Errorf("%w: %s does not fit key %q", ErrAlgorithm, hdr.Alg, printable(k.ID))
		}
		sink.Key(hdr.Alg, k.Key)
		return nil
	})
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKeyProvider(provider))
	if err != nil {
		for _, sentinel := range []error{ErrAlgorithm, ErrUnknownKey} {
			if errors.Is(err, sentinel) {
				return nil, hdr, unwrapSentinel(err, sentinel)
			}
		}
		if hdr.KeyID == "" && hdr.Alg == "" {
			return nil, hdr, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return nil, hdr, ErrSignature
	}
	if len(crit) > 0 {
		return nil, hdr, fmt.Errorf("%w: unsupported critical header %q", ErrType, crit)
	}
	if wantType != "" && !sameType(hdr.Type, wantType) {
		return nil, hdr, fmt.Errorf("%w: typ %q, want %q", ErrType, printable(hdr.Type), wantType)
	}
	if len(payload) == 0 || payload[0] != '{' {
		return nil, hdr, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return payload, hdr, nil
}

// unwrapSentinel strips jwx's wrapping ("key provider 0 failed: ...") and keeps
// our own message, which already names the sentinel.
func unwrapSentinel(err, sentinel error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), sentinel.Error()) {
			return e
		}
	}
	return sentinel
}

// ParseClaims decodes a verified payload into Claims.
func ParseClaims(payload []byte) (*Claims, error) {
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return &c, nil
}

func sameType(got, want string) bool {
	got = strings.ToLower(got)
	want = strings.ToLower(want)
	return strings.TrimPrefix(got, "application/") == strings.TrimPrefix(want, "application/")
}

// algFitsKey reports whether alg can be used with the raw public key's type and
// curve, so a key published without "alg" still selects exactly one family. It
// is on the verification path, so it only does cheap checks: Ed25519 length
// (ed25519.Verify panics on a short key) and RSA size. Keys from outside are
// also checked once, when loaded, by wellFormed.
func algFitsKey(alg jwa.SignatureAlgorithm, key any) bool {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return alg == jwa.EdDSA && len(k) == ed25519.PublicKeySize
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return alg == jwa.ES256
		case elliptic.P384():
			return alg == jwa.ES384
		case elliptic.P521():
			return alg == jwa.ES512
		}
		return false
	case *rsa.PublicKey:
		switch alg {
		case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
			return k.N.BitLen() >= 2048
		}
		return false
	}
	return false
}

func printable(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// wellFormed reports whether a public key loaded from a JWKS is usable: an EC
// key must be a point on its curve (checked once here, not on every verification).
func wellFormed(pub any) bool {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		if _, err := k.ECDH(); err != nil {
			return false
		}
	}
	return true
}
