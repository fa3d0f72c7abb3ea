package tokens

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Errors returned by Verify; callers branch on them with errors.Is.
var (
	// ErrMalformed: not a JWS compact serialization, too large, or a payload
	// that is not a JSON object. It is jwt.ErrMalformed, which claim decoding
	// wraps too.
	ErrMalformed = jwt.ErrMalformed
	// ErrUnknownKey: the "kid" names no key the resolver knows, or is missing.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrAlgorithm: the header "alg" is not allowed, or is not the key's algorithm.
	ErrAlgorithm = errors.New("signature algorithm not allowed")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrType: the "typ" header is not the one expected, or "crit" names an extension.
	ErrType = errors.New("wrong token type")
)

// TypeAccessToken is the JWS "typ" header of every Mandate token (RFC 9068 §2.1).
const TypeAccessToken = "at+jwt"

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

// Header is the part of a verified token's protected header callers may need.
type Header struct {
	KeyID string
	Alg   jwa.SignatureAlgorithm
	Type  string
}

// Verify checks a compact JWS against keys and returns its payload. wantType,
// when not empty, is the required "typ" ("at+jwt" and "application/at+jwt" are
// the same type, compared case-insensitively as RFC 7515 §4.1.9 says). It
// refuses JSON serialization, non-canonical base64, "crit" extensions, the
// unencoded-payload option, and any alg other than the resolved key's own.
//
// The compact form and the protected header are parsed here, into a fixed
// struct, and the signature is checked with jwx's per-algorithm verifier
// primitive: this is the hot path of every resource server, and a generic
// header map would cost more than the Ed25519 check itself.
func Verify(token string, keys KeyResolver, wantType string) ([]byte, Header, error) {
	var hdr Header
	if len(token) > MaxTokenSize {
		return nil, hdr, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenSize)
	}
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	if dot1 <= 0 || dot2 == dot1 || strings.IndexByte(token[dot1+1:dot2], '.') >= 0 {
		return nil, hdr, fmt.Errorf("%w: not a JWS compact serialization", ErrMalformed)
	}
	rawHeader, err := b64.DecodeString(token[:dot1])
	if err != nil {
		return nil, hdr, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var h protectedHeader
	if err := json.Unmarshal(rawHeader, &h); err != nil {
		return nil, hdr, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if err := jwt.CheckMembers(rawHeader); err != nil {
		return nil, hdr, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	hdr = Header{KeyID: h.Kid, Alg: jwa.SignatureAlgorithm(h.Alg), Type: h.Typ}
	verifier, ok := verifiers[hdr.Alg]
	if !ok {
		return nil, hdr, fmt.Errorf("%w: %q", ErrAlgorithm, jwt.Excerpt(h.Alg))
	}
	if hdr.KeyID == "" {
		return nil, hdr, fmt.Errorf("%w: no kid in header", ErrUnknownKey)
	}
	k, ok := keys.ResolveKey(hdr.KeyID)
	if !ok {
		return nil, hdr, fmt.Errorf("%w: kid %q", ErrUnknownKey, jwt.Excerpt(hdr.KeyID))
	}
	if k.Alg != "" && k.Alg != hdr.Alg {
		return nil, hdr, fmt.Errorf("%w: key %q is for %s, token says %s", ErrAlgorithm, jwt.Excerpt(k.ID), k.Alg, hdr.Alg)
	}
	if !algFitsKey(hdr.Alg, k.Key) {
		return nil, hdr, fmt.Errorf("%w: %s does not fit key %q", ErrAlgorithm, hdr.Alg, jwt.Excerpt(k.ID))
	}
	sig, err := b64.DecodeString(token[dot2+1:])
	if err != nil {
		return nil, hdr, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	if err := verifier.Verify([]byte(token[:dot2]), sig, k.Key); err != nil {
		return nil, hdr, ErrSignature
	}
	if len(h.Crit) > 0 || h.B64 != nil {
		return nil, hdr, fmt.Errorf("%w: unsupported critical header or b64 option", ErrType)
	}
	if wantType != "" && !sameType(hdr.Type, wantType) {
		return nil, hdr, fmt.Errorf("%w: typ %q, want %q", ErrType, jwt.Excerpt(hdr.Type), wantType)
	}
	payload, err := b64.DecodeString(token[dot1+1 : dot2])
	if err != nil {
		return nil, hdr, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	if len(payload) == 0 || payload[0] != '{' {
		return nil, hdr, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return payload, hdr, nil
}

// b64 is strict base64url without padding: a non-canonical encoding (stray
// trailing bits) is malformed, so one signature has one string form.
var b64 = base64.RawURLEncoding.Strict()

// protectedHeader is every JOSE header member Verify reads. jku, x5u, x5c and
// jwk are deliberately absent: keys never come from the token.
type protectedHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
	B64  *bool    `json:"b64"`
}

// verifiers holds jwx's signature primitive for each allowed algorithm: only
// asymmetric ones, never "none", never HMAC (whose key would be a public key an
// attacker also has).
var verifiers = func() map[jwa.SignatureAlgorithm]jws.Verifier {
	m := map[jwa.SignatureAlgorithm]jws.Verifier{}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.EdDSA, jwa.ES256, jwa.ES384, jwa.ES512,
		jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512} {
		v, err := jws.NewVerifier(alg)
		if err != nil {
			panic(fmt.Sprintf("jwx lacks a verifier for %s: %v", alg, err))
		}
		m[alg] = v
	}
	return m
}()

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
			// At most 8192 bits: a key from a proof's header is chosen by the
			// sender, and verification cost grows with the cube of the size.
			return k.N.BitLen() >= 2048 && k.N.BitLen() <= 8192
		}
		return false
	}
	return false
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
