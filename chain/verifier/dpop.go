package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens"
)

// VerifyDPoP checks a DPoP-bound token presented with a proof for the
// request (method, URL): the token as Verify does, then the proof (RFC 9449:
// htm, htu, iat window, ath, jti replay, the server nonce when required) and
// that it was made with the very key the token is bound to.
func (v *Verifier) VerifyDPoP(ctx context.Context, token, proof, method, url string) (*chain.Chain, error) {
	c, err := v.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.JKT == "" {
		return nil, fmt.Errorf("%w: the token is not bound to a key; send it as a Bearer token", ErrInvalidDPoPProof)
	}
	check := tokens.DPoPCheck{Method: method, URL: url, AccessToken: token, Now: v.cfg.Now(), MaxAge: v.cfg.DPoPMaxAge, JKT: c.JKT, NotBefore: v.started}
	var p *tokens.DPoPProof
	if v.nonces == nil {
		p, err = tokens.VerifyDPoP(proof, check, v.replay)
	} else {
		for _, n := range v.nonces.valid(check.Now) {
			check.Nonce = n
			if p, err = tokens.VerifyDPoP(proof, check, v.replay); !errors.Is(err, tokens.ErrDPoPNonce) {
				break
			}
		}
		if errors.Is(err, tokens.ErrDPoPNonce) {
			return nil, ErrDPoPNonce
		}
	}
	if err != nil {
		return nil, err // wraps tokens.ErrDPoP, that is ErrInvalidDPoPProof
	}
	if p.JKT != c.JKT { // VerifyDPoP compared it; kept as a second lock
		return nil, fmt.Errorf("%w: the proof is not made with the key the token is bound to", ErrInvalidDPoPProof)
	}
	return c, nil
}

// errNoPublicURL: DPoP needs to know this server's own URL.
var errNoPublicURL = fmt.Errorf("%w: this resource server does not accept DPoP-bound tokens (no PublicURL is configured to check the proof's htu against)", ErrInvalidDPoPProof)

// requestURL is the URL a client addressed: PublicURL's scheme and host and
// the path as the client sent it (before any prefix stripping or rewriting).
func (v *Verifier) requestURL(r *http.Request) (string, error) {
	if v.cfg.PublicURL == "" {
		return "", errNoPublicURL
	}
	path := r.URL.EscapedPath()
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		path = u.EscapedPath()
	}
	return v.cfg.PublicURL + path, nil
}

// DPoPNonce returns the nonce clients must currently put in their proofs
// (empty when nonces are not required).
func (v *Verifier) DPoPNonce() string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.valid(v.cfg.Now())[0]
}

// nonceSource makes stateless server nonces: an HMAC of the current time
// window under a random key. The current and the previous window's nonces
// are accepted, so a nonce lives one to two windows.
type nonceSource struct {
	key    [32]byte
	window time.Duration
}

func newNonceSource() (*nonceSource, error) {
	n := &nonceSource{window: time.Minute}
	if _, err := rand.Read(n.key[:]); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *nonceSource) at(w int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(w))
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

// valid returns the current nonce, then the previous window's.
func (n *nonceSource) valid(now time.Time) []string {
	w := now.UnixNano() / int64(n.window)
	return []string{n.at(w), n.at(w - 1)}
}
