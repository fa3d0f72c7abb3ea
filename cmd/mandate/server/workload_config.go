package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/tokens"
)

// trustDomainPattern is a SPIFFE trust domain name: lowercase letters,
// digits, dots, dashes and underscores (the SPIFFE ID specification).
var trustDomainPattern = regexp.MustCompile(`^[a-z0-9._-]{1,255}$`)

// validateKeys checks where an issuer's keys come from (key names it in
// messages) and makes its file paths the config file's.
func validateKeys(key, issuer string, ks *KeySource, base string) []error {
	var errs []error
	n := 0
	for _, set := range []bool{ks.JWKSFile != "", ks.JWKSURL != "", ks.Discovery} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		errs = append(errs, fmt.Errorf("config: %s: give exactly one of jwks_file, jwks_url and discovery: true", key))
	case ks.Discovery && issuer == "":
		errs = append(errs, fmt.Errorf("config: %s.discovery needs issuer (its OpenID configuration is read from the issuer's URL)", key))
	case ks.JWKSURL != "":
		if _, err := workload.NewRemoteKeys(workload.RemoteOptions{JWKSURL: ks.JWKSURL}); err != nil {
			errs = append(errs, fmt.Errorf("config: %s.jwks_url: %w", key, err))
		}
	case ks.Discovery:
		if _, err := workload.NewRemoteKeys(workload.RemoteOptions{Issuer: issuer, Discovery: true}); err != nil {
			errs = append(errs, fmt.Errorf("config: %s.issuer (discovery): %w", key, err))
		}
	}
	if ks.CAFile != "" && ks.JWKSFile != "" {
		errs = append(errs, fmt.Errorf("config: %s.ca_file is for fetching keys (jwks_url, discovery), not for a jwks_file", key))
	}
	for _, p := range []*string{&ks.JWKSFile, &ks.CAFile} {
		if *p != "" && base != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	return errs
}

// validateIssuers checks workload_issuers and id_jag_issuers (and, since it
// shares their key sources, completes trusted_issuers' paths).
func (c *Config) validateIssuers(base string) []error {
	var errs []error
	failf := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	registered := map[string]bool{}
	for _, cl := range c.Clients {
		registered[cl.ID] = true
	}
	for i := range c.WorkloadIssuers {
		wi := &c.WorkloadIssuers[i]
		key := fmt.Sprintf("workload_issuers[%d]", i)
		if wi.Issuer == "" && wi.TrustDomain == "" {
			failf("config: %s: give issuer (the iss of its tokens) or trust_domain (SPIFFE)", key)
		}
		if wi.Issuer != "" {
			if u, err := url.Parse(wi.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
				failf("config: %s.issuer %q must be the issuer's absolute URL, exactly as in its tokens' iss", key, wi.Issuer)
			} else if wi.Issuer == c.Issuer {
				failf("config: %s.issuer %q is Mandate's own issuer", key, wi.Issuer)
			}
		}
		if wi.TrustDomain != "" && !trustDomainPattern.MatchString(wi.TrustDomain) {
			failf("config: %s.trust_domain %q must be a SPIFFE trust domain name (lowercase letters, digits, . _ -), without spiffe://", key, wi.TrustDomain)
		}
		errs = append(errs, validateKeys(key, wi.Issuer, &wi.KeySource, base)...)
		if wi.MaxLifetime < 0 {
			failf("config: %s.max_lifetime must not be negative", key)
		}
		if len(wi.Rules) == 0 {
			failf("config: %s.rules is empty: no token of it could be mapped to an identity", key)
		}
		for j, r := range wi.Rules {
			rkey := fmt.Sprintf("%s.rules[%d]", key, j)
			if len(r.Match) == 0 {
				failf("config: %s.match is empty: a rule matches at least one claim, so a rule cannot hand its ceiling to every token of the issuer by omission", rkey)
			}
			if err := r.rule().Check(); err != nil {
				failf("config: %s: %v", rkey, err)
			}
			if r.Client != "" && !registered[r.Client] {
				failf("config: %s.client %q is not a registered client", rkey, r.Client)
			}
			for _, s := range r.Scopes {
				if p, err := chain.ParseScope(s); err != nil || len(p) != 1 {
					failf("config: %s.scopes: %q is not a single RFC 6749 scope token", rkey, s)
				}
			}
			for _, g := range r.Groups {
				if !clientIDPattern.MatchString(g) {
					failf("config: %s.groups: %q must be 1-128 characters of letters, digits and ._~:/@+-", rkey, g)
				}
			}
		}
	}
	for i := range c.IDJAGIssuers {
		ji := &c.IDJAGIssuers[i]
		key := fmt.Sprintf("id_jag_issuers[%d]", i)
		if u, err := url.Parse(ji.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
			failf("config: %s.issuer %q must be the IdP's absolute URL, exactly as in its ID-JAGs' iss", key, ji.Issuer)
		}
		errs = append(errs, validateKeys(key, ji.Issuer, &ji.KeySource, base)...)
		if ji.MaxLifetime < 0 {
			failf("config: %s.max_lifetime must not be negative", key)
		}
	}
	return errs
}

// namedByWorkloadRule reports whether a workload_issuers rule maps tokens
// to client id: such a client may have no secret or keys of its own.
func (c *Config) namedByWorkloadRule(id string) bool {
	for _, wi := range c.WorkloadIssuers {
		for _, r := range wi.Rules {
			if r.Client == id {
				return true
			}
		}
	}
	return false
}

// rule is the rule as the workload package holds it.
func (r WorkloadRuleConfig) rule() workload.Rule {
	return workload.Rule{Match: r.Match, Client: r.Client, Agent: r.Agent, Scopes: r.Scopes, Audiences: r.Audiences, Groups: r.Groups}
}

// keyResolver opens an issuer's key source: the JWKS file read now, or a
// remote key set fetched on first use (and cached, bounded, same-origin).
func keyResolver(key, issuer string, ks KeySource) (tokens.KeyResolver, error) {
	if ks.JWKSFile != "" {
		return readJWKS(ks.JWKSFile, key+".jwks_file")
	}
	o := workload.RemoteOptions{Issuer: issuer, Discovery: ks.Discovery, JWKSURL: ks.JWKSURL}
	if ks.CAFile != "" {
		pem, err := os.ReadFile(ks.CAFile)
		if err != nil {
			return nil, fmt.Errorf("config: %s.ca_file: %w", key, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: %s.ca_file %s holds no PEM certificate", key, ks.CAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		o.HTTPClient = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	keys, err := workload.NewRemoteKeys(o)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", key, err)
	}
	return keys, nil
}

// issuersConfig adds the workload and ID-JAG issuers to the core's
// configuration.
func (c *Config) issuersConfig(sc *delegation.Config) error {
	for i, wi := range c.WorkloadIssuers {
		key := fmt.Sprintf("workload_issuers[%d]", i)
		keys, err := keyResolver(key, wi.Issuer, wi.KeySource)
		if err != nil {
			return err
		}
		is := workload.Issuer{Issuer: wi.Issuer, TrustDomain: wi.TrustDomain, Audience: wi.Audience,
			MaxLifetime: wi.MaxLifetime, SingleUse: wi.SingleUse, Keys: keys}
		for _, r := range wi.Rules {
			is.Rules = append(is.Rules, r.rule())
		}
		sc.WorkloadIssuers = append(sc.WorkloadIssuers, is)
	}
	for i, ji := range c.IDJAGIssuers {
		key := fmt.Sprintf("id_jag_issuers[%d]", i)
		keys, err := keyResolver(key, ji.Issuer, ji.KeySource)
		if err != nil {
			return err
		}
		sc.IDJAGIssuers = append(sc.IDJAGIssuers, workload.IDJAGIssuer{Issuer: ji.Issuer, MaxLifetime: ji.MaxLifetime, Keys: keys})
	}
	return nil
}

// matchCase re-reads workload_issuers[].rules[].match from the config file
// with each claim name's case kept: viper folds map keys to lower case,
// and claims are named case-sensitively (RFC 7519 §4).
func (c *Config) matchCase(path string) error {
	if len(c.WorkloadIssuers) == 0 {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc struct {
		WorkloadIssuers []struct {
			Rules []struct {
				Match map[string]string `yaml:"match"`
			} `yaml:"rules"`
		} `yaml:"workload_issuers"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config %s: workload_issuers: %w", path, err)
	}
	if len(doc.WorkloadIssuers) != len(c.WorkloadIssuers) {
		return errors.New("config: workload_issuers: spell the key workload_issuers in lower case")
	}
	for i, wi := range doc.WorkloadIssuers {
		for j, r := range wi.Rules {
			if j < len(c.WorkloadIssuers[i].Rules) && len(r.Match) == len(c.WorkloadIssuers[i].Rules[j].Match) {
				c.WorkloadIssuers[i].Rules[j].Match = r.Match
			}
		}
	}
	return nil
}
