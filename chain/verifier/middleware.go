package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mandate-auth/mandate/chain"
)

type ctxKey struct{}

// WithChain returns a context carrying a verified chain.
func WithChain(ctx context.Context, c *chain.Chain) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the chain the middleware verified for this request.
func FromContext(ctx context.Context) (*chain.Chain, bool) {
	c, ok := ctx.Value(ctxKey{}).(*chain.Chain)
	return c, ok
}

// ErrNoToken and errBadAuthorization are the two ways a request can lack a
// usable bearer token (RFC 6750 §3.1); Reject answers ErrNoToken with a bare
// challenge.
var (
	ErrNoToken          = errors.New("no bearer token")
	errBadAuthorization = errors.New("malformed Authorization header: use 'Bearer <token>'")
)

// BearerToken extracts the token of an "Authorization: Bearer" header (RFC
// 6750 §2.1). Tokens in query strings or form bodies are not accepted.
func BearerToken(r *http.Request) (string, error) {
	scheme, tok, err := authorization(r)
	if err != nil {
		return "", err
	}
	if scheme != "Bearer" {
		return "", ErrNoToken
	}
	return tok, nil
}

// authorization splits the Authorization header into its scheme (Bearer or
// DPoP, canonical case) and token.
func authorization(r *http.Request) (string, string, error) {
	if len(r.Header.Values("Authorization")) > 1 {
		return "", "", fmt.Errorf("%w: more than one Authorization header", errBadAuthorization)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		scheme = "Bearer"
	case strings.EqualFold(scheme, "DPoP"):
		scheme = "DPoP"
	default:
		return "", "", ErrNoToken
	}
	tok = strings.Trim(tok, " \t") // HTTP's own white space (RFC 9110 §5.6.3), as every SDK trims
	if !ok || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", "", errBadAuthorization
	}
	return scheme, tok, nil
}

// Middleware verifies the bearer token of every request and puts its *chain.Chain in
// the request context; a request without a valid token is answered with the
// RFC 6750 challenge and never reaches next.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Authenticate(r)
		if err != nil {
			v.Reject(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithChain(r.Context(), c)))
	})
}

// Authenticate extracts and verifies the request's token: a bearer token
// ("Authorization: Bearer"), or a DPoP-bound one ("Authorization: DPoP" with
// exactly one DPoP proof header for this request).
func (v *Verifier) Authenticate(r *http.Request) (*chain.Chain, error) {
	scheme, tok, err := authorization(r)
	if err != nil {
		return nil, err
	}
	if scheme == "Bearer" {
		return v.Verify(r.Context(), tok)
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, fmt.Errorf("%w: exactly one DPoP header is required (got %d)", ErrInvalidDPoPProof, len(proofs))
	}
	target, err := v.requestURL(r)
	if err != nil {
		return nil, err
	}
	return v.VerifyDPoP(r.Context(), tok, proofs[0], r.Method, target)
}

// Reject writes the response for a failed Authenticate or Verify:
//   - no token: 401 with a bare Bearer challenge (RFC 6750 §3.1);
//   - a malformed Authorization header: 400 invalid_request;
//   - stale revocation data: 503 with Retry-After, since the token may be
//     fine but this server cannot vouch for it now;
//   - anything else: 401 invalid_token with the reason.
func (v *Verifier) Reject(w http.ResponseWriter, err error) {
	status, code := http.StatusUnauthorized, "invalid_token"
	switch {
	case errors.Is(err, ErrNoToken):
		code = ""
	case errors.Is(err, errBadAuthorization):
		status, code = http.StatusBadRequest, "invalid_request"
	case errors.Is(err, ErrStaleRevocations):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable", "error_description": err.Error()})
		return
	case errors.Is(err, ErrDPoPNonce):
		w.Header().Set("DPoP-Nonce", v.DPoPNonce())
		w.Header().Set("WWW-Authenticate", v.dpopChallenge("use_dpop_nonce", err.Error()))
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "use_dpop_nonce", "error_description": err.Error()})
		return
	case errors.Is(err, ErrInvalidDPoPProof):
		w.Header().Set("WWW-Authenticate", v.dpopChallenge("invalid_dpop_proof", err.Error()))
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_dpop_proof", "error_description": err.Error()})
		return
	}
	w.Header().Set("WWW-Authenticate", v.challenge(code, err.Error(), ""))
	if status == http.StatusUnauthorized {
		// Both schemes are accepted, so both are challenged (RFC 9449 §7.1).
		w.Header().Add("WWW-Authenticate", v.dpopChallenge(code, err.Error()))
	}
	body := map[string]string{"error": code, "error_description": err.Error()}
	if code == "" {
		body = map[string]string{"error": "unauthorized", "error_description": "a bearer token is required"}
	}
	writeJSON(w, status, body)
}

// challenge builds the Bearer WWW-Authenticate value with realm, error,
// description, scope and the RFC 9728 resource_metadata parameter, as
// configured.
func (v *Verifier) challenge(code, description, scope string) string {
	return v.authenticate("Bearer", code, description, "scope", scope, "resource_metadata", v.cfg.ResourceMetadataURL)
}

// dpopAlgs are the proof algorithms a resource server accepts (RFC 9449 §7.1).
const dpopAlgs = "EdDSA ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512"

// dpopChallenge is the DPoP-scheme WWW-Authenticate value (RFC 9449 §7.1).
func (v *Verifier) dpopChallenge(code, description string) string {
	return v.authenticate("DPoP", code, description, "algs", dpopAlgs)
}

// authenticate builds one challenge of scheme: realm, then error and its
// description when code is set, then the extra name/value pairs whose
// value is set.
func (v *Verifier) authenticate(scheme, code, description string, extra ...string) string {
	var parts []string
	if v.cfg.Realm != "" {
		parts = append(parts, param("realm", v.cfg.Realm))
	}
	if code != "" {
		parts = append(parts, param("error", code))
		if description != "" {
			parts = append(parts, param("error_description", description))
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] != "" {
			parts = append(parts, param(extra[i], extra[i+1]))
		}
	}
	if len(parts) == 0 {
		return scheme
	}
	return scheme + " " + strings.Join(parts, ", ")
}

// param renders an auth-param as a quoted string, keeping only the
// characters RFC 6750 §3 allows in error_description and scope (printable
// ASCII except '"' and '\\'), so no escaping is ever needed.
func param(name, value string) string {
	var b strings.Builder
	for _, r := range value {
		if r >= 0x20 && r <= 0x7e && r != '"' && r != '\\' {
			b.WriteRune(r)
		}
	}
	return name + `="` + b.String() + `"`
}

// Check inspects a verified chain; when it refuses, it writes the answer and
// returns false. HasScopes (behind RequireScope) and chain/authz's per-call
// policy checks are Checks; Require wraps them for net/http, chain/echomw
// for echo.
type Check func(w http.ResponseWriter, c *chain.Chain) bool

// Require returns middleware that runs check on the chain Middleware put in
// the request context (a request without one gets the bare 401 challenge).
func (v *Verifier) Require(check Check) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				v.Reject(w, ErrNoToken)
				return
			}
			if check(w, c) {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// RequireScope returns middleware that lets a request through only when the
// verified chain in its context grants every scope; otherwise it answers 403
// insufficient_scope naming the missing scope (RFC 6750 §3.1). It must run
// after Verifier.Middleware.
func (v *Verifier) RequireScope(scopes ...string) func(http.Handler) http.Handler {
	return v.Require(v.HasScopes(scopes...))
}

// HasScopes is the Check behind RequireScope.
func (v *Verifier) HasScopes(scopes ...string) Check {
	return func(w http.ResponseWriter, c *chain.Chain) bool {
		if missing, bad := chain.Uncovered(c.Scopes, scopes); bad {
			v.RejectScope(w, missing)
			return false
		}
		return true
	}
}

// RejectScope writes the 403 insufficient_scope answer for a missing scope.
func (v *Verifier) RejectScope(w http.ResponseWriter, missing string) {
	v.RejectInsufficient(w, "the token does not grant "+missing, missing, map[string]any{"error": "insufficient_scope", "scope": missing})
}

// RejectInsufficient writes a 403 for a verified token that may not do what
// it asks (RFC 6750 §3.1 insufficient_scope): the challenge carries
// description and, when set, the scope needed; body is the JSON answer.
// RejectScope and chain/authz's policy denials use it.
func (v *Verifier) RejectInsufficient(w http.ResponseWriter, description, scope string, body any) {
	w.Header().Set("WWW-Authenticate", v.challenge("insufficient_scope", description, scope))
	writeJSON(w, http.StatusForbidden, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
