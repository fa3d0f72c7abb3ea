// Package httpapi is Mandate's HTTP transport: it parses OAuth requests,
// authenticates clients, calls the delegation core and renders its answers. It
// holds no business logic: each handler is parse → authenticate → core call →
// render.
//
// Invariants: request bodies are bounded; a parameter that may appear once and
// appears twice is invalid_request (RFC 6749 §3.2); only the form body is read,
// never the query string, so secrets and tokens never travel in URLs; every
// token, revocation and introspection response is Cache-Control: no-store; and
// an error never echoes a secret or a token.
package httpapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Paths of the endpoints, relative to the issuer URL.
const (
	PathMetadata   = "/.well-known/oauth-authorization-server"
	PathJWKS       = "/.well-known/jwks.json"
	PathToken      = "/oauth2/token"
	PathRevoke     = "/oauth2/revoke"
	PathIntrospect = "/oauth2/introspect"
	PathFeed       = "/oauth2/revocations"
	PathHealth     = "/healthz"
	PathReady      = "/readyz"
)

// MaxHeaderBytes is the header limit an http.Server serving this handler
// should set (serve does): 32 KiB holds two maximum-size tokens; beyond it
// the server answers 431 before any handler runs.
const MaxHeaderBytes = 32 << 10

// DefaultMaxBodyBytes bounds a form body (64 KiB: four maximum-size tokens and
// their parameters fit with room to spare).
const DefaultMaxBodyBytes = 64 << 10

// Options configures the transport.
type Options struct {
	// JWKS returns the current JSON Web Key Set document.
	JWKS func() []byte
	// Ready reports whether the store and keys are usable (for /readyz).
	Ready func() error
	// Logger receives request errors; nothing is logged when nil.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// RateLimit bounds each client's request rate (off when PerSecond is 0).
	RateLimit RateLimit
	// Now is the clock rate limits are measured by (time.Now when nil).
	Now func() time.Time
	// Observe, when set, is told about every answered request (metrics).
	Observe func(Observation)
	// TrustedProxies are the networks whose X-Forwarded-For is believed for
	// the client's address (in logs). Empty: the connection's own address,
	// whatever headers a client sends, so no one can forge what the logs say.
	TrustedProxies []*net.IPNet
}

type api struct {
	svc      *delegation.Service
	opts     Options
	metadata map[string]any
	log      *slog.Logger
	limits   *limiters // grants and introspection
	revLimit *limiters // revocation, the admin API and the feed: never shared with limits
	// unavailableLogged is when a 503 for an unreachable store was last
	// logged (Unix nanoseconds): an outage is logged once a second, not
	// once a request.
	unavailableLogged atomic.Int64
}

// New returns an echo server with every Mandate endpoint registered.
func New(svc *delegation.Service, opts Options) *echo.Echo {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{svc: svc, opts: opts, log: log, metadata: serviceMetadata(svc), limits: newLimiters(opts.RateLimit, opts.Now),
		revLimit: newLimiters(opts.RateLimit.revocationBudget(), opts.Now)}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = echo.ExtractIPDirect()
	if len(opts.TrustedProxies) > 0 {
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range opts.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}
	e.HTTPErrorHandler = a.handleEchoError
	if opts.Observe != nil {
		e.Use(a.observe)
	}
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))
	e.GET(PathMetadata, a.getMetadata)
	e.GET(PathJWKS, a.getJWKS)
	e.POST(PathToken, a.postToken)
	e.POST(PathRevoke, a.postRevoke)
	e.POST(PathIntrospect, a.postIntrospect)
	e.GET(PathFeed, a.getFeed)
	e.GET(PathHealth, func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET(PathReady, a.getReady)
	a.registerAdmin(e)
	return e
}

// Metadata returns the RFC 8414 authorization server metadata for issuer.
func Metadata(issuer string) map[string]any {
	base := strings.TrimSuffix(issuer, "/")
	authMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	algs := []string{"EdDSA", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}
	return map[string]any{
		"issuer":                                                   issuer,
		"token_endpoint":                                           base + PathToken,
		"jwks_uri":                                                 base + PathJWKS,
		"revocation_endpoint":                                      base + PathRevoke,
		"introspection_endpoint":                                   base + PathIntrospect,
		"revocation_feed_endpoint":                                 base + PathFeed,
		"grant_types_supported":                                    grantTypes(),
		"token_endpoint_auth_methods_supported":                    authMethods,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"response_types_supported":                                 []string{},
		"dpop_signing_alg_values_supported":                        algs,
		"token_endpoint_auth_signing_alg_values_supported":         algs,
		"revocation_endpoint_auth_signing_alg_values_supported":    algs,
		"introspection_endpoint_auth_signing_alg_values_supported": algs,
	}
}

// IDJAGGrantProfile is advertised in authorization_grant_profiles_supported
// when ID-JAG issuers are configured
// (draft-ietf-oauth-identity-assertion-authz-grant, metadata).
const IDJAGGrantProfile = "urn:ietf:params:oauth:grant-profile:id-jag"

// serviceMetadata is Metadata as svc is configured: the JWT bearer grant
// only when a workload or ID-JAG issuer is configured, and the ID-JAG
// grant profile when an ID-JAG issuer is.
func serviceMetadata(svc *delegation.Service) map[string]any {
	md := Metadata(svc.Issuer())
	if !svc.AcceptsJWTBearer() {
		md["grant_types_supported"] = slices.DeleteFunc(md["grant_types_supported"].([]string), func(g string) bool { return g == oauth.GrantJWTBearer })
	}
	if svc.AcceptsIDJAG() {
		md["authorization_grant_profiles_supported"] = []string{IDJAGGrantProfile}
	}
	return md
}

// grantTypes lists the grant_type values the core's grant registry serves.
func grantTypes() []string {
	var out []string
	for _, g := range delegation.Grants() {
		out = append(out, g.Type)
	}
	return out
}

func (a *api) getMetadata(c echo.Context) error {
	return c.JSON(http.StatusOK, a.metadata)
}

func (a *api) getJWKS(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", a.opts.JWKS())
}

func (a *api) getReady(c echo.Context) error {
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			a.log.Warn("not ready", slog.String("error", err.Error()))
			c.Response().Header().Set("Retry-After", RetryAfterUnavailable)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// RetryAfterUnavailable is the Retry-After (seconds) of a 503 sent while the
// store is unreachable (and of /readyz then).
const RetryAfterUnavailable = "1"

// Parameters that may appear at most once in a request (RFC 6749 §3.1, §3.2).
var singleParams = []string{
	"grant_type", "scope", "subject_token", "subject_token_type", "actor_token",
	"actor_token_type", "requested_token_type", "client_id", "client_secret",
	"token", "token_type_hint", "client_assertion", "client_assertion_type", "assertion",
}

func (a *api) postToken(c echo.Context) error {
	form, client, err := a.authenticatedForm(c)
	if err != nil {
		return a.writeError(c, err)
	}
	var auds []string
	for _, name := range []string{"audience", "resource"} {
		for _, v := range form[name] {
			if v != "" {
				auds = append(auds, v)
			}
		}
	}
	proofs := c.Request().Header.Values("DPoP")
	if len(proofs) > 1 {
		return a.writeError(c, oauth.New(oauth.CodeInvalidDPoPProof, "more than one DPoP header"))
	}
	var proof string
	if len(proofs) == 1 {
		proof = proofs[0]
	}
	resp, err := a.svc.Token(c.Request().Context(), client, delegation.TokenRequest{
		DPoP:               proof,
		DPoPURL:            a.metadata["token_endpoint"].(string),
		GrantType:          form.Get("grant_type"),
		Scope:              form.Get("scope"),
		Audiences:          auds,
		SubjectToken:       form.Get("subject_token"),
		SubjectTokenType:   form.Get("subject_token_type"),
		ActorToken:         form.Get("actor_token"),
		ActorTokenType:     form.Get("actor_token_type"),
		RequestedTokenType: form.Get("requested_token_type"),
		Assertion:          form.Get("assertion"),
	})
	if err != nil {
		return a.writeError(c, err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, resp)
}

func (a *api) postRevoke(c echo.Context) error {
	client, token, err := a.tokenParam(c)
	if err != nil {
		return a.writeError(c, err)
	}
	if err := a.svc.Revoke(c.Request().Context(), client, token); err != nil {
		return a.writeError(c, err)
	}
	noStore(c)
	return c.NoContent(http.StatusOK)
}

func (a *api) postIntrospect(c echo.Context) error {
	client, token, err := a.tokenParam(c)
	if err != nil {
		return a.writeError(c, err)
	}
	res, err := a.svc.Introspect(c.Request().Context(), client, token)
	if err != nil {
		return a.writeError(c, err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, res)
}

// getFeed serves the revocation feed: ?since=CURSOR&wait=SECONDS, with HTTP
// Basic client authentication (a GET has no body for client_secret_post).
func (a *api) getFeed(c echo.Context) error {
	q := c.QueryParams()
	for _, p := range []string{"since", "wait"} {
		if len(q[p]) > 1 {
			return a.writeError(c, oauth.New(oauth.CodeInvalidRequest, "parameter %q appears more than once", p))
		}
	}
	var wait time.Duration
	if w := q.Get("wait"); w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 {
			return a.writeError(c, oauth.New(oauth.CodeInvalidRequest, "wait must be a whole number of seconds"))
		}
		wait = time.Duration(min(n, 3600)) * time.Second
	}
	client, err := a.basicClient(c, func(r *delegation.Registration) error {
		if !r.CanIntrospect() {
			return oauth.New(oauth.CodeAccessDenied, "the revocation feed is for resource_server and admin clients")
		}
		return nil
	})
	if err != nil {
		return a.writeError(c, err)
	}
	feed, err := a.svc.RevocationFeed(c.Request().Context(), client, q.Get("since"), wait)
	if err != nil {
		return a.writeError(c, err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, feed)
}

// tokenParam authenticates a revocation or introspection request and returns
// its required "token" parameter.
func (a *api) tokenParam(c echo.Context) (*delegation.Registration, string, error) {
	form, client, err := a.authenticatedForm(c)
	if err != nil {
		return nil, "", err
	}
	token := form.Get("token")
	if token == "" {
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "token is required")
	}
	return client, token, nil
}

// authenticatedForm reads the form body, refuses repeated single parameters and
// authenticates the client.
func (a *api) authenticatedForm(c echo.Context) (url.Values, *delegation.Registration, error) {
	form, err := a.readForm(c.Request())
	if err != nil {
		return nil, nil, err
	}
	if c.Path() == PathToken {
		c.Set(ctxGrant, grantLabel(form.Get("grant_type")))
	}
	for _, p := range singleParams {
		if len(form[p]) > 1 {
			return nil, nil, oauth.New(oauth.CodeInvalidRequest, "parameter %q appears more than once", p)
		}
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		client, err := a.assertionClient(c, form)
		if err != nil {
			method := "private_key_jwt"
			if a.svc.IsWorkloadToken(form.Get("client_assertion")) {
				method = "workload_token"
			}
			a.log.Info("client authentication failed", slog.String("method", method), slog.String("client", jwt.Excerpt(form.Get("client_id"))), slog.String("remote", c.RealIP()))
			return nil, nil, err
		}
		return form, client, nil // admitted inside, before its jti was spent
	}
	if c.Path() == PathToken && form.Get("grant_type") == oauth.GrantJWTBearer && !sendsClientAuth(c.Request(), form) {
		// RFC 7523 §3.1: a workload issuer's token is the client's
		// authentication too (delegation.AuthenticateWorkload).
		client, err := a.svc.AuthenticateWorkload(c.Request().Context(), form.Get("assertion"), form.Get("client_id"),
			func(client *delegation.Registration) error { return a.admit(c, client) })
		if err != nil {
			return nil, nil, err
		}
		return form, client, nil
	}
	id, secret, err := clientCredentials(c.Request(), form)
	if err != nil {
		return nil, nil, err
	}
	client, err := a.svc.Authenticate(id, secret)
	if err != nil {
		a.log.Info("client authentication failed", slog.String("client", jwt.Excerpt(id)), slog.String("remote", c.RealIP()))
		return nil, nil, err
	}
	return form, client, a.admit(c, client)
}

// sendsClientAuth reports whether a request carries client credentials (an
// Authorization header or a client_secret; client assertions are decided
// before): a client_id alone authenticates nothing.
func sendsClientAuth(r *http.Request, form url.Values) bool {
	return len(r.Header.Values("Authorization")) > 0 || form.Has("client_secret")
}

// basicClient authenticates a GET by HTTP Basic (it has no body for the
// other methods), refuses a client that may not use the endpoint (may says
// why, or nil) and only then applies the client's rate limit: a client
// knocking on an endpoint it may not use does not spend the revocation
// budget its own revocations need.
func (a *api) basicClient(c echo.Context, may func(*delegation.Registration) error) (*delegation.Registration, error) {
	if c.Request().Header.Get("Authorization") == "" {
		return nil, oauth.New(oauth.CodeInvalidClient, "HTTP Basic client authentication is required")
	}
	id, secret, err := clientCredentials(c.Request(), url.Values{})
	if err != nil {
		return nil, err
	}
	client, err := a.svc.Authenticate(id, secret)
	if err != nil {
		a.log.Info("client authentication failed", slog.String("client", jwt.Excerpt(id)), slog.String("remote", c.RealIP()))
		return nil, err
	}
	if err := may(client); err != nil {
		return nil, err
	}
	return client, a.admit(c, client)
}

// admit applies an authenticated client's rate limit: the revocation
// class (revocation, the feed, the admin API) has a budget of its own.
func (a *api) admit(c echo.Context, client *delegation.Registration) error {
	l := a.limits
	if p := c.Path(); p == PathRevoke || p == PathFeed || strings.HasPrefix(p, "/admin/") {
		l = a.revLimit
	}
	if d := l.wait(client.ID); d > 0 {
		a.log.Info("rate limited", slog.String("client", client.ID))
		return errSlowDown(c, d)
	}
	return nil
}

// assertionClient authenticates a request by private_key_jwt (RFC 7523
// §2.2): client_assertion_type and client_assertion, and no other method.
func (a *api) assertionClient(c echo.Context, form url.Values) (*delegation.Registration, error) {
	if c.Request().Header.Get("Authorization") != "" || form.Has("client_secret") {
		return nil, oauth.New(oauth.CodeInvalidRequest, "use one client authentication method, not both")
	}
	if form.Get("client_assertion_type") != delegation.ClientAssertionType {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_assertion_type must be %s", delegation.ClientAssertionType)
	}
	if form.Get("client_assertion") == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "client_assertion is required with client_assertion_type")
	}
	endpoint := strings.TrimSuffix(a.svc.Issuer(), "/") + c.Request().URL.Path
	return a.svc.AuthenticateAssertion(c.Request().Context(), form.Get("client_assertion"), form.Get("client_id"), endpoint,
		func(client *delegation.Registration) error { return a.admit(c, client) })
}

// readForm reads an application/x-www-form-urlencoded body of bounded size.
func (a *api) readForm(r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "the request body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, oauth.Wrap(err, oauth.CodeInvalidRequest, "could not read the request body")
	}
	if int64(len(body)) > a.opts.MaxBodyBytes {
		return nil, oauth.New(oauth.CodeInvalidRequest, "request body larger than %d bytes", a.opts.MaxBodyBytes).WithStatus(http.StatusRequestEntityTooLarge)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, oauth.New(oauth.CodeInvalidRequest, "malformed form body")
	}
	return form, nil
}

// clientCredentials extracts client_secret_basic (id and secret form-urlencoded
// before Base64, RFC 6749 §2.3.1) or client_secret_post credentials. Using both
// methods at once is invalid_request; a malformed Authorization header, or none
// at all, is invalid_client.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, err error) {
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	if len(r.Header.Values("Authorization")) > 1 {
		// RFC 9110 §5.3: one field line; a proxy reading another one than we
		// do would see another client.
		return "", "", oauth.New(oauth.CodeInvalidRequest, "more than one Authorization header")
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		if formID == "" {
			return "", "", oauth.New(oauth.CodeInvalidClient, "client authentication is required")
		}
		return formID, formSecret, nil
	}
	scheme, rest, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", oauth.New(oauth.CodeInvalidClient, "only HTTP Basic client authentication is accepted in the Authorization header")
	}
	if formSecret != "" {
		return "", "", oauth.New(oauth.CodeInvalidRequest, "use one client authentication method, not both")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials")
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials")
	}
	if id, err = url.QueryUnescape(u); err != nil {
		return "", "", oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials")
	}
	if secret, err = url.QueryUnescape(p); err != nil {
		return "", "", oauth.New(oauth.CodeInvalidClient, "malformed Basic credentials")
	}
	if formID != "" && formID != id {
		return "", "", oauth.New(oauth.CodeInvalidRequest, "client_id in the body does not match the Authorization header")
	}
	return id, secret, nil
}

func noStore(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// writeError renders an OAuth error; invalid_client gets 401 and a
// WWW-Authenticate challenge (RFC 6749 §5.2). Internal causes are logged, never sent.
func (a *api) writeError(c echo.Context, err error) error {
	e := oauth.As(err)
	if errors.Is(err, store.ErrUnavailable) {
		// The store could not be reached: nothing was done, and nothing is
		// guessed (no "inactive", no empty feed page). Clients retry.
		now := time.Now().UnixNano()
		if last := a.unavailableLogged.Load(); now-last >= int64(time.Second) && a.unavailableLogged.CompareAndSwap(last, now) {
			a.log.Warn("store unavailable: answering 503", slog.String("path", c.Path()), slog.String("cause", err.Error()))
		}
		e = oauth.Wrap(err, oauth.CodeTemporarilyUnavailable, "the token store is unreachable, so nothing was done: retry in a moment")
		c.Response().Header().Set("Retry-After", RetryAfterUnavailable)
	}
	if e.Code == oauth.CodeServerError {
		attrs := []any{slog.String("path", c.Path())}
		if cause := e.Cause(); cause != nil {
			attrs = append(attrs, slog.String("cause", cause.Error()))
		}
		a.log.Error("internal error", attrs...)
	}
	c.Set(ctxCode, e.Code)
	noStore(c)
	if e.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="mandate"`)
	}
	return c.JSON(e.Status, e.Body())
}

// handleEchoError renders routing errors (404, 405) and recovered panics in the
// same JSON shape as OAuth errors.
func (a *api) handleEchoError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := "invalid_request"
		switch he.Code {
		case http.StatusNotFound:
			code = "not_found"
		case http.StatusMethodNotAllowed:
			code = "method_not_allowed"
		case http.StatusInternalServerError:
			code = oauth.CodeServerError
		}
		c.Set(ctxCode, code)
		_ = c.JSON(he.Code, oauth.Response{Error: code, ErrorDescription: http.StatusText(he.Code)})
		return
	}
	_ = a.writeError(c, oauth.Wrap(err, oauth.CodeServerError, "internal error"))
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
