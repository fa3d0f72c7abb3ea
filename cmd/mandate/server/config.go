// Package server is Mandate's composition root: it turns a validated
// configuration into a running Mandate — the store, the signing keys (sealed
// under the KEK when one is set), the policy engine and its watch, the
// delegation core, its HTTP transport, metrics and garbage collection — and
// is the one place that does. `mandate serve`, `demo` and `bench` start the
// server through Start, and so does the test harness
// (delegation/delegationtest), so every test runs the production wiring.
//
// It also owns the configuration: its shape (YAML file, MANDATE_*
// environment, flags, read with viper), its validation (every key named with
// its fix in the error), and the limits that depend on each other
// (limits.go).
package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/tokens"
)

// Config is the whole server configuration (README.md, "Configuration reference").
type Config struct {
	Issuer         string                `mapstructure:"issuer"`
	Listen         string                `mapstructure:"listen"`
	DataDir        string                `mapstructure:"data_dir"`
	Signing        SigningConfig         `mapstructure:"signing"`
	Tokens         TokensConfig          `mapstructure:"tokens"`
	Policy         PolicyConfig          `mapstructure:"policy"`
	Deviation      DeviationConfig       `mapstructure:"deviation"`
	Audit          AuditConfig           `mapstructure:"audit"`
	RateLimit      RateLimitConfig       `mapstructure:"rate_limit"`
	HTTP           HTTPConfig            `mapstructure:"http"`
	Cache          CacheConfig           `mapstructure:"cache"`
	Log            LogConfig             `mapstructure:"log"`
	Clients        []ClientConfig        `mapstructure:"clients"`
	TrustedIssuers []TrustedIssuerConfig `mapstructure:"trusted_issuers"`
}

// LogConfig shapes serve's log: JSON lines by default (what a log pipeline
// reads), text for a person at a terminal.
type LogConfig struct {
	// Format is "json" (the default, also when empty) or "text".
	Format string `mapstructure:"format"`
	// Level is the least severe level written: debug, info (the default,
	// also when empty), warn or error.
	Level string `mapstructure:"level"`
}

// LogLevel is the slog level log.level names (validated by Load).
func (l LogConfig) LogLevel() slog.Level {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level))
	return lv
}

// CacheConfig bounds the cache of tokens verified at the token endpoint.
type CacheConfig struct {
	// MaxBytes is its memory bound in bytes (tokens.DefaultCacheBytes when 0).
	MaxBytes int64 `mapstructure:"max_bytes"`
}

// HTTPConfig is about the listener's network.
type HTTPConfig struct {
	// TrustedProxies are the CIDRs (or single addresses) of the reverse
	// proxies whose X-Forwarded-For is believed; empty: none is, and logs
	// show the connection's own address.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// trustedProxies parses http.trusted_proxies.
func (h HTTPConfig) trustedProxies() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range h.TrustedProxies {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("config: http.trusted_proxies: %q is not a CIDR (such as 10.0.0.0/8) or an address", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// RateLimitConfig bounds each client's request rate (token bucket per
// client id); per_second 0 turns limiting off.
type RateLimitConfig struct {
	PerSecond float64 `mapstructure:"per_second"`
	Burst     int     `mapstructure:"burst"`
	// RevocationPerSecond and RevocationBurst budget revocation, the feed
	// and the admin API apart from the grants (0: ten times the grants').
	RevocationPerSecond float64 `mapstructure:"revocation_per_second"`
	RevocationBurst     int     `mapstructure:"revocation_burst"`
}

// SigningConfig chooses the token signing algorithm.
type SigningConfig struct {
	Alg string `mapstructure:"alg"`
	// KEK (base64, best from MANDATE_SIGNING_KEK) or KEKFile (a file only
	// Mandate's user can read, holding the base64 key) is the 32-byte
	// key-encryption key signing keys rest under; neither: stored in clear.
	KEK     string `mapstructure:"kek"`
	KEKFile string `mapstructure:"kek_file"`
}

// kek decodes the configured key-encryption key (nil when none is set).
func (s SigningConfig) kek() ([]byte, error) {
	text, key := s.KEK, "signing.kek"
	if s.KEKFile != "" {
		st, err := os.Stat(s.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("config: signing.kek_file: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("config: signing.kek_file %s is %v: others may read it; run chmod 600 %s", s.KEKFile, st.Mode().Perm(), s.KEKFile)
		}
		raw, err := os.ReadFile(s.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("config: signing.kek_file: %w", err)
		}
		text, key = strings.TrimSpace(string(raw)), "signing.kek_file"
	}
	if text == "" {
		return nil, nil
	}
	kek, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		kek, err = base64.RawURLEncoding.DecodeString(text)
	}
	if err != nil || len(kek) != tokens.KEKSize {
		return nil, fmt.Errorf("config: %s must be %d random bytes in base64 (head -c 32 /dev/urandom | base64)", key, tokens.KEKSize)
	}
	return kek, nil
}

// TokensConfig bounds token lifetimes and chain depth.
type TokensConfig struct {
	RootTTL      time.Duration `mapstructure:"root_ttl"`
	DelegatedTTL time.Duration `mapstructure:"delegated_ttl"`
	MaxDepth     int           `mapstructure:"max_depth"`
	Retention    time.Duration `mapstructure:"retention"`
}

// PolicyConfig points at a directory of Cedar policies.
type PolicyConfig struct {
	Dir string `mapstructure:"dir"`
}

// DeviationConfig configures automatic revocation of misbehaving agents.
type DeviationConfig struct {
	MaxDenials int           `mapstructure:"max_denials"`
	Window     time.Duration `mapstructure:"window"`
	// Count lists the kinds of refusal that count (of
	// delegation.DeviationKinds; delegation.DefaultDeviationKinds, all but
	// depth, when empty).
	Count []string `mapstructure:"count"`
}

// AuditConfig sets how long the audit trail keeps its records.
type AuditConfig struct {
	Retention time.Duration `mapstructure:"retention"`
}

// ClientConfig registers one client.
type ClientConfig struct {
	ID         string `mapstructure:"id"`
	SecretHash string `mapstructure:"secret_hash"`
	Secret     string `mapstructure:"secret"`
	// JWKSFile registers the client's public keys for private_key_jwt (RFC
	// 7523) instead of a secret.
	JWKSFile  string   `mapstructure:"jwks_file"`
	Grants    []string `mapstructure:"grants"`
	Scopes    []string `mapstructure:"scopes"`
	Audiences []string `mapstructure:"audiences"`
	Groups    []string `mapstructure:"groups"`
	Role      string   `mapstructure:"role"`
	// Ephemeral lets the client delegate to unregistered agents named
	// "<id>/<name>" that prove a key of their own (docs/dpop.md).
	Ephemeral *EphemeralConfig `mapstructure:"ephemeral"`
}

// EphemeralConfig is the ceiling and the groups of a client's ephemeral agents.
type EphemeralConfig struct {
	Scopes    []string `mapstructure:"scopes"`
	Audiences []string `mapstructure:"audiences"`
	Groups    []string `mapstructure:"groups"`
}

// TrustedIssuerConfig registers an external identity provider.
type TrustedIssuerConfig struct {
	Issuer   string `mapstructure:"issuer"`
	JWKSFile string `mapstructure:"jwks_file"`
	JWKSURL  string `mapstructure:"jwks_url"`
	Audience string `mapstructure:"audience"`
}

// defaults are every scalar key with its default; registering them is also what
// lets viper map MANDATE_* environment variables onto them.
var defaults = map[string]any{
	"issuer":                           "",
	"listen":                           "127.0.0.1:8080",
	"data_dir":                         "./mandate-data",
	"signing.alg":                      tokens.AlgEdDSA,
	"signing.kek":                      "",
	"signing.kek_file":                 "",
	"tokens.root_ttl":                  "15m",
	"tokens.delegated_ttl":             "5m",
	"tokens.max_depth":                 4,
	"tokens.retention":                 "24h",
	"policy.dir":                       "",
	"deviation.max_denials":            0,
	"deviation.window":                 "0s",
	"audit.retention":                  "2160h",
	"rate_limit.per_second":            100,
	"rate_limit.burst":                 200,
	"rate_limit.revocation_per_second": 0,
	"cache.max_bytes":                  0,
	"log.format":                       "json",
	"log.level":                        "info",
	"rate_limit.revocation_burst":      0,
}

// flagKeys maps serve's flags onto config keys.
var flagKeys = map[string]string{"listen": "listen", "data-dir": "data_dir", "issuer": "issuer"}

// Load reads the YAML file at path (optional), MANDATE_* environment
// variables and the given flags, in increasing precedence, and validates the
// result. Unknown keys in the file are errors. It also returns warnings that do
// not stop the server.
func Load(path string, flags *pflag.FlagSet) (*Config, []string, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("MANDATE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	var cfg Config
	err := v.UnmarshalExact(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.StringToTimeDurationHookFunc()
	})
	if err != nil {
		return nil, nil, configError(err)
	}
	base := ""
	if path != "" {
		base = filepath.Dir(path)
		if v.InConfig("data_dir") && !filepath.IsAbs(cfg.DataDir) {
			cfg.DataDir = filepath.Join(base, cfg.DataDir)
		}
		// Like data_dir: a path from the environment is the working
		// directory's, one from the file is the file's.
		if v.InConfig("signing.kek_file") && cfg.Signing.KEKFile != "" && !filepath.IsAbs(cfg.Signing.KEKFile) {
			cfg.Signing.KEKFile = filepath.Join(base, cfg.Signing.KEKFile)
		}
		if v.InConfig("signing.kek") {
			return nil, nil, errors.New("config: signing.kek must not be written in the config file, which sits next to the data it protects: set MANDATE_SIGNING_KEK, or signing.kek_file naming a file only Mandate's user can read")
		}
	}
	warnings, err := cfg.Validate(base)
	if err != nil {
		return nil, nil, err
	}
	return &cfg, warnings, nil
}

var (
	invalidKeys  = regexp.MustCompile(`'([^']*)' has invalid keys: ([^\n]*)`)
	decodeFailed = regexp.MustCompile(`'([^']*)' (.*)`)
)

// configError rewrites mapstructure's errors so they name the key and the fix.
func configError(err error) error {
	var msgs []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		switch m := invalidKeys.FindStringSubmatch(line); {
		case m != nil && m[1] != "" && !strings.HasPrefix(m[1], "main."):
			msgs = append(msgs, fmt.Sprintf("unknown key(s) %s in %s", m[2], m[1]))
		case m != nil:
			msgs = append(msgs, fmt.Sprintf("unknown key(s) %s", m[2]))
		default:
			if d := decodeFailed.FindStringSubmatch(line); d != nil {
				msgs = append(msgs, fmt.Sprintf("%s: %s", d[1], d[2]))
			}
		}
	}
	if len(msgs) == 0 {
		return fmt.Errorf("config: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	hint := ""
	if strings.Contains(strings.Join(msgs, ""), "unknown key") {
		hint = " (check the spelling against the configuration reference in README.md)"
	}
	return fmt.Errorf("config: %s%s", strings.Join(msgs, "; "), hint)
}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~:/@+-]{1,128}$`)

// Validate checks every key, returning the first error (naming the key and
// the fix) and warnings for settings that work but are unwise. Relative
// paths are resolved against base, the config file's directory ("" for a
// configuration built in code). Start refuses a configuration that does not
// validate.
func (c *Config) Validate(base string) ([]string, error) {
	var warn []string
	if c.Issuer != "" {
		u, err := url.Parse(c.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, errors.New("config: issuer must be an absolute http(s) URL without query or fragment, such as https://mandate.example")
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			warn = append(warn, "issuer uses http on a non-loopback host: tokens and secrets travel in clear; use https behind a TLS terminator")
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, fmt.Errorf("config: listen %q must be host:port, such as 127.0.0.1:8080", c.Listen)
	}
	if c.DataDir == "" {
		return nil, errors.New("config: data_dir is required (the directory of mandate.db)")
	}
	if c.Signing.KEK != "" && c.Signing.KEKFile != "" {
		return nil, errors.New("config: set signing.kek or signing.kek_file, not both")
	}
	if _, err := c.Signing.kek(); err != nil {
		return nil, err
	}
	if c.Log.Format != "" && c.Log.Format != "json" && c.Log.Format != "text" {
		return nil, fmt.Errorf("config: log.format %q is not a log format: use json (the default) or text", c.Log.Format)
	}
	if err := new(slog.Level).UnmarshalText([]byte(c.Log.Level)); c.Log.Level != "" && err != nil {
		return nil, fmt.Errorf("config: log.level %q is not a level: use debug, info, warn or error", c.Log.Level)
	}
	if c.Signing.Alg != tokens.AlgEdDSA && c.Signing.Alg != tokens.AlgES256 {
		return nil, fmt.Errorf("config: signing.alg %q is not supported: use %s or %s", c.Signing.Alg, tokens.AlgEdDSA, tokens.AlgES256)
	}
	t := c.Tokens
	switch {
	case t.RootTTL <= 0:
		return nil, errors.New("config: tokens.root_ttl must be a positive duration, such as 15m")
	case t.DelegatedTTL <= 0:
		return nil, errors.New("config: tokens.delegated_ttl must be a positive duration, such as 5m")
	case t.MaxDepth < 1 || t.MaxDepth > chain.MaxDepth:
		return nil, fmt.Errorf("config: tokens.max_depth must be between 1 and %d (got %d)", chain.MaxDepth, t.MaxDepth)
	case t.Retention < 0:
		return nil, errors.New("config: tokens.retention must not be negative")
	}
	if c.Audit.Retention < 24*time.Hour {
		return nil, errors.New("config: audit.retention must be at least 24h (default 2160h, 90 days): evidence is needed after the incident is found")
	}
	if c.Policy.Dir == "" {
		warn = append(warn, "policy.dir is not set: only the attenuation rules limit delegation; set it to a directory of Cedar policies")
	} else if base != "" && !filepath.IsAbs(c.Policy.Dir) {
		c.Policy.Dir = filepath.Join(base, c.Policy.Dir)
	}
	switch d := c.Deviation; {
	case d.MaxDenials < 0:
		return nil, errors.New("config: deviation.max_denials must not be negative (0 turns deviation off)")
	case d.MaxDenials > 0 && d.Window <= 0:
		return nil, errors.New("config: deviation.window must be a positive duration, such as 1m, when deviation.max_denials is set")
	case d.MaxDenials == 0 && d.Window != 0:
		return nil, errors.New("config: deviation.window is set but deviation.max_denials is not: set both (for example max_denials: 5, window: 1m)")
	}
	for _, k := range c.Deviation.Count {
		if !slices.Contains(delegation.DeviationKinds, k) {
			return nil, fmt.Errorf("config: deviation.count: %q is not a kind of refusal: use any of %s", k, strings.Join(delegation.DeviationKinds, ", "))
		}
	}
	switch r := c.RateLimit; {
	case r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0):
		return nil, errors.New("config: rate_limit.per_second must be a non-negative number (0 turns limiting off)")
	case r.PerSecond > 0 && r.Burst < 1:
		return nil, errors.New("config: rate_limit.burst must be at least 1 when rate_limit.per_second is set")
	case r.RevocationPerSecond < 0 || math.IsNaN(r.RevocationPerSecond) || math.IsInf(r.RevocationPerSecond, 0):
		return nil, errors.New("config: rate_limit.revocation_per_second must be a non-negative number (0: ten times rate_limit.per_second)")
	case r.RevocationPerSecond > 0 && r.RevocationPerSecond < r.PerSecond:
		return nil, errors.New("config: rate_limit.revocation_per_second must not be below rate_limit.per_second: the kill switch must outlast a runaway loop")
	case r.RevocationPerSecond > 0 && r.RevocationBurst < 1:
		return nil, errors.New("config: rate_limit.revocation_burst must be at least 1 when rate_limit.revocation_per_second is set")
	}
	if _, err := c.HTTP.trustedProxies(); err != nil {
		return nil, err
	}
	if c.Cache.MaxBytes < 0 || (c.Cache.MaxBytes > 0 && c.Cache.MaxBytes < 1<<20) {
		return nil, errors.New("config: cache.max_bytes must be at least 1048576 (1 MiB), or 0 for the default (32 MiB)")
	}
	if len(c.Clients) == 0 {
		return nil, errors.New("config: clients is empty: register at least one client (see README.md)")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		key := fmt.Sprintf("clients[%d]", i)
		if !clientIDPattern.MatchString(cl.ID) {
			return nil, fmt.Errorf("config: %s.id %q must be 1-128 characters of letters, digits and ._~:/@+-", key, cl.ID)
		}
		key = fmt.Sprintf("clients[%d] (%s)", i, cl.ID)
		if seen[cl.ID] {
			return nil, fmt.Errorf("config: %s: id is registered twice", key)
		}
		seen[cl.ID] = true
		methods := 0
		for _, set := range []bool{cl.SecretHash != "", cl.Secret != "", cl.JWKSFile != ""} {
			if set {
				methods++
			}
		}
		switch {
		case methods > 1:
			return nil, fmt.Errorf("config: %s: set one of secret_hash, secret or jwks_file", key)
		case cl.JWKSFile != "":
			if base != "" && !filepath.IsAbs(cl.JWKSFile) {
				c.Clients[i].JWKSFile = filepath.Join(base, cl.JWKSFile)
			}
		case cl.SecretHash != "":
			if _, err := delegation.ParseBcryptSecret(cl.SecretHash); err != nil {
				return nil, fmt.Errorf("config: %s.secret_hash is not a bcrypt hash: generate one with `mandate hash-secret`", key)
			}
		case cl.Secret != "":
			warn = append(warn, fmt.Sprintf("%s uses a plain secret; store a bcrypt secret_hash instead (mandate hash-secret)", key))
		default:
			return nil, fmt.Errorf("config: %s.secret_hash is required (or jwks_file, for private_key_jwt): generate one with `mandate hash-secret`", key)
		}
		for _, g := range cl.Grants {
			if !slices.Contains(delegation.GrantNames(), g) {
				return nil, fmt.Errorf("config: %s.grants: unknown grant %q: use %s", key, g, strings.Join(delegation.GrantNames(), " or "))
			}
		}
		switch delegation.Role(cl.Role) {
		case delegation.RoleAgent, delegation.RoleResourceServer, delegation.RoleAdmin:
		default:
			return nil, fmt.Errorf("config: %s.role %q is not a role: use resource_server or admin, or leave it out", key, cl.Role)
		}
		if len(cl.Grants) == 0 && cl.Role == "" {
			return nil, fmt.Errorf("config: %s can do nothing: give it grants (client_credentials, token_exchange) or a role", key)
		}
		for _, s := range cl.Scopes {
			if p, err := chain.ParseScope(s); err != nil || len(p) != 1 {
				return nil, fmt.Errorf("config: %s.scopes: %q is not a single RFC 6749 scope token", key, s)
			}
		}
		for _, a := range cl.Audiences {
			if strings.TrimSpace(a) == "" || a != strings.TrimSpace(a) {
				return nil, fmt.Errorf("config: %s.audiences: %q must be non-empty without surrounding spaces", key, a)
			}
			if c.Issuer != "" && a == c.Issuer {
				return nil, fmt.Errorf("config: %s.audiences: %q is Mandate's own issuer, the audience of identity tokens, which every client may get without listing it", key, a)
			}
		}
		for _, g := range cl.Groups {
			if !clientIDPattern.MatchString(g) {
				return nil, fmt.Errorf("config: %s.groups: %q must be 1-128 characters of letters, digits and ._~:/@+-", key, g)
			}
		}
		if e := cl.Ephemeral; e != nil {
			if !slices.Contains(cl.Grants, delegation.GrantNameTokenExchange) {
				return nil, fmt.Errorf("config: %s.ephemeral needs the token_exchange grant (ephemeral agents receive delegated tokens)", key)
			}
			if len(e.Scopes) == 0 {
				return nil, fmt.Errorf("config: %s.ephemeral.scopes is empty: nothing could be delegated to its agents", key)
			}
			if c.Issuer != "" && slices.Contains(e.Audiences, c.Issuer) {
				return nil, fmt.Errorf("config: %s.ephemeral.audiences: %q is Mandate's own issuer, the audience of identity tokens", key, c.Issuer)
			}
			for _, s := range e.Scopes {
				if p, err := chain.ParseScope(s); err != nil || len(p) != 1 {
					return nil, fmt.Errorf("config: %s.ephemeral.scopes: %q is not a single RFC 6749 scope token", key, s)
				}
			}
		}
	}
	for i := range c.TrustedIssuers {
		ti := &c.TrustedIssuers[i]
		key := fmt.Sprintf("trusted_issuers[%d]", i)
		if u, err := url.Parse(ti.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("config: %s.issuer %q must be the issuer's absolute URL, exactly as in its tokens' iss", key, ti.Issuer)
		}
		switch {
		case ti.JWKSURL != "":
			return nil, fmt.Errorf("config: %s.jwks_url is not supported in this version: download the JWKS and use jwks_file", key)
		case ti.JWKSFile == "":
			return nil, fmt.Errorf("config: %s.jwks_file is required (the issuer's JWKS document)", key)
		}
		if base != "" && !filepath.IsAbs(ti.JWKSFile) {
			ti.JWKSFile = filepath.Join(base, ti.JWKSFile)
		}
	}
	return warn, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serviceConfig turns the validated file configuration into the core's.
func (c *Config) serviceConfig() (delegation.Config, error) {
	sc := delegation.Config{
		Issuer: c.Issuer, RootTTL: c.Tokens.RootTTL, DelegatedTTL: c.Tokens.DelegatedTTL,
		MaxDepth:      c.Tokens.MaxDepth,
		Deviation:     delegation.Deviation{MaxDenials: c.Deviation.MaxDenials, Window: c.Deviation.Window, Count: c.Deviation.Count},
		CacheMaxBytes: c.Cache.MaxBytes,
	}
	for _, cl := range c.Clients {
		dc := delegation.Registration{
			ID: cl.ID, Grants: cl.Grants, Scopes: cl.Scopes,
			Audiences: cl.Audiences, Groups: cl.Groups, Role: delegation.Role(cl.Role),
		}
		switch {
		case cl.JWKSFile != "":
			raw, err := os.ReadFile(cl.JWKSFile)
			if err != nil {
				return sc, fmt.Errorf("config: client %s: jwks_file: %w", cl.ID, err)
			}
			if dc.Keys, err = tokens.NewSetResolver(raw); err != nil {
				return sc, fmt.Errorf("config: client %s: jwks_file %s: %w", cl.ID, cl.JWKSFile, err)
			}
		case cl.SecretHash != "":
			h, err := delegation.ParseBcryptSecret(cl.SecretHash)
			if err != nil {
				return sc, err
			}
			dc.Secret = h
		default:
			dc.Secret = delegation.NewPlainSecret(cl.Secret)
		}
		if e := cl.Ephemeral; e != nil {
			dc.Ephemeral = &delegation.Ephemeral{Scopes: e.Scopes, Audiences: e.Audiences, Groups: e.Groups}
		}
		sc.Clients = append(sc.Clients, dc)
	}
	for i, ti := range c.TrustedIssuers {
		raw, err := os.ReadFile(ti.JWKSFile)
		if err != nil {
			return sc, fmt.Errorf("config: trusted_issuers[%d].jwks_file: %w", i, err)
		}
		keys, err := tokens.NewSetResolver(raw)
		if err != nil {
			return sc, fmt.Errorf("config: trusted_issuers[%d].jwks_file %s: %w", i, ti.JWKSFile, err)
		}
		sc.TrustedIssuers = append(sc.TrustedIssuers, delegation.TrustedIssuer{Issuer: ti.Issuer, Audience: ti.Audience, Keys: keys})
	}
	return sc, nil
}
