package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// ErrAssertion wraps every refusal of a workload assertion; the JWT bearer
// grant answers it with invalid_grant (RFC 7523 §3.1) and stores nothing.
var ErrAssertion = errors.New("invalid assertion")

// Leeway is how far a workload issuer's clock may run ahead of Mandate's
// (nbf, iat): the platform is another machine.
const Leeway = 30 * time.Second

// DefaultMaxLifetime bounds exp - iat when an issuer names no max_lifetime.
const DefaultMaxLifetime = time.Hour

// Issuer is one workload issuer (../../docs/design.md, workload_issuers):
// whose tokens, checked how, mapped by which rules.
type Issuer struct {
	// Issuer is the iss every token must carry; empty for a SPIFFE trust
	// domain, whose JWT-SVIDs may carry none.
	Issuer string
	// TrustDomain, for SPIFFE: every sub must be a SPIFFE ID in it
	// ("spiffe://<TrustDomain>/…").
	TrustDomain string
	// Audience must be among the token's audiences (Mandate's issuer, by
	// default, set by the configuration).
	Audience string
	// MaxLifetime bounds exp - iat (exp - now for a token without iat),
	// with Leeway.
	MaxLifetime time.Duration
	// SingleUse makes jti required; the grant accepts each once.
	SingleUse bool
	Keys      tokens.KeyResolver
	Rules     []Rule
}

// Assertion is a verified workload token and the identity it maps to.
type Assertion struct {
	Identity Identity
	// Issuer, Subject and JTI name the token for the audit trail (JTI may be
	// empty unless SingleUse); Expiry is when a single-use jti may be forgotten.
	Issuer, Subject, JTI string
	Expiry               time.Time
	// IssuedAt is its iat (zero when it has none).
	IssuedAt time.Time
	// KeyID names the issuer's key that signed it: a cached verification
	// holds only while the issuer still publishes that key.
	KeyID string
	// Claims is the whole payload, and Payload its JSON, for policy's context.
	Claims  map[string]any
	Payload []byte
}

// Lifetime is the longest exp - iat accepted: MaxLifetime, or
// DefaultMaxLifetime when it is not set.
func (is *Issuer) Lifetime() time.Duration {
	if is.MaxLifetime <= 0 {
		return DefaultMaxLifetime
	}
	return is.MaxLifetime
}

// Name names the issuer in messages: its URL or its trust domain.
func (is *Issuer) Name() string {
	if is.Issuer != "" {
		return is.Issuer
	}
	return "spiffe://" + is.TrustDomain
}

// Verify checks a workload token at now — signature by a key of the issuer
// (the alg the key fixes), typ absent or JWT, unambiguous JSON, iss (or the
// trust domain), aud, exp/nbf/iat with Leeway, the lifetime, jti when
// single-use — and maps it by the rules. Every refusal wraps ErrAssertion.
func (is *Issuer) Verify(assertion string, now time.Time) (*Assertion, error) {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrAssertion, fmt.Sprintf(format, a...))
	}
	payload, hdr, err := tokens.Verify(assertion, is.Keys, "")
	if err != nil {
		return nil, refuse("verification against the keys of %s failed: %v", is.Name(), err)
	}
	switch strings.ToLower(strings.TrimPrefix(strings.ToLower(hdr.Type), "application/")) {
	case "", "jwt":
	default:
		return nil, refuse("typ %q is not a workload token's (absent or JWT)", jwt.Excerpt(hdr.Type))
	}
	if err := jwt.CheckMembers(payload); err != nil {
		return nil, refuse("%v", err)
	}
	var reg jwt.Registered
	if err := json.Unmarshal(payload, &reg); err != nil {
		return nil, refuse("claims: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, refuse("claims are not a JSON object")
	}
	expect := chain.Expect{Issuer: is.Issuer, Audiences: []string{is.Audience}, Now: now, Leeway: Leeway}
	if err := expect.CheckRegistered(reg); err != nil {
		return nil, refuse("%v", err)
	}
	if is.Issuer == "" && reg.Issuer != "" {
		// A trust domain's entry takes JWT-SVIDs without iss; an iss
		// would be a claim no configuration vouches for.
		return nil, refuse("iss %q is not expected of trust domain %s's JWT-SVIDs (configure issuer too)", jwt.Excerpt(reg.Issuer), is.TrustDomain)
	}
	if is.TrustDomain != "" && !strings.HasPrefix(reg.Subject, "spiffe://"+is.TrustDomain+"/") {
		return nil, refuse("sub %q is not a SPIFFE ID of trust domain %s", jwt.Excerpt(reg.Subject), is.TrustDomain)
	}
	maxLife := is.Lifetime()
	from := now
	if !reg.IssuedAt.IsZero() {
		from = reg.IssuedAt.Time()
	}
	// Leeway: a platform may add a few seconds to the lifetime asked for
	// (Kubernetes' legacy 3607 s tokens).
	if life := reg.Expiry.Time().Sub(from); life > maxLife+Leeway {
		return nil, refuse("lives %s, longer than the %s its issuer's max_lifetime allows", life, maxLife)
	}
	if is.SingleUse && reg.ID == "" {
		return nil, refuse("has no jti, which a single-use issuer requires")
	}
	id, err := Map(is.Rules, claims)
	if err != nil {
		return nil, refuse("%v", err)
	}
	return &Assertion{Identity: id, Issuer: reg.Issuer, Subject: reg.Subject, JTI: reg.ID, Expiry: reg.Expiry.Time(), IssuedAt: iat(reg), KeyID: hdr.KeyID, Claims: claims, Payload: payload}, nil
}

// iat is a token's iat as a time, zero when absent.
func iat(reg jwt.Registered) time.Time {
	if reg.IssuedAt.IsZero() {
		return time.Time{}
	}
	return reg.IssuedAt.Time()
}
