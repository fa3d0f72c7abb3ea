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
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/tokens"
)

// Config is the whole server configuration (README.md, "Configuration reference").
type Config struct {
	Issuer         string                `mapstructure:"issuer"`
	Listen         string                `mapstructure:"listen"`
	DataDir        string                `mapstructure:"data_dir"`
	Store          StoreConfig           `mapstructure:"store"`
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
	// WorkloadIssuers and IDJAGIssuers start chains from platform tokens
	// and enterprise ID-JAGs (docs/workload-identity.md).
	WorkloadIssuers []WorkloadIssuerConfig `mapstructure:"workload_issuers"`
	IDJAGIssuers    []IDJAGIssuerConfig    `mapstructure:"id_jag_issuers"`
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

// StoreConfig chooses where Mandate keeps its records: PostgreSQL when
// store.postgres names a database (several replicas may share it), else the
// embedded bbolt file in data_dir.
type StoreConfig struct {
	Postgres PostgresConfig `mapstructure:"postgres"`
}

// PostgresConfig names the PostgreSQL database of a store several replicas
// share: DSN (best from MANDATE_STORE_POSTGRES_DSN) or DSNFile (a file only
// Mandate's user can read, holding the DSN), not both.
type PostgresConfig struct {
	DSN     string `mapstructure:"dsn"`
	DSNFile string `mapstructure:"dsn_file"`
	// Replica names this replica's audit hash chain (default: the host
	// name): stable across its restarts, different from every other replica
	// running at once.
	Replica string `mapstructure:"replica"`
}

// Enabled reports whether PostgreSQL is configured (a DSN or a DSN file).
func (p PostgresConfig) Enabled() bool { return p.DSN != "" || p.DSNFile != "" }

// MaskedDSN is the configured DSN (read from DSNFile when that is set) with
// every password masked, for showing what a server runs with ("" when
// neither is set; a placeholder when the file cannot be read).
func (p PostgresConfig) MaskedDSN() string {
	if !p.Enabled() {
		return ""
	}
	dsn, err := p.ReadDSN()
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return postgres.MaskDSN(dsn)
}

// validate checks the PostgreSQL keys: one of dsn and dsn_file, a DSN that
// parses, the KEK set (kekSet: a KEK is configured), a replica
// name only with a database.
func (p PostgresConfig) validate(kekSet bool) error {
	switch {
	case p.DSN != "" && p.DSNFile != "":
		return errors.New("config: set store.postgres.dsn or store.postgres.dsn_file, not both")
	case !p.Enabled() && p.Replica != "":
		return errors.New("config: store.postgres.replica is set but no database is: set store.postgres.dsn (MANDATE_STORE_POSTGRES_DSN) or store.postgres.dsn_file, or remove it")
	case !p.Enabled():
		return nil
	}
	var errs []error
	if dsn, err := p.ReadDSN(); err != nil {
		errs = append(errs, err)
	} else if err := postgres.CheckDSN(dsn); err != nil {
		key := "store.postgres.dsn"
		if p.DSNFile != "" {
			key = "store.postgres.dsn_file"
		}
		errs = append(errs, fmt.Errorf("config: %s: %w: use postgres://user:password@host:5432/mandate or host=… user=… dbname=… (libpq's forms)", key, err))
	}
	if !kekSet {
		errs = append(errs, errors.New("config: store.postgres: with PostgreSQL the key-encryption key is required, so signing keys never rest in clear in a database replicas share: set MANDATE_SIGNING_KEK (head -c 32 /dev/urandom | base64) or signing.kek_file, the same on every replica"))
	}
	if p.Replica != "" && (len(p.Replica) > 200 || !utf8.ValidString(p.Replica) || strings.ContainsRune(p.Replica, 0)) {
		errs = append(errs, errors.New("config: store.postgres.replica must be up to 200 bytes of text, such as the host or pod name"))
	}
	return errors.Join(errs...)
}

// ReadDSN is the configured DSN: DSN, or the content of DSNFile, which
// others must not be able to read ("" when neither is set). Its errors
// never repeat the DSN.
func (p PostgresConfig) ReadDSN() (string, error) {
	if p.DSNFile == "" {
		return p.DSN, nil
	}
	st, err := os.Stat(p.DSNFile)
	if err != nil {
		return "", fmt.Errorf("config: store.postgres.dsn_file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("config: store.postgres.dsn_file %s is %v: others may read it, and a DSN may hold the database's password; run chmod 600 %s", p.DSNFile, st.Mode().Perm(), p.DSNFile)
	}
	raw, err := os.ReadFile(p.DSNFile)
	if err != nil {
		return "", fmt.Errorf("config: store.postgres.dsn_file: %w", err)
	}
	dsn := strings.TrimSpace(string(raw))
	if dsn == "" {
		return "", fmt.Errorf("config: store.postgres.dsn_file %s is empty: write the DSN in it (postgres://user:password@host/db or host=… user=… dbname=…)", p.DSNFile)
	}
	return dsn, nil
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
	// Serves lists the audiences (absolute URIs) the client is the resource
	// server for, such as an MCP server's canonical URI: it may exchange a
	// token sent to one of them for its own token to a downstream API
	// within Audiences (the audience exchange, docs/design.md). It needs
	// the token_exchange grant; no two clients serve one audience.
	Serves []string `mapstructure:"serves"`
}

// EphemeralConfig is the ceiling and the groups of a client's ephemeral agents.
type EphemeralConfig struct {
	Scopes    []string `mapstructure:"scopes"`
	Audiences []string `mapstructure:"audiences"`
	Groups    []string `mapstructure:"groups"`
}

// TrustedIssuerConfig registers an external identity provider.
type TrustedIssuerConfig struct {
	Issuer string `mapstructure:"issuer"`
	// KeySource: jwks_file, jwks_url or discovery, and ca_file.
	KeySource `mapstructure:",squash"`
	Audience  string `mapstructure:"audience"`
}

// KeySource says where an issuer's keys are: exactly one of a JWKS file, a
// JWKS URL, or OIDC discovery on the issuer; CAFile adds private CAs for
// the fetches.
type KeySource struct {
	JWKSFile  string `mapstructure:"jwks_file"`
	JWKSURL   string `mapstructure:"jwks_url"`
	Discovery bool   `mapstructure:"discovery"`
	CAFile    string `mapstructure:"ca_file"`
}

// WorkloadIssuerConfig is a platform whose tokens start chains without a
// static secret (../shared/DESIGN.md, workload issuers): keyed by issuer,
// or by trust_domain for SPIFFE JWT-SVIDs.
type WorkloadIssuerConfig struct {
	Issuer      string `mapstructure:"issuer"`
	TrustDomain string `mapstructure:"trust_domain"`
	KeySource   `mapstructure:",squash"`
	// Audience is what its tokens must be for (default: Mandate's issuer).
	Audience string `mapstructure:"audience"`
	// MaxLifetime bounds the tokens' exp - iat (default 1h).
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
	// SingleUse requires a jti and accepts each token once.
	SingleUse bool                 `mapstructure:"single_use"`
	Rules     []WorkloadRuleConfig `mapstructure:"rules"`
}

// WorkloadRuleConfig maps matching tokens to a registered client or a
// generated agent name with its ceiling; the first match wins.
type WorkloadRuleConfig struct {
	// Match holds globs by claim path; Load re-reads it from the file so
	// that claim names keep their case.
	Match     map[string]string `mapstructure:"match"`
	Client    string            `mapstructure:"client"`
	Agent     string            `mapstructure:"agent"`
	Scopes    []string          `mapstructure:"scopes"`
	Audiences []string          `mapstructure:"audiences"`
	Groups    []string          `mapstructure:"groups"`
}

// IDJAGIssuerConfig is an enterprise IdP whose identity assertion
// authorization grants (ID-JAGs) a client may redeem for a root on behalf
// of the user.
type IDJAGIssuerConfig struct {
	Issuer    string `mapstructure:"issuer"`
	KeySource `mapstructure:",squash"`
	// MaxLifetime bounds an ID-JAG's exp - iat (default 5m); its aud must
	// be Mandate's issuer.
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
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
	"store.postgres.dsn":               "",
	"store.postgres.dsn_file":          "",
	"store.postgres.replica":           "",
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

// ErrValueTypes is what Load's error matches (errors.Is) when values of the
// wrong type stopped it: those problems are reported before, and instead of,
// the ones Validate would find, which are checked once every value has its
// type.
var ErrValueTypes = errors.New("config: values of the wrong type")

// typeProblems is Load's error when values of the wrong type stopped it:
// each problem on its own (like errors.Join), and it matches ErrValueTypes.
type typeProblems []error

func (t typeProblems) Error() string        { return errors.Join(t...).Error() }
func (t typeProblems) Unwrap() []error      { return t }
func (t typeProblems) Is(target error) bool { return target == ErrValueTypes }

// Load reads the YAML file at path (optional), MANDATE_* environment
// variables and the given flags, in increasing precedence, and validates the
// result. Every value is read the same way whichever source gave it
// (strictScalars): a duration needs a unit, a number must be one. The error
// lists every problem found (errors.Join, one "config: <key>: …" each, and a
// file that is not YAML says where, on one line). Problems in the values'
// types are reported before, and instead of, those Validate finds (the error
// then matches ErrValueTypes); an unknown key in the file is reported with
// Validate's problems. It also returns warnings that do not stop the server,
// with an error as well as without: first the MANDATE_* variables that name
// no key, then Validate's.
func Load(path string, flags *pflag.FlagSet) (*Config, []string, error) {
	envWarnings := unknownEnvironment(os.Environ())
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
			return nil, envWarnings, readProblem(path, err)
		}
	}
	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, envWarnings, err
				}
			}
		}
	}
	var cfg Config
	var unknown []error
	if err := v.UnmarshalExact(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = strictScalars
	}); err != nil {
		all := decodeProblems(err)
		typed := slices.ContainsFunc(all, func(e error) bool {
			_, unknownKey := e.(unknownKeyError)
			return !unknownKey
		})
		if typed {
			return nil, envWarnings, typeProblems(all)
		}
		// Only unknown keys: every value the file gives a known key was read,
		// so Validate checks them now, in the same run.
		unknown = all
	}
	base := ""
	var inFile error
	var dsnInFile string
	if path != "" {
		if err := cfg.matchCase(path); err != nil {
			return nil, envWarnings, err
		}
		base = filepath.Dir(path)
		if v.InConfig("data_dir") && !filepath.IsAbs(cfg.DataDir) {
			cfg.DataDir = filepath.Join(base, cfg.DataDir)
		}
		// Like data_dir: a path from the environment is the working
		// directory's, one from the file is the file's.
		if v.InConfig("signing.kek_file") && cfg.Signing.KEKFile != "" && !filepath.IsAbs(cfg.Signing.KEKFile) {
			cfg.Signing.KEKFile = filepath.Join(base, cfg.Signing.KEKFile)
		}
		if v.InConfig("store.postgres.dsn_file") && cfg.Store.Postgres.DSNFile != "" && !filepath.IsAbs(cfg.Store.Postgres.DSNFile) {
			cfg.Store.Postgres.DSNFile = filepath.Join(base, cfg.Store.Postgres.DSNFile)
		}
		if v.InConfig("store.postgres.dsn") && postgres.HasPassword(cfg.Store.Postgres.DSN) {
			dsnInFile = "store.postgres.dsn in the config file holds a password, in clear next to the configuration: set MANDATE_STORE_POSTGRES_DSN, or store.postgres.dsn_file naming a file only Mandate's user can read"
		}
		if v.InConfig("signing.kek") {
			inFile = errors.New("config: signing.kek must not be written in the config file, which sits next to the data it protects: set MANDATE_SIGNING_KEK, or signing.kek_file naming a file only Mandate's user can read")
		}
	}
	warnings, err := cfg.Validate(base)
	warnings = append(envWarnings, warnings...)
	if dsnInFile != "" {
		warnings = append(warnings, dsnInFile)
	}
	if err = errors.Join(append(unknown, inFile, err)...); err != nil {
		return nil, warnings, err
	}
	return &cfg, warnings, nil
}

var duplicateKey = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)

// readProblem is the error of a config file viper could not read: where the
// YAML is wrong, on one line (one error per line of the YAML library's list,
// errors.Join), and a tab that indents a line said as such.
func readProblem(path string, err error) error {
	var pe viper.ConfigParseError
	if !errors.As(err, &pe) || pe.Unwrap() == nil {
		return fmt.Errorf("config %s: %w", path, err) // the file could not be read (os errors are one line)
	}
	msg := strings.TrimPrefix(pe.Unwrap().Error(), "yaml: ")
	if list, ok := strings.CutPrefix(msg, "unmarshal errors:"); ok {
		var out []error
		for _, line := range strings.Split(list, "\n") {
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			if m := duplicateKey.FindStringSubmatch(line); m != nil {
				line = fmt.Sprintf("line %s: key %s appears twice (first at line %s): keep one", m[1], m[2], m[3])
			}
			out = append(out, fmt.Errorf("config %s: %s", path, line))
		}
		if len(out) > 0 {
			return errors.Join(out...)
		}
	}
	if strings.Contains(msg, "tab") || strings.Contains(msg, "cannot start any token") {
		if n := tabIndentedLine(path); n > 0 {
			return fmt.Errorf("config %s: line %d: a tab indents this line; YAML indents with spaces", path, n)
		}
	}
	return fmt.Errorf("config %s: %s", path, oneLine(msg))
}

// tabIndentedLine is the number of the first line of the file at path whose
// indentation holds a tab (0: none).
func tabIndentedLine(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for i, line := range strings.Split(string(raw), "\n") {
		rest := strings.TrimLeft(line, " \t")
		if rest != "" && strings.Contains(line[:len(line)-len(rest)], "\t") {
			return i + 1
		}
	}
	return 0
}

// oneLine joins a message's lines with spaces.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " ")
}

// cliEnvironment are the MANDATE_* variables read by the CLI (the operator
// commands' server and credentials), which name no configuration key.
var cliEnvironment = []string{"MANDATE_SERVER", "MANDATE_CLIENT_ID", "MANDATE_CLIENT_SECRET"}

// toolingEnvironment are the MANDATE_* variables the project's own build and
// tests set (make test, .ci/run), which name no key but are no mistake:
// MANDATE_TEST_* switches, the binary the SDKs' tests start, the example's
// switch. A serve started under them must not warn.
var toolingEnvironment = []string{"MANDATE_BIN", "MANDATE_EXAMPLE_MCP"}

func toolingVariable(name string) bool {
	return strings.HasPrefix(name, "MANDATE_TEST_") || slices.Contains(toolingEnvironment, name)
}

// configEnvironment is the MANDATE_* variable of every key of Config
// (nested keys joined with _, lists by their own name), and the CLI's.
var configEnvironment = func() []string {
	names := slices.Clone(cliEnvironment)
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if name == "" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(prefix+name+"_", f.Type)
				continue
			}
			names = append(names, "MANDATE_"+strings.ToUpper(prefix+name))
		}
	}
	walk("", reflect.TypeFor[Config]())
	slices.Sort(names)
	return slices.Compact(names)
}()

// unknownEnvironment warns of each set MANDATE_* variable of environ that
// names no configuration key (nor one the CLI reads), with the closest name
// that does when one is within two edits. It is a warning, not an error:
// other tools may share the prefix. Values are never shown.
func unknownEnvironment(environ []string) []string {
	var names []string
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "MANDATE_") && value != "" && !slices.Contains(configEnvironment, name) && !toolingVariable(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var warn []string
	for _, name := range slices.Compact(names) {
		best, bestDist := "", 3
		for _, known := range configEnvironment {
			if d := editDistance(name, known); d < bestDist {
				best, bestDist = known, d
			}
		}
		if best != "" {
			warn = append(warn, fmt.Sprintf("%s names no configuration key (did you mean %s?)", name, best))
		} else {
			warn = append(warn, fmt.Sprintf("%s names no configuration key: it is ignored (each key's variable: README.md, \"Configuration reference\")", name))
		}
	}
	return warn
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var durationType = reflect.TypeFor[time.Duration]()

// strictScalars is Load's decode hook. It reads every duration and number
// from its text, so a value means the same in the YAML file as in a MANDATE_*
// variable (which is always text): 15 is refused for a duration as "15" is
// (mapstructure would take it for 15ns and every token would be issued
// expired), true is no number (weak typing would make it 1), and a number
// must be whole where the key counts. A bool for a string key keeps its text
// ("true"), as the environment would give it.
func strictScalars(_, to reflect.Type, data any) (any, error) {
	numeric := to == durationType || (to.Kind() >= reflect.Int && to.Kind() <= reflect.Float64)
	text, ok := scalarText(data)
	if !ok {
		if k := reflect.ValueOf(data).Kind(); numeric && (k == reflect.Slice || k == reflect.Map) {
			return nil, errors.New("must be a single value, not a list or a map")
		}
		return data, nil
	}
	switch {
	case to == durationType:
		return parseDuration(text)
	case to.Kind() >= reflect.Int && to.Kind() <= reflect.Int64:
		n, err := parseWhole(text, to.Bits())
		if err != nil {
			return nil, err
		}
		return reflect.ValueOf(n).Convert(to).Interface(), nil
	case to.Kind() == reflect.Float32 || to.Kind() == reflect.Float64:
		f, err := parseNumber(text)
		if err != nil {
			return nil, err
		}
		return reflect.ValueOf(f).Convert(to).Interface(), nil
	case to.Kind() == reflect.String:
		if _, isBool := data.(bool); isBool {
			return text, nil
		}
	}
	return data, nil
}

// scalarText is a YAML or environment scalar as the text an operator wrote.
func scalarText(data any) (string, bool) {
	switch x := data.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return "", false
}

var plainNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// parseDuration reads a duration with its unit, as Go writes them (90s, 15m,
// 1h30m); a bare number is refused with the fix.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if plainNumber.MatchString(s) {
		return 0, fmt.Errorf("%s needs a unit, such as %sm", s, s)
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%s needs a unit (ms, s, m or h), such as 15m", s)
	}
	return 0, fmt.Errorf("%q is not a duration: write a number with a unit (ms, s, m or h), such as 15m or 24h", s)
}

// parseWhole reads a whole number that fits in bits (1e6 is one; 2.5 is not).
func parseWhole(s string, bits int) (int64, error) {
	n, err := strconv.ParseInt(s, 10, bits)
	if err == nil {
		return n, nil
	}
	f, ferr := strconv.ParseFloat(s, 64)
	limit := math.Ldexp(1, bits-1)
	switch {
	case ferr != nil && !errors.Is(ferr, strconv.ErrRange), math.IsNaN(f):
		return 0, fmt.Errorf("%q is not a number: write a whole number, such as 10", s)
	case f != math.Trunc(f):
		return 0, fmt.Errorf("%s is not a whole number: write one, such as 10", s)
	case f < -limit || f >= limit:
		return 0, fmt.Errorf("%s is too large a number", s)
	}
	return int64(f), nil
}

// parseNumber reads a finite number.
func parseNumber(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%q is not a number: write one, such as 2.5", s)
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("%s is not a finite number", s)
	}
	return f, nil
}

// unknownKeyError is decodeProblems' problem of keys Config does not have.
type unknownKeyError string

func (e unknownKeyError) Error() string { return string(e) }

// decodeProblems turns mapstructure's errors into one "config: <key>: …"
// error per problem, so each names its key and its fix.
func decodeProblems(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		de, ok := e.(*mapstructure.DecodeError)
		if !ok {
			if u := errors.Unwrap(e); u != nil {
				walk(u) // viper's "decoding failed due to …" wrapper
			} else {
				out = append(out, fmt.Errorf("config: %w", e))
			}
			return
		}
		inner := de.Unwrap()
		_, joined := inner.(interface{ Unwrap() []error })
		if _, nested := inner.(*mapstructure.DecodeError); joined || nested {
			walk(inner)
			return
		}
		name, msg := de.Name(), inner.Error()
		if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			where := ""
			if name != "" && name != reflect.TypeFor[Config]().String() {
				where = " in " + name
			}
			out = append(out, unknownKeyError(fmt.Sprintf("config: unknown key(s) %s%s (check the spelling against the configuration reference in README.md)", keys, where)))
			return
		}
		out = append(out, fmt.Errorf("config: %s: %w", name, inner))
	}
	walk(err)
	if len(out) == 0 {
		out = append(out, fmt.Errorf("config: %w", err))
	}
	return out
}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~:/@+-]{1,128}$`)

// The ranges Validate holds durations to: wide enough for any sane
// deployment, narrow enough that a slip (15ns for 15m, a year for a token)
// is caught at start.
const (
	minTTL             = time.Second
	maxTTL             = 24 * time.Hour
	minTokenRetention  = time.Minute
	maxTokenRetention  = 8760 * time.Hour // a year
	minAuditRetention  = 24 * time.Hour
	maxAuditRetention  = 87600 * time.Hour // ten years
	maxDeviationWindow = 24 * time.Hour
)

// The ranges Validate holds numbers to: far beyond what one Mandate serves,
// so only a slip (a byte count for a rate, a stray exponent) is refused.
const (
	maxPerSecond  = 1e6     // requests per second per client, grants or revocation
	maxBurst      = 1e7     // a bucket's size
	maxDenials    = 10000   // deviation.max_denials
	minCacheBytes = 1 << 20 // cache.max_bytes: 1 MiB holds a few thousand tokens
	maxCacheBytes = 1 << 30 // 1 GiB
)

// numberText writes f as an operator would: 100, 2.5, 1000000.
func numberText(f float64) string {
	if math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// numberWithin is the error of a number key outside [lo, hi]; loNote says
// what lo means, if anything (" (off)").
func numberWithin(key string, f, lo, hi float64, loNote, example string) error {
	if f >= lo && f <= hi {
		return nil
	}
	return fmt.Errorf("config: %s: %s is out of range: it must be between %s%s and %s, such as %s", key, numberText(f), numberText(lo), loNote, numberText(hi), example)
}

// shortDuration writes d as an operator would: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationWithin is the error of a duration key outside [lo, hi].
func durationWithin(key string, d, lo, hi time.Duration, example string) error {
	if d >= lo && d <= hi {
		return nil
	}
	return fmt.Errorf("config: %s: %s is out of range: it must be between %s and %s, such as %s", key, shortDuration(d), shortDuration(lo), shortDuration(hi), example)
}

// Validate checks every key and returns every problem found (errors.Join,
// each naming its key and its fix), and warnings for settings that work but
// are unwise (returned with the error too). Relative paths are resolved
// against base, the config file's directory ("" for a configuration built in
// code). Start refuses a configuration that does not validate.
func (c *Config) Validate(base string) ([]string, error) {
	var warn []string
	var errs []error
	fail := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	failf := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	listenHost, listenPort, listenErr := net.SplitHostPort(c.Listen)
	if listenErr != nil {
		failf("config: listen %q must be host:port, such as 127.0.0.1:8080", c.Listen)
	}
	if c.Issuer != "" {
		u, err := url.Parse(c.Issuer)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
			failf("config: issuer must be an absolute http(s) URL without query or fragment, such as https://mandate.example")
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			warn = append(warn, "issuer uses http on a non-loopback host: tokens and secrets travel in clear; use https behind a TLS terminator")
		case isLoopback(u.Hostname()) && listenErr == nil && listenPort != "0" && !listensOn(listenHost, listenPort, u):
			// A loopback issuer names this machine: unless a proxy on it
			// forwards to listen, which is rare, clients go nowhere.
			warn = append(warn, fmt.Sprintf("issuer %s is not where the server listens (%s): clients will not reach it", c.Issuer, c.Listen))
		}
	} else if listenErr == nil && isWildcard(listenHost) {
		failf("config: issuer is required when listen (%q) binds every interface: set issuer to the URL clients use, such as https://mandate.example", c.Listen)
	}
	if c.DataDir == "" && !c.Store.Postgres.Enabled() {
		failf("config: data_dir is required (the directory of mandate.db), unless store.postgres names a database")
	}
	if c.Signing.KEK != "" && c.Signing.KEKFile != "" {
		failf("config: set signing.kek or signing.kek_file, not both")
	} else if _, err := c.Signing.kek(); err != nil {
		fail(err)
	}
	// A KEK given but wrong is reported above, not again as missing.
	fail(c.Store.Postgres.validate(c.Signing.KEK != "" || c.Signing.KEKFile != ""))
	if c.Log.Format != "" && c.Log.Format != "json" && c.Log.Format != "text" {
		failf("config: log.format %q is not a log format: use json (the default) or text", c.Log.Format)
	}
	if err := new(slog.Level).UnmarshalText([]byte(c.Log.Level)); c.Log.Level != "" && err != nil {
		failf("config: log.level %q is not a level: use debug, info, warn or error", c.Log.Level)
	}
	if c.Signing.Alg != tokens.AlgEdDSA && c.Signing.Alg != tokens.AlgES256 {
		failf("config: signing.alg %q is not supported: use %s or %s", c.Signing.Alg, tokens.AlgEdDSA, tokens.AlgES256)
	}
	t := c.Tokens
	fail(durationWithin("tokens.root_ttl", t.RootTTL, minTTL, maxTTL, "15m"))
	fail(durationWithin("tokens.delegated_ttl", t.DelegatedTTL, minTTL, maxTTL, "5m"))
	if t.DelegatedTTL > t.RootTTL && t.RootTTL >= minTTL && t.DelegatedTTL <= maxTTL {
		warn = append(warn, fmt.Sprintf("tokens.delegated_ttl (%s) is longer than tokens.root_ttl (%s): no delegated token outlives its root, so none lives longer than %s; lower tokens.delegated_ttl",
			shortDuration(t.DelegatedTTL), shortDuration(t.RootTTL), shortDuration(t.RootTTL)))
	}
	fail(numberWithin("tokens.max_depth", float64(t.MaxDepth), 1, chain.MaxDepth, "", "4"))
	fail(durationWithin("tokens.retention", t.Retention, minTokenRetention, maxTokenRetention, "24h"))
	switch r := c.Audit.Retention; {
	case r < minAuditRetention:
		failf("config: audit.retention must be at least 24h (default 2160h, 90 days): evidence is needed after the incident is found")
	case r > maxAuditRetention:
		failf("config: audit.retention: %s is out of range: it must be at most %s (ten years), such as 2160h", shortDuration(r), shortDuration(maxAuditRetention))
	}
	if c.Policy.Dir == "" {
		warn = append(warn, "policy.dir is not set: only the attenuation rules limit delegation; set it to a directory of Cedar policies")
	} else if base != "" && !filepath.IsAbs(c.Policy.Dir) {
		c.Policy.Dir = filepath.Join(base, c.Policy.Dir)
	}
	switch d := c.Deviation; {
	case d.MaxDenials < 0 || d.MaxDenials > maxDenials:
		fail(numberWithin("deviation.max_denials", float64(d.MaxDenials), 0, maxDenials, " (off)", "5"))
	case d.MaxDenials > 0 && d.Window <= 0:
		failf("config: deviation.window must be a positive duration, such as 1m, when deviation.max_denials is set")
	case d.MaxDenials == 0 && d.Window != 0:
		failf("config: deviation.window is set but deviation.max_denials is not: set both (for example max_denials: 5, window: 1m)")
	case d.Window > maxDeviationWindow:
		failf("config: deviation.window: %s is out of range: it must be at most %s (a suspension lasts a window), such as 1m", shortDuration(d.Window), shortDuration(maxDeviationWindow))
	}
	for _, k := range c.Deviation.Count {
		if !slices.Contains(delegation.DeviationKinds, k) {
			failf("config: deviation.count: %q is not a kind of refusal: use any of %s", k, strings.Join(delegation.DeviationKinds, ", "))
		}
	}
	r := c.RateLimit
	perSecond := numberWithin("rate_limit.per_second", r.PerSecond, 0, maxPerSecond, " (off)", "100")
	burst := numberWithin("rate_limit.burst", float64(r.Burst), 0, maxBurst, "", "200")
	switch {
	case perSecond != nil || burst != nil:
		fail(perSecond)
		fail(burst)
	case r.PerSecond > 0 && r.Burst < 1:
		failf("config: rate_limit.burst: 0 is too small when rate_limit.per_second is set: it must be at least 1, such as 200")
	}
	revPerSecond := numberWithin("rate_limit.revocation_per_second", r.RevocationPerSecond, 0, maxPerSecond, " (ten times rate_limit.per_second)", "1000")
	revBurst := numberWithin("rate_limit.revocation_burst", float64(r.RevocationBurst), 0, maxBurst, " (ten times rate_limit.burst)", "2000")
	switch {
	case revPerSecond != nil || revBurst != nil:
		fail(revPerSecond)
		fail(revBurst)
	case r.RevocationPerSecond > 0 && r.RevocationPerSecond < r.PerSecond:
		failf("config: rate_limit.revocation_per_second: %s is below rate_limit.per_second (%s): the kill switch must outlast a runaway loop; set it to at least %s, or 0 for ten times rate_limit.per_second",
			numberText(r.RevocationPerSecond), numberText(r.PerSecond), numberText(r.PerSecond))
	case r.RevocationPerSecond > 0 && r.RevocationBurst < 1:
		failf("config: rate_limit.revocation_burst: %d is too small when rate_limit.revocation_per_second is set: it must be at least 1, such as 2000", r.RevocationBurst)
	}
	if _, err := c.HTTP.trustedProxies(); err != nil {
		fail(err)
	}
	if m := c.Cache.MaxBytes; m != 0 && (m < minCacheBytes || m > maxCacheBytes) {
		failf("config: cache.max_bytes: %d is out of range: it must be between %d (1 MiB) and %d (1 GiB), or 0 for the default (32 MiB), such as 67108864 (64 MiB)", m, minCacheBytes, maxCacheBytes)
	}
	if len(c.Clients) == 0 {
		failf("config: clients is empty: register at least one client (see README.md)")
	}
	seen := map[string]bool{}
	servedBy := map[string]string{} // audience → the first client serving it
	for i, cl := range c.Clients {
		fail(c.validateClient(i, cl, base, seen, &warn))
		for _, a := range cl.Serves {
			if other, taken := servedBy[a]; taken && other != cl.ID {
				failf("config: clients[%d] (%s).serves: %q is already served by client %q: one registration is the resource server for an audience (its replicas share it)", i, cl.ID, a, other)
			} else if !taken {
				servedBy[a] = cl.ID
			}
		}
	}
	if len(c.Clients) > 0 && !slices.ContainsFunc(c.Clients, func(cl ClientConfig) bool { return cl.Role == string(delegation.RoleAdmin) }) {
		warn = append(warn, "no admin client: the operator commands (mandate lineage, revoke, tokens, keys, audit) will be refused; add a client with role: admin (mandate init writes one)")
	}
	for i := range c.TrustedIssuers {
		ti := &c.TrustedIssuers[i]
		key := fmt.Sprintf("trusted_issuers[%d]", i)
		if u, err := url.Parse(ti.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
			failf("config: %s.issuer %q must be the issuer's absolute URL, exactly as in its tokens' iss", key, ti.Issuer)
		}
		errs = append(errs, validateKeys(key, ti.Issuer, &ti.KeySource, base)...)
	}
	errs = append(errs, c.validateIssuers(base)...)
	return warn, errors.Join(errs...)
}

// validateClient checks clients[i], returning its problems (errors.Join) and
// adding its warnings to warn; seen holds the ids already registered.
func (c *Config) validateClient(i int, cl ClientConfig, base string, seen map[string]bool, warn *[]string) error {
	var errs []error
	failf := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	key := fmt.Sprintf("clients[%d]", i)
	if !clientIDPattern.MatchString(cl.ID) {
		failf("config: %s.id %q must be 1-128 characters of letters, digits and ._~:/@+-", key, cl.ID)
	} else {
		key = fmt.Sprintf("clients[%d] (%s)", i, cl.ID)
		if seen[cl.ID] {
			failf("config: %s: id is registered twice", key)
		}
		seen[cl.ID] = true
	}
	methods := 0
	for _, set := range []bool{cl.SecretHash != "", cl.Secret != "", cl.JWKSFile != ""} {
		if set {
			methods++
		}
	}
	switch {
	case methods > 1:
		failf("config: %s: set one of secret_hash, secret or jwks_file", key)
	case cl.JWKSFile != "":
		if base != "" && !filepath.IsAbs(cl.JWKSFile) {
			c.Clients[i].JWKSFile = filepath.Join(base, cl.JWKSFile)
		}
	case cl.SecretHash != "":
		if _, err := delegation.ParseBcryptSecret(cl.SecretHash); err != nil {
			failf("config: %s.secret_hash is not a bcrypt hash: generate one with `mandate hash-secret`", key)
		}
	case cl.Secret != "":
		*warn = append(*warn, fmt.Sprintf("%s uses a plain secret; store a bcrypt secret_hash instead (mandate hash-secret)", key))
	case c.namedByWorkloadRule(cl.ID):
		// It authenticates with its platform token (workload_issuers): no
		// secret to leak.
	default:
		failf("config: %s.secret_hash is required (or jwks_file, for private_key_jwt, or a workload_issuers rule naming the client): generate one with `mandate hash-secret`", key)
	}
	for _, g := range cl.Grants {
		if !slices.Contains(delegation.GrantNames(), g) {
			names := delegation.GrantNames()
			failf("config: %s.grants: unknown grant %q: use %s or %s", key, g, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
		}
	}
	switch delegation.Role(cl.Role) {
	case delegation.RoleAgent, delegation.RoleResourceServer, delegation.RoleAdmin:
	default:
		failf("config: %s.role %q is not a role: use resource_server or admin, or leave it out", key, cl.Role)
	}
	if len(cl.Grants) == 0 && cl.Role == "" {
		failf("config: %s can do nothing: give it grants (client_credentials, token_exchange) or a role", key)
	}
	for _, s := range cl.Scopes {
		if p, err := chain.ParseScope(s); err != nil || len(p) != 1 {
			failf("config: %s.scopes: %q is not a single RFC 6749 scope token", key, s)
		}
	}
	for _, a := range cl.Audiences {
		if strings.TrimSpace(a) == "" || a != strings.TrimSpace(a) {
			failf("config: %s.audiences: %q must be non-empty without surrounding spaces", key, a)
		} else if c.Issuer != "" && a == c.Issuer {
			failf("config: %s.audiences: %q is Mandate's own issuer, the audience of identity tokens, which every client may get without listing it", key, a)
		}
	}
	for j, a := range cl.Serves {
		if err := servedAudience(a, c.Issuer); err != nil {
			failf("config: %s.serves: %q %v", key, a, err)
		} else if slices.Contains(cl.Serves[:j], a) {
			failf("config: %s.serves: %q is listed twice", key, a)
		}
	}
	if len(cl.Serves) > 0 {
		if !slices.Contains(cl.Grants, delegation.GrantNameTokenExchange) {
			failf("config: %s.serves needs the token_exchange grant (the audience exchange is a token exchange)", key)
		}
		if len(cl.Scopes) == 0 || len(cl.Audiences) == 0 {
			failf("config: %s.serves needs scopes and audiences: they bound the tokens it gets for its downstream APIs (audiences lists those APIs), so without them every audience exchange is refused", key)
		}
	}
	for _, g := range cl.Groups {
		if !clientIDPattern.MatchString(g) {
			failf("config: %s.groups: %q must be 1-128 characters of letters, digits and ._~:/@+-", key, g)
		}
	}
	if e := cl.Ephemeral; e != nil {
		if !slices.Contains(cl.Grants, delegation.GrantNameTokenExchange) {
			failf("config: %s.ephemeral needs the token_exchange grant (ephemeral agents receive delegated tokens)", key)
		}
		if len(e.Scopes) == 0 {
			failf("config: %s.ephemeral.scopes is empty: nothing could be delegated to its agents", key)
		}
		if c.Issuer != "" && slices.Contains(e.Audiences, c.Issuer) {
			failf("config: %s.ephemeral.audiences: %q is Mandate's own issuer, the audience of identity tokens", key, c.Issuer)
		}
		for _, s := range e.Scopes {
			if p, err := chain.ParseScope(s); err != nil || len(p) != 1 {
				failf("config: %s.ephemeral.scopes: %q is not a single RFC 6749 scope token", key, s)
			}
		}
	}
	return errors.Join(errs...)
}

// servedAudience checks one clients[].serves entry: an absolute URI (RFC
// 3986 §4.3, as RFC 8707 resource indicators are) without a fragment, with a
// host when it is http(s), and not Mandate's own issuer (which is the
// audience of identity tokens, and no client stands in for Mandate). The
// error completes "<key>: <value> …".
func servedAudience(a, issuer string) error {
	if strings.TrimSpace(a) == "" || a != strings.TrimSpace(a) {
		return errors.New("must be non-empty without surrounding spaces")
	}
	u, err := url.Parse(a)
	switch {
	case err != nil || !u.IsAbs():
		return errors.New("must be an absolute URI, such as https://mcp.orders.example/mcp (the audience its callers' tokens carry)")
	case u.Fragment != "" || strings.Contains(a, "#"):
		return errors.New("must not have a fragment (#…)")
	case (u.Scheme == "https" || u.Scheme == "http") && u.Host == "":
		return errors.New("must name a host, such as https://mcp.orders.example/mcp")
	case issuer != "" && a == issuer:
		return errors.New("is Mandate's own issuer, the audience of identity tokens: no client is the resource server for it")
	}
	return nil
}

// isWildcard is whether a listen host binds every interface ("", 0.0.0.0, ::).
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// listensOn is whether a server listening on host:port answers at issuer
// u's host and port (the scheme's when it names none): the same port, and
// the same host, or every interface, or localhost for a loopback address.
func listensOn(host, port string, u *url.URL) bool {
	uPort := u.Port()
	if uPort == "" {
		uPort = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if uPort != port {
		return false
	}
	uHost := u.Hostname()
	switch {
	case isWildcard(host), strings.EqualFold(host, uHost):
		return true
	case strings.EqualFold(host, "localhost"):
		return isLoopback(uHost)
	case strings.EqualFold(uHost, "localhost"):
		return isLoopback(host)
	}
	a, b := net.ParseIP(host), net.ParseIP(uHost)
	return a != nil && a.Equal(b)
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
			Audiences: cl.Audiences, Groups: cl.Groups, Role: delegation.Role(cl.Role), Serves: cl.Serves,
		}
		switch {
		case cl.JWKSFile != "":
			keys, err := readJWKS(cl.JWKSFile, "client "+cl.ID+": jwks_file")
			if err != nil {
				return sc, err
			}
			dc.Keys = keys
		case cl.SecretHash != "":
			h, err := delegation.ParseBcryptSecret(cl.SecretHash)
			if err != nil {
				return sc, err
			}
			dc.Secret = h
		case cl.Secret != "":
			dc.Secret = delegation.NewPlainSecret(cl.Secret)
		}
		// Neither: a client a workload rule names, authenticated by its
		// platform token only (delegation.New checks a rule names it).
		if e := cl.Ephemeral; e != nil {
			dc.Ephemeral = &delegation.Ephemeral{Scopes: e.Scopes, Audiences: e.Audiences, Groups: e.Groups}
		}
		sc.Clients = append(sc.Clients, dc)
	}
	for i, ti := range c.TrustedIssuers {
		keys, err := keyResolver(fmt.Sprintf("trusted_issuers[%d]", i), ti.Issuer, ti.KeySource)
		if err != nil {
			return sc, err
		}
		sc.TrustedIssuers = append(sc.TrustedIssuers, delegation.TrustedIssuer{Issuer: ti.Issuer, Audience: ti.Audience, Keys: keys})
	}
	return sc, c.issuersConfig(&sc)
}

// readJWKS reads the JWKS document at path, which the configuration names
// as key.
func readJWKS(path, key string) (*tokens.SetResolver, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", key, err)
	}
	keys, err := tokens.NewSetResolver(raw)
	if err != nil {
		return nil, fmt.Errorf("config: %s %s: %w", key, path, err)
	}
	return keys, nil
}

// CheckFiles reads every file a validated configuration names, as Start
// would — each client's and trusted issuer's jwks_file and the Cedar
// policies of policy.dir — and returns every problem (errors.Join), so a
// check (`mandate config check`) does not pass a configuration that serve
// would refuse at start.
func (c *Config) CheckFiles() error {
	var errs []error
	for _, cl := range c.Clients {
		if cl.JWKSFile != "" {
			if _, err := readJWKS(cl.JWKSFile, "client "+cl.ID+": jwks_file"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for i, ti := range c.TrustedIssuers {
		if _, err := keyResolver(fmt.Sprintf("trusted_issuers[%d]", i), ti.Issuer, ti.KeySource); err != nil {
			errs = append(errs, err)
		}
	}
	for i, wi := range c.WorkloadIssuers {
		if _, err := keyResolver(fmt.Sprintf("workload_issuers[%d]", i), wi.Issuer, wi.KeySource); err != nil {
			errs = append(errs, err)
		}
	}
	for i, ji := range c.IDJAGIssuers {
		if _, err := keyResolver(fmt.Sprintf("id_jag_issuers[%d]", i), ji.Issuer, ji.KeySource); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 { // the core's checks need every file read
		// What the core checks at start: rules naming clients, generated
		// names that could be a client's or collide with each other.
		sc, err := c.serviceConfig()
		if err == nil {
			err = delegation.CheckConfig(sc)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %w", err))
		}
	}
	if c.Policy.Dir != "" {
		if _, err := policy.LoadDir(c.Policy.Dir); err != nil {
			errs = append(errs, fmt.Errorf("config: policy.dir: %w", err))
		}
	}
	return errors.Join(errs...)
}
