package tokens

// DPoP (RFC 9449): proofs of possession of the key a token is bound to.
// This file holds the whole of it: making proofs, checking them, and the
// replay cache. The server's token endpoint and every resource server's
// Verifier use the same checks.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TypeDPoP is the "typ" of a DPoP proof (RFC 9449 §4.2).
const TypeDPoP = "dpop+jwt"

// Errors of VerifyDPoP; each wraps ErrDPoP, so callers answering
// invalid_dpop_proof need one check.
var (
	ErrDPoP = errors.New("invalid DPoP proof")
	// ErrDPoPNonce: the server requires a nonce and the proof lacks the current one.
	ErrDPoPNonce       = fmt.Errorf("%w: a fresh server nonce is required", ErrDPoP)
	errDPoPReplay      = fmt.Errorf("%w: proof replayed", ErrDPoP)
	errDPoPExpired     = fmt.Errorf("%w: proof too old or from the future", ErrDPoP)
	errDPoPBeforeStart = fmt.Errorf("%w: proof made before this server started, so it could be a replay its cache never saw: make a new one", ErrDPoP)
)

// DPoPCheck says what a proof must match.
type DPoPCheck struct {
	Method string // the request's method (htm)
	URL    string // the request's URL; query and fragment are ignored (htu)
	// AccessToken, when set, must be the one the proof was made for (ath).
	AccessToken string
	// Nonce, when set, must be the proof's nonce.
	Nonce string
	// JKT, when set, is the thumbprint of the only key the proof may be made
	// with (the token's cnf.jkt). It is compared before the signature is
	// checked or the jti recorded, so proofs by other keys cost a hash and
	// can neither fill the replay cache nor make the server verify a costly
	// signature.
	JKT string
	Now time.Time
	// MaxAge bounds how old a proof may be (default 60 s); 5 s in the future are tolerated.
	MaxAge time.Duration
	// NotBefore, when set, is when the replay cache started remembering (the
	// process started): a proof made before it (by more than the 5 s of
	// clock skew) could be a replay the cache never saw, and is refused.
	NotBefore time.Time
}

// DPoPProof is a verified proof: the thumbprint of the key that signed it,
// its jti, and until when it could be accepted (its jti must be remembered
// that long to refuse a replay).
type DPoPProof struct {
	JKT     string
	JTI     string
	Expires time.Time
}

// maxProof bounds the size of a proof.
const maxProof = 8 << 10

// VerifyDPoP checks a DPoP proof against c and records its jti in replay (a
// replayed proof is refused). The key comes from the proof's own jwk header
// (public, asymmetric, an allowed algorithm that fits it).
func VerifyDPoP(proof string, c DPoPCheck, replay *ReplayCache) (*DPoPProof, error) {
	if c.MaxAge <= 0 {
		c.MaxAge = 60 * time.Second
	}
	bad := func(format string, args ...any) (*DPoPProof, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrDPoP}, args...)...)
	}
	if len(proof) > maxProof || strings.Count(proof, ".") != 2 {
		return bad("not a compact JWS")
	}
	dot1, dot2 := strings.IndexByte(proof, '.'), strings.LastIndexByte(proof, '.')
	rawHeader, err := b64.DecodeString(proof[:dot1])
	if err != nil {
		return bad("header is not base64url")
	}
	var h struct {
		Typ  string          `json:"typ"`
		Alg  string          `json:"alg"`
		JWK  json.RawMessage `json:"jwk"`
		Crit []string        `json:"crit"`
	}
	if json.Unmarshal(rawHeader, &h) != nil {
		return bad("header is not a JSON object")
	}
	if err := jwt.CheckMembers(rawHeader); err != nil {
		return bad("header: %v", err)
	}
	if h.Typ != TypeDPoP {
		return bad("typ must be %s", TypeDPoP)
	}
	if h.Crit != nil {
		return bad("crit names extensions this verifier does not understand")
	}
	alg := jwa.SignatureAlgorithm(h.Alg)
	verifier, ok := verifiers[alg]
	if !ok {
		return bad("algorithm %q not allowed", jwt.Excerpt(h.Alg))
	}
	pub, jkt, err := publicJWK(h.JWK)
	if err != nil {
		return bad("%v", err)
	}
	if c.JKT != "" && jkt != c.JKT {
		return bad("the proof is not made with the key the token is bound to")
	}
	if !algFitsKey(alg, pub) {
		return bad("%s does not fit the proof's key", alg)
	}
	sig, err := b64.DecodeString(proof[dot2+1:])
	if err != nil || verifier.Verify([]byte(proof[:dot2]), sig, pub) != nil {
		return bad("signature does not verify")
	}
	payload, err := b64.DecodeString(proof[dot1+1 : dot2])
	if err != nil {
		return bad("payload is not base64url")
	}
	var p struct {
		JTI   string          `json:"jti"`
		HTM   string          `json:"htm"`
		HTU   string          `json:"htu"`
		IAT   jwt.NumericDate `json:"iat"`
		ATH   string          `json:"ath"`
		Nonce string          `json:"nonce"`
	}
	if err := jwt.CheckMembers(payload); err != nil {
		return bad("claims: %v", err)
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return bad("claims are malformed: %v", err)
	}
	if p.JTI == "" || len(p.JTI) > 256 || p.IAT.IsZero() {
		return bad("claims must be a JSON object with jti, htm, htu and iat")
	}
	if p.HTM != c.Method {
		return bad("htm %q is not the request's method %s", jwt.Excerpt(p.HTM), c.Method)
	}
	if !sameHTU(p.HTU, c.URL) {
		return bad("htu %q is not the request's URL", jwt.Excerpt(p.HTU))
	}
	iat := p.IAT.Time()
	if iat.Before(c.Now.Add(-c.MaxAge)) || iat.After(c.Now.Add(5*time.Second)) {
		return nil, errDPoPExpired
	}
	if !c.NotBefore.IsZero() && iat.Before(c.NotBefore.Add(-5*time.Second)) {
		return nil, errDPoPBeforeStart
	}
	if c.AccessToken != "" && p.ATH != AccessTokenHash(c.AccessToken) {
		return bad("ath does not match the access token")
	}
	if c.Nonce != "" && p.Nonce != c.Nonce {
		return nil, ErrDPoPNonce
	}
	expires := iat.Add(c.MaxAge + 5*time.Second)
	if replay != nil && replay.Seen(jkt+"/"+p.JTI, expires, c.Now) {
		return nil, errDPoPReplay
	}
	return &DPoPProof{JKT: jkt, JTI: p.JTI, Expires: expires}, nil
}

// publicJWK parses a proof's jwk header: it must be an asymmetric public key
// (never private material, never a symmetric key) that is well formed. It
// returns the raw key and its RFC 7638 thumbprint.
func publicJWK(raw json.RawMessage) (any, string, error) {
	if len(raw) == 0 {
		return nil, "", errors.New("no jwk header")
	}
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, "", errors.New("jwk header is not a JWK")
	}
	if private, err := jwk.IsPrivateKey(k); err != nil || private {
		return nil, "", errors.New("jwk header must be a public asymmetric key")
	}
	var pub any
	if err := k.Raw(&pub); err != nil || !wellFormed(pub) || !usableKey(pub) {
		return nil, "", errors.New("jwk header is not a usable key")
	}
	jkt, err := thumbprint(pub)
	if err != nil {
		return nil, "", err
	}
	return pub, jkt, nil
}

// AccessTokenHash is the ath of a proof for token: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameHTU compares a proof's htu with the request URL, ignoring query and
// fragment, with scheme and host case-insensitive and default ports implied.
func sameHTU(htu, target string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(target)
	if err1 != nil || err2 != nil || a.Host == "" {
		return false
	}
	norm := func(u *url.URL) string {
		host := strings.ToLower(u.Host)
		scheme := strings.ToLower(u.Scheme)
		if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
			host = host[:strings.LastIndexByte(host, ':')]
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(a) == norm(b)
}

// ReplayCache remembers proof jtis until their proofs would be too old anyway.
// It is bounded: when full of live entries it refuses new ones (Seen reports
// true), failing closed rather than forgetting a jti it must remember.
type ReplayCache struct {
	mu        sync.Mutex
	max       int
	m         map[string]time.Time
	lastPurge time.Time
}

// NewReplayCache returns a cache of at most max entries (default 262,144).
func NewReplayCache(max int) *ReplayCache {
	if max <= 0 {
		max = 1 << 18
	}
	return &ReplayCache{max: max, m: make(map[string]time.Time)}
}

// Seen records key until expires and reports whether it was already there
// (or the cache is full of live entries).
func (c *ReplayCache) Seen(key string, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.m[key]; ok && now.Before(exp) {
		return true
	}
	if len(c.m) >= c.max && now.Sub(c.lastPurge) >= time.Second {
		for k, exp := range c.m {
			if !now.Before(exp) {
				delete(c.m, k)
			}
		}
		c.lastPurge = now
	}
	if len(c.m) >= c.max {
		return true
	}
	c.m[key] = expires
	return false
}

// Len is the number of remembered jtis.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// DPoPKey is a key an agent proves possession of: it signs DPoP proofs (and
// an ephemeral agent's actor token). Its thumbprint is what tokens are bound to.
type DPoPKey struct {
	priv crypto.Signer
	alg  jwa.SignatureAlgorithm
	pub  jwk.Key
	jkt  string
}

// NewDPoPKey generates a key for alg (EdDSA or ES256).
func NewDPoPKey(alg string) (*DPoPKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case AlgEdDSA, "":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("DPoP key algorithm %q is not supported (use %s or %s)", alg, AlgEdDSA, AlgES256)
	}
	if err != nil {
		return nil, err
	}
	return DPoPKeyFromSigner(priv)
}

// DPoPKeyFromSigner wraps an existing private key (an Ed25519 key, or an
// ECDSA P-256 key) for an agent that keeps its key across restarts.
func DPoPKeyFromSigner(priv crypto.Signer) (*DPoPKey, error) {
	var alg jwa.SignatureAlgorithm
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		alg = jwa.EdDSA
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("DPoP keys on ECDSA use P-256 (ES256), not %s", k.Curve.Params().Name)
		}
		alg = jwa.ES256
	default:
		return nil, fmt.Errorf("DPoP key type %T is not supported (use Ed25519 or ECDSA P-256)", priv)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, err
	}
	jkt, err := thumbprint(priv.Public())
	if err != nil {
		return nil, err
	}
	return &DPoPKey{priv: priv, alg: alg, pub: pub, jkt: jkt}, nil
}

// JKT is the key's RFC 7638 SHA-256 thumbprint, the cnf.jkt of tokens bound to it.
func (k *DPoPKey) JKT() string { return k.jkt }

// SignJWT signs claims with the key, with typ and the public jwk in the header.
func (k *DPoPKey) SignJWT(typ string, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	for name, v := range map[string]any{jws.TypeKey: typ, jws.JWKKey: k.pub} {
		if err := h.Set(name, v); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(h)))
	return string(out), err
}

// Proof makes a DPoP proof for a request (method, URL), for accessToken when
// calling a resource server (empty at the token endpoint), with the server's
// nonce when it asked for one.
func (k *DPoPKey) Proof(method, target, accessToken, nonce string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti[:]), "htm": method, "htu": u.String(), "iat": now.Unix()}
	if accessToken != "" {
		claims["ath"] = AccessTokenHash(accessToken)
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	return k.SignJWT(TypeDPoP, claims)
}

// VerifySelfSigned checks a JWS signed by the key in its own jwk header (an
// ephemeral agent's actor token) and returns the payload and the key's
// thumbprint. It proves possession of the key, nothing more: the caller
// checks the claims.
func VerifySelfSigned(token, wantType string) ([]byte, string, error) {
	if len(token) > maxProof || strings.Count(token, ".") != 2 {
		return nil, "", fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	dot1, dot2 := strings.IndexByte(token, '.'), strings.LastIndexByte(token, '.')
	rawHeader, err := b64.DecodeString(token[:dot1])
	if err != nil {
		return nil, "", fmt.Errorf("%w: header", ErrMalformed)
	}
	var h struct {
		Typ  string          `json:"typ"`
		Alg  string          `json:"alg"`
		JWK  json.RawMessage `json:"jwk"`
		Crit []string        `json:"crit"`
	}
	if json.Unmarshal(rawHeader, &h) != nil || len(h.Crit) > 0 || jwt.CheckMembers(rawHeader) != nil {
		return nil, "", fmt.Errorf("%w: header", ErrMalformed)
	}
	if !sameType(h.Typ, wantType) {
		return nil, "", fmt.Errorf("%w: typ %q, want %q", ErrType, jwt.Excerpt(h.Typ), wantType)
	}
	alg := jwa.SignatureAlgorithm(h.Alg)
	verifier, ok := verifiers[alg]
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", ErrAlgorithm, jwt.Excerpt(h.Alg))
	}
	pub, jkt, err := publicJWK(h.JWK)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !algFitsKey(alg, pub) {
		return nil, "", fmt.Errorf("%w: %s does not fit the key", ErrAlgorithm, alg)
	}
	sig, err := b64.DecodeString(token[dot2+1:])
	if err != nil || verifier.Verify([]byte(token[:dot2]), sig, pub) != nil {
		return nil, "", ErrSignature
	}
	payload, err := b64.DecodeString(token[dot1+1 : dot2])
	if err != nil || len(payload) == 0 || payload[0] != '{' {
		return nil, "", fmt.Errorf("%w: payload", ErrMalformed)
	}
	if err := jwt.CheckMembers(payload); err != nil {
		return nil, "", fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	return payload, jkt, nil
}
