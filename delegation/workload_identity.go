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
		if is.Issuer != "" {
			if _, dup := s.workloadByIss[is.Issuer]; dup {
				return fmt.Errorf("%s: issuer %q listed twice", key, is.Issuer)
			}
			s.workloadByIss[is.Issuer] = &is
		} else {
			if _, dup := s.workloadByTD[is.TrustDomain]; dup {
				return fmt.Errorf("%s: trust_domain %q listed twice", key, is.TrustDomain)
			}
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
				if workload.Overlap(r.Agent, other.template) && !sameCeiling(r, other.rule) {
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
		if is.Audience == "" {
			is.Audience = cfg.Issuer
		}
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
	if rest, ok := strings.CutPrefix(u.Subject, "spiffe://"); ok {
		td, _, _ := strings.Cut(rest, "/")
		if is, ok := s.workloadByTD[td]; ok && (u.Issuer == "" || s.workloadByIss[u.Issuer] == nil) {
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
	if assertion == "" {
		return nil, oauth.New(oauth.CodeInvalidRequest, "assertion is required (RFC 7523 §2.1)")
	}
	return s.workloadClient(ctx, assertion, clientID, admit, oauth.CodeInvalidGrant, false)
}

// workloadClient verifies a workload token and returns the registration it
// names, refusing with code (invalid_grant for the grant, invalid_client
// for a client assertion). spend says whether a single-use token's jti is
// recorded now (client authentication) or left to the grant.
func (s *Service) workloadClient(ctx context.Context, token, clientID string, admit func(*Registration) error, code string, spend bool) (*Registration, error) {
	refuse := func(err error, format string, a ...any) (*Registration, error) {
		e := oauth.Wrap(err, code, format, a...)
		s.log.LogAttrs(ctx, slog.LevelInfo, "workload token refused", slog.String("error", code), slog.String("description", bounded(e.Description)))
		return nil, e
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
		return refuse(err, "%v", err)
	}
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

// spendOnce records a single-use assertion's jti, in this process's cache
// and in the store other replicas share. Without such a store, an
// assertion made before this process started could have been used before
// it, so it is refused (the assertion-maker makes a new one).
func (s *Service) spendOnce(ctx context.Context, kind, issuer, jti string, iat, exp time.Time) error {
	if s.replays == nil && (iat.IsZero() || iat.Before(s.started.Add(-workload.Leeway))) {
		return fmt.Errorf("%w: it was issued before this server started (or has no iat), so it could have been used already: make a new one", workload.ErrAssertion)
	}
	if s.assertionCache("\x00"+kind+" "+issuer).Seen(jti, exp, s.now()) {
		return fmt.Errorf("%w: jti %q was already used", errReplayed, jwt.Excerpt(jti))
	}
	first, err := s.firstUse(ctx, kind, exp, issuer, jti)
	if err != nil {
		return err
	}
	if !first {
		return fmt.Errorf("%w: jti %q was already used (at another replica)", errReplayed, jwt.Excerpt(jti))
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
