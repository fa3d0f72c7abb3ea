package delegation

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
)

// TypeAgent is the "typ" of an ephemeral agent's actor token: a short-lived
// JWT the agent signs with its own fresh key, carried in the header's jwk.
//
//	header: {"typ": "agent+jwt", "alg": "EdDSA"|"ES256"|..., "jwk": <the agent's public key>}
//	claims: {"iss": "<owner client id>", "sub": "<owner>/<name>",
//	         "aud": "<Mandate's issuer>", "iat": ..., "exp": ... (at most 10 minutes later), "jti": ...}
//
// It proves the agent holds the key; the token delegated to it is bound to
// that key (cnf.jkt), so only that agent can use it.
const TypeAgent = "agent+jwt"

// MaxAgentTokenLifetime bounds an ephemeral actor token's exp - iat.
const MaxAgentTokenLifetime = 10 * time.Minute

// Ephemeral lets a client delegate to agents that have no registration of
// their own, named "<client>/<name>"; Scopes and Audiences are the ceiling of
// what such an agent may hold, Groups its Cedar groups.
type Ephemeral struct {
	Scopes    []string
	Audiences []string
	Groups    []string
}

var agentName = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

// isEphemeralActorToken reports whether an actor token is an ephemeral
// agent's (by its header's typ), without trusting anything else in it.
func isEphemeralActorToken(tok string) bool {
	head, _, ok := strings.Cut(tok, ".")
	if !ok || len(head) > 4096 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	return json.Unmarshal(raw, &h) == nil && strings.EqualFold(h.Typ, TypeAgent)
}

// ephemeralActor checks an ephemeral agent's actor token presented by its
// owner c, and returns the agent as a holder (ceilinged by c's Ephemeral
// registration) and its key's thumbprint.
func (s *Service) ephemeralActor(c *Client, tok string, now time.Time) (*Client, string, error) {
	if c.Ephemeral == nil {
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "client %q may not delegate to ephemeral agents (no ephemeral: in its registration)", c.ID)
	}
	payload, jkt, err := tokens.VerifySelfSigned(tok, TypeAgent)
	if err != nil {
		return nil, "", oauth.Wrap(err, oauth.CodeInvalidRequest, "actor_token is not a valid ephemeral agent token: %v", err)
	}
	var cl struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud tokens.Audience `json:"aud"`
		Iat *float64        `json:"iat"`
		Exp *float64        `json:"exp"`
	}
	if err := json.Unmarshal(payload, &cl); err != nil || cl.Iat == nil || cl.Exp == nil {
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token needs iss, sub, aud, iat and exp")
	}
	name, inside := strings.CutPrefix(cl.Sub, c.ID+"/")
	switch {
	case cl.Iss != c.ID:
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token was made for another owner, not %q", c.ID)
	case !inside || !agentName.MatchString(name):
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral agent %q is outside client %q's namespace (%s/<name>, name of letters, digits and ._~-)", printable(cl.Sub), c.ID, c.ID)
	case s.clients[cl.Sub] != nil:
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "%q is a registered client, not an ephemeral agent", cl.Sub)
	case !cl.Aud.Contains(s.issuer):
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token's aud must include %q", s.issuer)
	}
	iat, exp := floatTime(*cl.Iat), floatTime(*cl.Exp)
	switch {
	case !now.Before(exp):
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token has expired")
	case iat.After(now.Add(ownLeeway)):
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token was issued in the future")
	case exp.Sub(iat) > MaxAgentTokenLifetime:
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token lives longer than %s", MaxAgentTokenLifetime)
	}
	return &Client{ID: cl.Sub, Scopes: c.Ephemeral.Scopes, Audiences: c.Ephemeral.Audiences, Groups: c.Ephemeral.Groups, ephemeral: true}, jkt, nil
}

func floatTime(f float64) time.Time {
	if f < 0 || f > 1e11 || math.IsNaN(f) {
		return time.Unix(0, 0)
	}
	return time.Unix(int64(f), 0)
}

// bindTo is the cnf of a token bound to a verified proof's key (nil for none).
func bindTo(p *tokens.DPoPProof) *tokens.Confirmation {
	if p == nil {
		return nil
	}
	return &tokens.Confirmation{JKT: p.JKT}
}

// tokenTypeOf is the token_type a token is used with.
func tokenTypeOf(c *tokens.Claims) string {
	if c.Cnf != nil {
		return "DPoP"
	}
	return "Bearer"
}
