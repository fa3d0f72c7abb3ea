package delegation

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
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

// agentName is an ephemeral agent's name: 1-64 letters, digits and ._-,
// beginning with a letter or a digit and not ending with a dot, so no name
// is "." or "..", a hidden file, a flag (-x), a home directory (~) or a
// trailing-dot alias of another: a path, a Cedar entity id and a log line
// all read it as the same name.
var agentName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_-])?$`)

// isEphemeralActorToken reports whether an actor token is an ephemeral
// agent's (by its header's typ), without trusting anything else in it.
func isEphemeralActorToken(tok string) bool { return strings.EqualFold(unverifiedType(tok), TypeAgent) }

// unverifiedType reads a JWS's header typ without verifying anything, only
// to choose how the token will be verified ("" when unreadable).
func unverifiedType(tok string) string {
	head, _, ok := strings.Cut(tok, ".")
	if !ok || len(head) > 4096 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Typ
}

// ephemeralActor checks an ephemeral agent's actor token presented by its
// owner c, and returns the agent as a holder (ceilinged by c's Ephemeral
// registration) and its key's thumbprint.
func (s *Service) ephemeralActor(c *Registration, tok string, now time.Time) (*Registration, string, error) {
	if c.Ephemeral == nil {
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "client %q may not delegate to ephemeral agents (no ephemeral: in its registration)", c.ID)
	}
	payload, jkt, err := tokens.VerifySelfSigned(tok, TypeAgent)
	if err != nil {
		return nil, "", oauth.Wrap(err, oauth.CodeInvalidRequest, "actor_token is not a valid ephemeral agent token: %v", err)
	}
	var cl struct {
		jwt.Registered
	}
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, "", oauth.Wrap(err, oauth.CodeInvalidRequest, "ephemeral actor_token claims are malformed: %v", err)
	}
	if cl.IssuedAt.IsZero() || cl.Expiry.IsZero() {
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral actor_token needs iss, sub, aud, iat and exp")
	}
	name, inside := strings.CutPrefix(cl.Subject, c.ID+"/")
	switch {
	case cl.Issuer != c.ID:
		return nil, "", oauth.Wrap(errForeignToken, oauth.CodeInvalidRequest, "ephemeral actor_token was made for another owner, not %q", c.ID)
	case !inside || !agentName.MatchString(name):
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "ephemeral agent %q is outside client %q's namespace (%s/<name>: 1-64 letters, digits and ._-, starting with a letter or digit, not ending with a dot)", jwt.Excerpt(cl.Subject), c.ID, c.ID)
	case s.clients[cl.Subject] != nil:
		return nil, "", oauth.New(oauth.CodeInvalidRequest, "%q is a registered client, not an ephemeral agent", cl.Subject)
	}
	expect := chain.Expect{Issuer: c.ID, Audiences: []string{s.issuer}, Now: now, Leeway: ownLeeway,
		MaxLifetime: MaxAgentTokenLifetime, RequireIssuedAt: true}
	if err := expect.CheckRegistered(cl.Registered); err != nil {
		var ce *chain.ClaimError
		why := err.Error()
		if errors.As(err, &ce) {
			why = ce.Phrase()
			switch ce.Claim {
			case "aud":
				return nil, "", oauth.Wrap(err, oauth.CodeInvalidRequest, "ephemeral actor_token's aud must include %q", s.issuer)
			case "iat":
				why = "was issued in the future"
			}
		}
		return nil, "", oauth.Wrap(err, oauth.CodeInvalidRequest, "ephemeral actor_token %s", why)
	}
	return &Registration{ID: cl.Subject, Scopes: c.Ephemeral.Scopes, Audiences: c.Ephemeral.Audiences, Groups: c.Ephemeral.Groups, ephemeral: true}, jkt, nil
}

// bindTo is the cnf of a token bound to a verified proof's key (nil for none).
func bindTo(p *tokens.DPoPProof) *jwt.Confirmation {
	if p == nil {
		return nil
	}
	return &jwt.Confirmation{JKT: p.JKT}
}

// tokenTypeOf is the token_type a token is used with.
func tokenTypeOf(c *jwt.Claims) string {
	if c.Cnf != nil {
		return "DPoP"
	}
	return "Bearer"
}
