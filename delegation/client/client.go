// Package client is Mandate's Go client. An orchestrator uses it to mint task
// tokens, exchange (bearer or DPoP-bound), spawn ephemeral agents and revoke;
// an agent uses it to call resource servers with DPoP-protected requests; a
// resource server that calls a downstream API for its caller (an MCP server)
// uses it to exchange the caller's token for its own
// (ExchangeForDownstream), never forwarding it.
//
// It depends only on the wire vocabulary (delegation/oauth) and on package
// tokens, never on Mandate's server. A Client authenticates with
// client_secret_basic, or, made by NewWorkload, with the platform token of
// the workload it runs in (no secret at all); when it has a key (WithKey), every token it obtains
// for itself is bound to that key (RFC 9449), and exchanging a bound token
// proves possession of it. Secrets and tokens never appear in its errors.
package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Client talks to one Mandate server as one registered client, or as the
// workload a platform token names (NewWorkload).
type Client struct {
	id, secret string
	// workload, when set, authenticates instead of the secret: the
	// platform token, read at each request. learnt is the client id the
	// server names in the first token it issues (the workload's mapped
	// identity).
	workload  TokenSource
	learnt    atomic.Pointer[string]
	issuer    string
	tokenURL  string
	revokeURL string
	http      *http.Client
	key       *tokens.DPoPKey
	now       func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithKey binds the tokens the client obtains for itself to key (DPoP).
func WithKey(key *tokens.DPoPKey) Option { return func(c *Client) { c.key = key } }

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithClock sets the clock used for proofs and expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// New discovers the server's endpoints from issuer (RFC 8414) and returns a
// client authenticating as id with secret.
func New(ctx context.Context, issuer, id, secret string, opts ...Option) (*Client, error) {
	c := &Client{id: id, secret: secret, issuer: issuer, http: &http.Client{Timeout: 30 * time.Second}, now: time.Now}
	return c.discover(ctx, opts)
}

// sameOrigin reports whether endpoint has issuer's scheme and host: the
// credentials a client sends go to the server it discovered, nowhere else.
func sameOrigin(endpoint, issuer string) bool {
	e, err1 := url.Parse(endpoint)
	i, err2 := url.Parse(issuer)
	return err1 == nil && err2 == nil && e.Scheme == i.Scheme && strings.EqualFold(e.Host, i.Host)
}

// TokenSource returns a workload's current platform token (a Kubernetes
// projected service-account token, a SPIFFE JWT-SVID, a CI job's OIDC
// token).
type TokenSource func() (string, error)

// TokenFile reads the platform token from path at every call, so a token
// the platform rotates in place (a projected volume) is picked up. Errors
// name the path, never the contents.
func TokenFile(path string) TokenSource {
	return func() (string, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("mandate: workload token: %w", err)
		}
		tok := strings.TrimSpace(string(raw))
		if tok == "" {
			return "", fmt.Errorf("mandate: workload token file %s is empty", path)
		}
		return tok, nil
	}
}

// NewWorkload discovers the server and returns a client for the workload a
// platform token names, with no secret: Mint starts its chain with the JWT
// bearer grant (RFC 7523 §2.1), and every other request authenticates with
// the token as the client assertion (§2.2). Its ID is the identity the
// server maps the token to, known once it has minted a root or its identity
// token ("" before), and following a rotation of the token to another.
func NewWorkload(ctx context.Context, issuer string, source TokenSource, opts ...Option) (*Client, error) {
	if source == nil {
		return nil, errors.New("mandate: a workload client needs a token source (TokenFile)")
	}
	c := &Client{workload: source, issuer: issuer, http: &http.Client{Timeout: 30 * time.Second}, now: time.Now}
	return c.discover(ctx, opts)
}

// discover applies opts and reads the server's metadata (RFC 8414).
func (c *Client) discover(ctx context.Context, opts []Option) (*Client, error) {
	issuer := c.issuer
	for _, o := range opts {
		o(c)
	}
	// A redirect is answered, never followed: a token request re-posted
	// elsewhere would carry its secret, assertion or platform token there.
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mandate discovery: %w", err)
	}
	defer resp.Body.Close()
	var md struct {
		Issuer     string `json:"issuer"`
		Token      string `json:"token_endpoint"`
		Revocation string `json:"revocation_endpoint"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md) != nil {
		return nil, fmt.Errorf("mandate discovery: no metadata at %s (HTTP %d)", issuer, resp.StatusCode)
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("mandate discovery: metadata names issuer %q, not %q", md.Issuer, issuer)
	}
	for _, e := range []string{md.Token, md.Revocation} {
		if !sameOrigin(e, issuer) {
			return nil, fmt.Errorf("mandate discovery: endpoint %q is not on the issuer's origin", e)
		}
	}
	c.tokenURL, c.revokeURL = md.Token, md.Revocation
	return c, nil
}

// ID is the client's id; for a workload client, the identity the server
// mapped its token to at its last Mint or Identity ("" before the first).
func (c *Client) ID() string {
	if c.workload != nil {
		if id := c.learnt.Load(); id != nil {
			return *id
		}
	}
	return c.id
}

// Key is the client's DPoP key, or nil.
func (c *Client) Key() *tokens.DPoPKey { return c.key }

// Token is an access token with what its holder needs to use it.
type Token struct {
	Value     string
	Type      string // "Bearer" or "DPoP"
	Scope     string
	ExpiresAt time.Time
	// Key is the key a DPoP token is bound to, when this side holds it (the
	// holder's own tokens); nil for bearer tokens and for tokens handed on.
	Key *tokens.DPoPKey
	now func() time.Time // the clock proofs are dated by (time.Now when nil)
}

// Bound reports whether the token is bound to a key (DPoP).
func (t *Token) Bound() bool { return t.Type == "DPoP" }

// Adopt wraps a token this client was given by another (a delegation to it)
// with the client's key, so it can use and exchange it.
func (c *Client) Adopt(value string) *Token { return adopt(value, c.key, c.now) }

// adopt wraps a token handed over as a string; a bound one gets key.
func adopt(value string, key *tokens.DPoPKey, now func() time.Time) *Token {
	t := &Token{Value: value, Type: "Bearer", now: now}
	if claims, err := jwt.Unverified(value); err == nil {
		t.Scope, t.ExpiresAt = claims.Scope, claims.Expiry.Time()
		if claims.Cnf != nil {
			t.Type, t.Key = "DPoP", key
		}
	}
	return t
}

// Mint gets a root token for the client itself (client_credentials); scope
// empty means everything it is registered for.
func (c *Client) Mint(ctx context.Context, scope string, audiences ...string) (*Token, error) {
	form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	if c.workload != nil {
		// The platform token is the grant and the authentication at once.
		form.Set("grant_type", oauth.GrantJWTBearer)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	for _, a := range audiences {
		form.Add("audience", a)
	}
	return c.own(c.token(ctx, form, c.key, c.key))
}

// own notes, for a workload client, the holder of a token it got for
// itself (a root, its identity token): the identity its platform token maps
// to, which follows the token file when the platform rotates it to another.
func (c *Client) own(t *Token, err error) (*Token, error) {
	if err == nil && c.workload != nil {
		if claims, e := jwt.Unverified(t.Value); e == nil && claims.ClientID != "" {
			id := claims.ClientID
			c.learnt.Store(&id)
		}
	}
	return t, err
}

// RedeemIDJAG redeems an enterprise IdP's identity assertion authorization
// grant (ID-JAG, typ oauth-id-jag+jwt) made for this client: a root on
// behalf of the user it names (its sub), held by this client, with scope
// within the ID-JAG's and the registration's ("" for all of both).
func (c *Client) RedeemIDJAG(ctx context.Context, idjag, scope string, audiences ...string) (*Token, error) {
	form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {idjag}}
	if scope != "" {
		form.Set("scope", scope)
	}
	for _, a := range audiences {
		form.Add("audience", a)
	}
	return c.token(ctx, form, c.key, c.key)
}

// Identity gets the client's identity token (client_credentials with
// audience = the issuer): no scope, Mandate's audience alone, a few minutes.
// It is what the client hands to whoever delegates to it, as the
// actor_token naming it; useless at every resource server. When the client
// has a DPoP key, the token is bound to it, and so are the tokens delegated
// with it.
func (c *Client) Identity(ctx context.Context) (*Token, error) {
	form := url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {c.issuer}}
	return c.own(c.token(ctx, form, c.key, c.key))
}

// ExchangeOptions narrow an exchange. Actor is the actor_token naming the new
// holder: a registered agent's identity token (its Identity), or an
// ephemeral agent's (Agent.ActorToken); empty keeps the token with this
// client. A token with scopes is refused as an actor token unless it is
// bound to the actor's key.
type ExchangeOptions struct {
	Actor     string
	Scope     string
	Audiences []string
}

// Exchange trades subject for a narrower child (RFC 8693). A bound subject
// is exchanged with a proof of its key.
func (c *Client) Exchange(ctx context.Context, subject *Token, o ExchangeOptions) (*Token, error) {
	form := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subject.Value},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	if o.Actor != "" {
		form.Set("actor_token", o.Actor)
		form.Set("actor_token_type", oauth.TokenTypeJWT)
	}
	if o.Scope != "" {
		form.Set("scope", o.Scope)
	}
	for _, a := range o.Audiences {
		form.Add("audience", a)
	}
	proofKey := subject.Key
	if proofKey == nil {
		proofKey = c.key
	}
	var childKey *tokens.DPoPKey
	if o.Actor == "" || holderOf(o.Actor) == c.ID() {
		childKey = proofKey // the holder stays: the child is bound to the same key
	}
	return c.token(ctx, form, proofKey, childKey)
}

// ExchangeForDownstream is the audience exchange, for a resource server (an
// MCP server, say) registered with serves: it trades received, a token a
// caller sent to it (for an audience it serves, verified by it on the way
// in), for a token of its own to call the downstream API audience on the
// caller's behalf, instead of forwarding the caller's token. The new token
// keeps the caller's subject, adds this client to its actor chain and
// descends from received (revoking it revokes the new one); scope narrows it
// further ("" for everything received grants within this client's
// registration). No proof of received's key is needed; with a key
// (WithKey) this client proves its own, and the new token is bound to it —
// as it must be when received is bound.
func (c *Client) ExchangeForDownstream(ctx context.Context, received, audience, scope string) (*Token, error) {
	if audience == "" {
		return nil, errors.New("mandate: an audience exchange names the downstream API (audience)")
	}
	form := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {received},
		"subject_token_type": {oauth.TokenTypeAccessToken},
		"audience":           {audience},
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	return c.token(ctx, form, c.key, c.key)
}

// holderOf is the holder an actor token names, read without verifying (only
// to know whether the child stays with this client; the server decides).
func holderOf(actor string) string {
	claims, err := jwt.Unverified(actor)
	if err != nil {
		return ""
	}
	return claims.ClientID
}

// DelegateToAgent hands subject on to an ephemeral agent: the child is held
// by the agent's name and bound to its key, which only the agent has.
func (c *Client) DelegateToAgent(ctx context.Context, subject *Token, a *Agent, scope string, audiences ...string) (*Token, error) {
	actor, err := a.ActorToken(c.issuer, 2*time.Minute, c.now())
	if err != nil {
		return nil, err
	}
	t, err := c.Exchange(ctx, subject, ExchangeOptions{Actor: actor, Scope: scope, Audiences: audiences})
	if err != nil {
		return nil, err
	}
	t.Key = a.Key
	return t, nil
}

// token posts a token request, proving proofKey when set, and returns the
// token bound to childKey when the server bound it.
func (c *Client) token(ctx context.Context, form url.Values, proofKey, childKey *tokens.DPoPKey) (*Token, error) {
	req, err := c.post(ctx, c.tokenURL, form)
	if err != nil {
		return nil, err
	}
	if proofKey != nil {
		p, err := proofKey.Proof(http.MethodPost, c.tokenURL, "", "", c.now())
		if err != nil {
			return nil, err
		}
		req.Header.Set("DPoP", p)
	}
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := c.do(req, &out); err != nil {
		return nil, err
	}
	t := &Token{Value: out.AccessToken, Type: out.TokenType, Scope: out.Scope,
		ExpiresAt: c.now().Add(time.Duration(out.ExpiresIn) * time.Second), now: c.now}

	if t.Bound() {
		t.Key = childKey
	}
	return t, nil
}

// Revoke revokes a token this client holds, or one delegated from such a
// token, and with it everything delegated from it (RFC 7009).
func (c *Client) Revoke(ctx context.Context, token string) error {
	req, err := c.post(ctx, c.revokeURL, url.Values{"token": {token}})
	if err != nil {
		return err
	}
	return c.do(req, nil)
}

// post builds an authenticated form POST: HTTP Basic with the secret, or,
// for a workload client, the platform token — as the JWT bearer grant's
// assertion (no other authentication, RFC 7523 §3.1) or else as the
// client assertion (§2.2).
func (c *Client) post(ctx context.Context, endpoint string, form url.Values) (*http.Request, error) {
	if c.workload != nil {
		tok, err := c.workload()
		if err != nil {
			return nil, err
		}
		if form.Get("grant_type") == oauth.GrantJWTBearer && !form.Has("assertion") {
			form.Set("assertion", tok)
		} else {
			form.Set("client_assertion_type", ClientAssertionType)
			form.Set("client_assertion", tok)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.workload == nil {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	return req, nil
}

// ClientAssertionType is the client_assertion_type of a JWT used as client
// authentication (RFC 7523 §2.2): a workload client's platform token.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// do sends a request to Mandate; a refusal comes back as an *oauth.Error.
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e oauth.Response
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			oe := oauth.New(e.Error, "%s", e.ErrorDescription)
			oe.Status = resp.StatusCode
			return oe
		}
		return fmt.Errorf("mandate: HTTP %d", resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// Agent is an ephemeral agent: a name in its owner's namespace and a fresh
// key, with no registration of its own. Give the agent its *Agent (or at
// least Key) and the token delegated to it; nobody else can use that token.
type Agent struct {
	Name  string
	Key   *tokens.DPoPKey
	owner string
	now   func() time.Time // the spawning client's clock; time.Now when nil
}

// Adopt wraps a token delegated to the agent with the agent's key, for an
// agent that received its token as a string (say, in another process that
// was handed Name, Key and the token).
func (a *Agent) Adopt(value string) *Token { return adopt(value, a.Key, a.now) }

// SpawnAgent makes an ephemeral agent named "<client id>/<name>" with a fresh
// Ed25519 key.
func (c *Client) SpawnAgent(name string) (*Agent, error) {
	k, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
	if err != nil {
		return nil, err
	}
	return &Agent{Name: c.id + "/" + name, Key: k, owner: c.id, now: c.now}, nil
}

// ActorToken is the agent's self-signed actor token ("agent+jwt", see
// docs/dpop.md) for an exchange at issuer, valid for ttl.
func (a *Agent) ActorToken(issuer string, ttl time.Duration, now time.Time) (string, error) {
	var jti [12]byte
	if _, err := randRead(jti[:]); err != nil {
		return "", err
	}
	return a.Key.SignJWT("agent+jwt", map[string]any{
		"iss": a.owner, "sub": a.Name, "aud": issuer, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
	})
}

// clock is the time proofs made for t are dated by.
func (t *Token) clock() time.Time {
	if t.now == nil {
		return time.Now()
	}
	return t.now()
}

// Authorize sets a request's credentials: "Authorization: Bearer" for a
// bearer token; for a bound one, "Authorization: DPoP" and a fresh proof for
// this method and URL (with the server's nonce when it asked for one).
func (t *Token) Authorize(req *http.Request, nonce string) error {
	if !t.Bound() {
		req.Header.Set("Authorization", "Bearer "+t.Value)
		return nil
	}
	if t.Key == nil {
		return errors.New("mandate: this DPoP-bound token's key is not here (adopt it with the holder's client)")
	}
	u := *req.URL
	u.RawQuery, u.Fragment, u.User = "", "", nil
	p, err := t.Key.Proof(req.Method, u.String(), t.Value, nonce, t.clock())
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "DPoP "+t.Value)
	req.Header.Set("DPoP", p)
	return nil
}

// Do sends req to a resource server with t; when the server answers
// use_dpop_nonce, it retries once with the nonce it sent (a request with a
// body needs GetBody set, as http.NewRequest does for common bodies).
// Redirects are returned, not followed: following one would carry the token
// (and a proof) to wherever the server pointed.
func Do(hc *http.Client, t *Token, req *http.Request) (*http.Response, error) {
	noRedirects := *hc
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc = &noRedirects
	if err := t.Authorize(req, ""); err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("DPoP-Nonce") == "" || !t.Bound() {
		return resp, err
	}
	nonce := resp.Header.Get("DPoP-Nonce")
	resp.Body.Close()
	retry := req.Clone(req.Context())
	if req.Body != nil {
		if req.GetBody == nil {
			return nil, errors.New("mandate: cannot resend the request body for the DPoP nonce")
		}
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	if err := t.Authorize(retry, nonce); err != nil {
		return nil, err
	}
	return hc.Do(retry)
}
