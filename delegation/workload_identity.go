package delegation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Workload identity (docs/workload-identity.md): a platform's token — a
// Kubernetes service-account token, a SPIFFE JWT-SVID, a CI job's OIDC
// token — authenticates the workload it names, mapped by its issuer's rules
// to a registered client or a generated identity. It is the client
// authentication of the JWT bearer grant (grant_jwt_bearer.go) when no
// other is sent, and a client_assertion anywhere a client authenticates.

// MaxAssertionIssuerLifetime bounds the max_lifetime a workload or ID-JAG
// issuer may be configured with: an assertion is a short-lived credential.
const MaxAssertionIssuerLifetime = 24 * time.Hour

// workloadProof is how a registration was authenticated by a workload
// token: the token, what it verified to, and whether its single use was
// spent (a client assertion spends it at once; the grant, only when it
// issues, so a refused request stores nothing).
type workloadProof struct {
	raw       string
	issuer    *workload.Issuer
	assertion *workload.Assertion
	spent     bool
}

// agentRule is a rule that generates names: its template and ceiling.
type agentRule struct {
	issuer   string // the issuer's Name, for messages
	index    int
	template string
	rule     workload.Rule
}

// setupWorkload validates and indexes the workload and ID-JAG issuers: keys
// and issuer given, Mandate's own issuer refused, no issuer twice, rules
// that name registered clients (and set no ceiling of their own: the
// registration is it), and generated names that can be neither a
// registered client, nor inside a client's ephemeral namespace, nor made by
// two rules with different ceilings (so a name always has one ceiling).
func (s *Service) setupWorkload(cfg Config) error {
	s.workloadByIss = map[string]*workload.Issuer{}
	s.workloadByTD = map[string]*workload.Issuer{}
	tds := map[string]bool{}
	for i := range cfg.WorkloadIssuers {
		is := cfg.WorkloadIssuers[i]
		key := fmt.Sprintf("workload_issuers[%d]", i)
		switch {
		case is.Issuer == "" && is.TrustDomain == "":
			return fmt.Errorf("%s: issuer or trust_domain is required", key)
		case is.Keys == nil:
			return fmt.Errorf("%s (%s): keys are required", key, is.Name())
		case is.Issuer == cfg.Issuer:
			return fmt.Errorf("%s: %q is Mandate's own issuer", key, is.Issuer)
		case len(is.Rules) == 0:
			return fmt.Errorf("%s (%s): at least one rule is required", key, is.Name())
		}
		if is.Audience == "" {
			is.Audience = cfg.Issuer
		}
		switch {
		case is.Issuer != "" && is.Audience == is.Issuer:
			// A platform's tokens for itself (Kubernetes' API audience is
			// its issuer): every pod's automounted token would pass.
			return fmt.Errorf("%s: audience %q is the issuer's own: its tokens for itself would all be accepted; use Mandate's issuer (the default)", key, is.Audience)
		case is.MaxLifetime > MaxAssertionIssuerLifetime:
			return fmt.Errorf("%s: max_lifetime %s is longer than %s", key, is.MaxLifetime, MaxAssertionIssuerLifetime)
		case slices.ContainsFunc(cfg.IDJAGIssuers, func(j workload.IDJAGIssuer) bool { return j.Issuer == is.Issuer && is.Issuer != "" }):
			return fmt.Errorf("%s: %q is also an id_jag_issuers entry: a platform issuing workload tokens and an IdP issuing ID-JAGs are configured apart", key, is.Issuer)
		case slices.ContainsFunc(cfg.TrustedIssuers, func(ti TrustedIssuer) bool { return ti.Issuer == is.Issuer && is.Issuer != "" }):
			return fmt.Errorf("%s: %q is also a trusted issuer: its tokens would start chains for two kinds of subject", key, is.Issuer)
		}
		if is.TrustDomain != "" {
			if _, dup := tds[is.TrustDomain]; dup {
				return fmt.Errorf("%s: trust_domain %q listed twice", key, is.TrustDomain)
			}
			tds[is.TrustDomain] = true
		}
		if is.Issuer != "" {
			if _, dup := s.workloadByIss[is.Issuer]; dup {
				return fmt.Errorf("%s: issuer %q listed twice", key, is.Issuer)
			}
			s.workloadByIss[is.Issuer] = &is
		} else {
			s.workloadByTD[is.TrustDomain] = &is
		}
		for j, r := range is.Rules {
			rkey := fmt.Sprintf("%s.rules[%d]", key, j)
			if err := r.Check(); err != nil {
				return fmt.Errorf("%s: %w", rkey, err)
			}
			if r.Client != "" {
				c, ok := s.clients[r.Client]
				switch {
				case !ok:
					return fmt.Errorf("%s: client %q is not registered", rkey, r.Client)
				case len(r.Scopes)+len(r.Audiences)+len(r.Groups) > 0:
					return fmt.Errorf("%s: a rule naming client %q takes its scopes, audiences and groups from the registration; give them there", rkey, r.Client)
				case !c.Can(GrantNameJWTBearer) && !c.Can(GrantNameTokenExchange):
					return fmt.Errorf("%s: client %q may use neither the %s nor the %s grant, so its workload token would be of no use", rkey, r.Client, GrantNameJWTBearer, GrantNameTokenExchange)
				}
				continue
			}
			if slices.Contains(r.Audiences, cfg.Issuer) {
				return fmt.Errorf("%s: audience %q is Mandate's own issuer", rkey, cfg.Issuer)
			}
			for id, c := range s.clients {
				if workload.CanMake(r.Agent, id) {
					return fmt.Errorf("%s: agent %q could make %q, a registered client's id", rkey, r.Agent, id)
				}
				if c.Ephemeral != nil && workload.CanMakeUnder(r.Agent, id) {
					return fmt.Errorf("%s: agent %q could make a name in client %q's ephemeral namespace (%s/<name>)", rkey, r.Agent, id, id)
				}
			}
			for _, other := range s.agentRules {
				if !workload.Overlap(r.Agent, other.template) {
					continue
				}
				if other.issuer != key {
					// Two platforms making one name: whoever can create a
					// namespace in the weaker would be the stronger's agent.
					return fmt.Errorf("%s: agent %q and %s.rules[%d]'s %q could make the same name for two issuers' workloads: give each issuer its own prefix (k8s-prod/…, k8s-dev/…)", rkey, r.Agent, other.issuer, other.index, other.template)
				}
				if !sameCeiling(r, other.rule) {
					return fmt.Errorf("%s: agent %q and %s.rules[%d]'s %q could make the same name with different scopes, audiences or groups: give them distinct prefixes", rkey, r.Agent, other.issuer, other.index, other.template)
				}
			}
			s.agentRules = append(s.agentRules, agentRule{issuer: key, index: j, template: r.Agent, rule: r})
		}
	}
	named := map[string]bool{}
	for _, is := range cfg.WorkloadIssuers {
		for _, r := range is.Rules {
			named[r.Client] = true
		}
	}
	for id, c := range s.clients {
		if c.Secret == nil && c.Keys == nil && !named[id] {
			return fmt.Errorf("client %q: set a secret or keys (private_key_jwt), or name it in a workload issuer's rule", id)
		}
	}
	s.idjag = map[string]*workload.IDJAGIssuer{}
	for i := range cfg.IDJAGIssuers {
		is := cfg.IDJAGIssuers[i]
		key := fmt.Sprintf("id_jag_issuers[%d]", i)
		switch {
		case is.Issuer == "" || is.Keys == nil:
			return fmt.Errorf("%s: issuer and keys are required", key)
		case is.Issuer == cfg.Issuer:
			return fmt.Errorf("%s: %q is Mandate's own issuer", key, is.Issuer)
		}
		if _, dup := s.idjag[is.Issuer]; dup {
			return fmt.Errorf("%s: issuer %q listed twice", key, is.Issuer)
		}
		switch {
		case is.Audience != "" && is.Audience != cfg.Issuer:
			// draft-ietf-oauth-identity-assertion-authz-grant: an ID-JAG is
			// made for one authorization server, named by its issuer.
			return fmt.Errorf("%s: an ID-JAG's audience is Mandate's issuer %q, not %q", key, cfg.Issuer, is.Audience)
		case is.MaxLifetime > MaxAssertionIssuerLifetime:
			return fmt.Errorf("%s: max_lifetime %s is longer than %s", key, is.MaxLifetime, MaxAssertionIssuerLifetime)
		}
		is.Audience = cfg.Issuer
		s.idjag[is.Issuer] = &is
	}
	return nil
}

func sameCeiling(a, b workload.Rule) bool {
	return slices.Equal(a.Scopes, b.Scopes) && slices.Equal(a.Audiences, b.Audiences) && slices.Equal(a.Groups, b.Groups)
}

// AcceptsJWTBearer reports whether any workload or ID-JAG issuer is
// configured: the JWT bearer grant is advertised only then.
func (s *Service) AcceptsJWTBearer() bool {
	return len(s.workloadByIss)+len(s.workloadByTD)+len(s.idjag) > 0
}

// AcceptsIDJAG reports whether any ID-JAG issuer is configured (the
// metadata's authorization_grant_profiles_supported).
func (s *Service) AcceptsIDJAG() bool { return len(s.idjag) > 0 }

// IsWorkloadToken reports whether token claims to come from a configured
// workload issuer (unverified: for the transport's log only).
func (s *Service) IsWorkloadToken(token string) bool { return s.workloadIssuerOf(token) != nil }

// workloadIssuerOf picks the workload issuer an unverified token claims:
// by iss, else, for a SPIFFE trust domain, by its sub. Nothing is trusted
// yet; the issuer's keys decide.
func (s *Service) workloadIssuerOf(token string) *workload.Issuer {
	if len(s.workloadByIss)+len(s.workloadByTD) == 0 {
		return nil
	}
	u, err := jwt.Unverified(token)
	if err != nil {
		return nil
	}
	if is, ok := s.workloadByIss[u.Issuer]; ok {
		return is
	}
	if rest, ok := strings.CutPrefix(u.Subject, "spiffe://"); ok && u.Issuer == "" {
		// An entry keyed by trust domain alone takes JWT-SVIDs without
		// iss; one that has iss is keyed by it (issuer and trust_domain).
		td, _, _ := strings.Cut(rest, "/")
		if is, ok := s.workloadByTD[td]; ok {
			return is
		}
	}
	return nil
}

// generated is the registration of a generated workload identity: its
// rule's ceiling and groups, and the grants a workload uses (its root, and
// delegating from it).
func generated(name string, r workload.Rule) *Registration {
	return &Registration{ID: name, Scopes: r.Scopes, Audiences: r.Audiences, Groups: r.Groups,
		Grants: []string{GrantNameJWTBearer, GrantNameTokenExchange}, generatedName: true}
}

// generatedHolder is the registration of a generated identity named in a
// Mandate token (an actor's identity token): the rule whose template makes
// its name (one ceiling per name, checked at start).
func (s *Service) generatedHolder(name string) (*Registration, bool) {
	for _, r := range s.agentRules {
		if workload.CanMake(r.template, name) {
			return generated(name, r.rule), true
		}
	}
	return nil, false
}

// AuthenticateWorkload authenticates a JWT bearer grant request that sends
// no other client authentication: its assertion must be a token of a
// workload issuer, which names the client (a registered one, or a generated
// identity). clientID, when sent, must be that name. Every refusal is
// invalid_grant (RFC 7523 §3.1). admit (a rate limit) is asked once the
// token verifies.
func (s *Service) AuthenticateWorkload(ctx context.Context, assertion, clientID string, admit func(*Registration) error) (*Registration, error) {
	switch {
	case !s.AcceptsJWTBearer():
		return nil, oauth.New(oauth.CodeUnsupportedGrantType, "grant_type %q is not served: no workload or ID-JAG issuer is configured", oauth.GrantJWTBearer)
	case assertion == "":
		return nil, oauth.New(oauth.CodeInvalidRequest, "assertion is required (RFC 7523 §2.1)")
	case strings.EqualFold(unverifiedType(assertion), workload.IDJAGType):
		return nil, oauth.New(oauth.CodeInvalidClient, "an ID-JAG is redeemed by the client it was made for: authenticate the client")
	}
	return s.workloadClient(ctx, assertion, clientID, admit, oauth.CodeInvalidGrant, false)
}

// workloadClient verifies a workload token and returns the registration it
// names, refusing with code (invalid_grant for the grant, invalid_client
// for a client assertion). spend says whether a single-use token's jti is
// recorded now (client authentication) or left to the grant.
func (s *Service) workloadClient(ctx context.Context, token, clientID string, admit func(*Registration) error, code string, spend bool) (*Registration, error) {
	refuse := s.workloadRefusal(ctx, code)
	if v, ok := s.cachedWorkload(token); ok {
		return s.workloadRegistration(ctx, v.issuer, v.assertion, token, clientID, admit, code, spend)
	}
	is := s.workloadIssuerOf(token)
	if is == nil {
		u, err := jwt.Unverified(token)
		if err != nil {
			return refuse(workload.ErrAssertion, "the assertion is not a JWT (RFC 7523 §2.1): %v", err)
		}
		return refuse(workload.ErrAssertion, "the assertion's issuer %q is not a configured workload issuer", jwt.Excerpt(u.Issuer))
	}
	a, err := is.Verify(token, s.now())
	if err != nil {
		if f, ok := is.Keys.(interface{ Err() error }); ok && f.Err() != nil {
			// Its keys could not be fetched: say so, for the operator.
			s.log.LogAttrs(ctx, slog.LevelWarn, "workload issuer's keys could not be fetched", slog.String("issuer", is.Name()), slog.String("error", f.Err().Error()))
			return refuse(err, "%v (the issuer's keys could not be fetched just now)", err)
		}
		return refuse(err, "%v", err)
	}
	if !is.SingleUse {
		// A platform token is shown again at every request until it
		// rotates: what its signature and rules proved is kept until it
		// expires (single-use tokens are shown once).
		s.workloadSeen.Put(token, verifiedWorkload{is, a}, a.Expiry, s.now())
	}
	return s.workloadRegistration(ctx, is, a, token, clientID, admit, code, spend)
}

// workloadRefusal refuses a workload token with code (invalid_grant for
// the grant, invalid_client for a client assertion), logged without the
// token.
func (s *Service) workloadRefusal(ctx context.Context, code string) func(err error, format string, a ...any) (*Registration, error) {
	return func(err error, format string, a ...any) (*Registration, error) {
		e := oauth.Wrap(err, code, format, a...)
		s.log.LogAttrs(ctx, slog.LevelInfo, "workload token refused", slog.String("error", code), slog.String("description", bounded(e.Description)))
		return nil, e
	}
}

// verifiedWorkload is what workloadClient keeps of a verified platform
// token: its issuer and what the token proved.
type verifiedWorkload struct {
	issuer    *workload.Issuer
	assertion *workload.Assertion
}

// cachedWorkload is the verification of token kept by workloadClient, while
// its issuer still publishes the key that signed it.
func (s *Service) cachedWorkload(token string) (verifiedWorkload, bool) {
	v, ok := s.workloadSeen.Get(token, s.now())
	if !ok {
		return verifiedWorkload{}, false
	}
	if _, ok := v.issuer.Keys.ResolveKey(v.assertion.KeyID); !ok {
		return verifiedWorkload{}, false // the key left the issuer's set: verify again (and fail)
	}
	return v, true
}

// workloadRegistration is the registration a verified workload token names
// (refused with code as workloadClient is).
func (s *Service) workloadRegistration(ctx context.Context, is *workload.Issuer, a *workload.Assertion, token, clientID string, admit func(*Registration) error, code string, spend bool) (*Registration, error) {
	refuse := s.workloadRefusal(ctx, code)
	name := a.Identity.Name()
	var c *Registration
	if a.Identity.Client != "" {
		reg, ok := s.clients[name]
		if !ok { // checked at start; a second lock
			return refuse(workload.ErrAssertion, "client %q of the rule is not registered", name)
		}
		copied := *reg
		c = &copied
	} else {
		if s.registeredOrEphemeral(name) {
			// Checked at start for every name a template can make; a
			// second lock against a registration added since.
			return refuse(workload.ErrAssertion, "the generated name %q is a registered client or in an ephemeral namespace", name)
		}
		c = generated(name, is.Rules[a.Identity.Rule])
	}
	if clientID != "" && clientID != name {
		return refuse(workload.ErrAssertion, "the assertion names %q, not client_id %q", name, jwt.Excerpt(clientID))
	}
	if admit != nil {
		if err := admit(c); err != nil {
			return nil, err
		}
	}
	c.workload = &workloadProof{raw: token, issuer: is, assertion: a}
	if spend {
		if err := s.spendWorkload(ctx, c.workload); err != nil {
			return nil, spendRefusal(err, code)
		}
	}
	return c, nil
}

// errReplayed is the cause of refusing a single-use assertion used before.
var errReplayed = errors.New("single-use assertion replayed")

// spendWorkload records a single-use workload token's jti (a no-op for an
// issuer whose tokens are reused until they rotate).
func (s *Service) spendWorkload(ctx context.Context, p *workloadProof) error {
	if p.spent || !p.issuer.SingleUse {
		p.spent = true
		return nil
	}
	a := p.assertion
	if err := s.spendOnce(ctx, store.ReplayWorkload, p.issuer.Name(), a.JTI, a.IssuedAt, a.Expiry); err != nil {
		return err
	}
	p.spent = true
	return nil
}

// spendOnce records a single-use assertion's jti in the store, durably
// (shared by every replica on PostgreSQL), so it is refused wherever and
// whenever it comes again; only a recorded use spends it, so a store that
// cannot be reached burns nothing. A store without durable records leaves
// this process's memory, and then an assertion that could have been made
// before the process started (iat not Leeway past the start) could have
// been used before it, so it is refused (the maker makes a new one).
func (s *Service) spendOnce(ctx context.Context, kind, issuer, jti string, iat, exp time.Time) error {
	if s.once == nil {
		if iat.IsZero() || !iat.After(s.started.Add(workload.Leeway)) {
			return fmt.Errorf("%w: it was issued before this server started (or has no iat), so it could have been used already: make a new one", workload.ErrAssertion)
		}
		if s.assertionCache("\x00"+kind+" "+issuer).Seen(jti, exp, s.now()) {
			return fmt.Errorf("%w: jti %q was already used", errReplayed, jwt.Excerpt(jti))
		}
		return nil
	}
	first, err := s.once.RecordOnce(ctx, kind, onceKey(issuer, jti), exp)
	if err != nil {
		return oauth.Wrap(err, oauth.CodeServerError, "could not record a single-use value")
	}
	if !first {
		return fmt.Errorf("%w: jti %q was already used", errReplayed, jwt.Excerpt(jti))
	}
	return nil
}

// spendRefusal answers a failed spend with code, unless the store failed
// (its own answer: server_error, or 503 while it is unreachable).
func spendRefusal(err error, code string) error {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return err
	}
	return oauth.Wrap(err, code, "%v", err)
}

// assertionRef names an assertion for the audit trail: its jti, or the
// SHA-256 of the token when it has none.
func assertionRef(kind, iss, sub, jti, raw string) *store.AssertionRef {
	ref := &store.AssertionRef{Kind: kind, Issuer: iss, Subject: sub, JTI: jti}
	if jti == "" {
		sum := sha256.Sum256([]byte(raw))
		ref.SHA256 = hex.EncodeToString(sum[:])
	}
	return ref
}
