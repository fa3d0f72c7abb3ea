package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/tokens"
)

func newConfigCmd() *cobra.Command {
	cmd := groupCmd(&cobra.Command{Use: "config", Short: "Check a configuration before serving it"})
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	var format *string // set by addFormatFlag below
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Load the configuration as serve would and print what it would run with, or every problem",
		Long: `Load the configuration as serve would: --config, MANDATE_* environment
variables and serve's flags (--listen, --data-dir, --issuer), in increasing
precedence, then read every file it names (JWKS documents, the policy
directory). Print every key with the value serve would use, secrets masked,
and the warnings (exit 0); or every problem found (exit 2). Problems in a
value's type (a duration without a unit, a word for a number) are reported
before, and instead of, the other checks, and a last line says so.

--format json prints {"ok", "config", "warnings", "errors", "note"}
(docs/operators.md).`,
		Args: configFileArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			r := checkConfig(path, cmd.Flags())
			out := cmd.OutOrStdout()
			if *format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printCheckReport(out, path, r)
			}
			if !r.OK {
				return fmt.Errorf("the configuration has %d problem(s): serve would refuse it", len(r.Errors))
			}
			return nil
		},
	}
	format = addFormatFlag(cmd, "text", "json")
	// serve's flags, so that a check sees what serve's command line would.
	cmd.Flags().String("listen", "", "listen address, host:port (config key listen)")
	cmd.Flags().String("data-dir", "", "directory of mandate.db (config key data_dir)")
	cmd.Flags().String("issuer", "", "issuer URL (config key issuer)")
	return cmd
}

// checkReport is what `config check` prints: with --format json exactly
// this shape (documented in docs/operators.md).
type checkReport struct {
	OK       bool         `json:"ok"`
	Config   *shownConfig `json:"config"`
	Warnings []string     `json:"warnings"`
	Errors   []string     `json:"errors"`
	// Note says what the errors leave out: "" but when type problems stopped
	// the other checks (typesFirst).
	Note string `json:"note"`
}

// typesFirst is the note of a report whose errors are problems of the
// values' types, which hide the others until they are fixed.
const typesFirst = "fix these first: the other keys are checked once every value has its type"

// checkConfig loads and checks the configuration as serve would (Load, then
// the files it names), keeping every problem and every warning.
func checkConfig(path string, flags *pflag.FlagSet) checkReport {
	r := checkReport{Warnings: []string{}, Errors: []string{}}
	cfg, warnings, err := server.Load(path, flags)
	r.Warnings = append(r.Warnings, warnings...)
	if err == nil {
		err = cfg.CheckFiles()
	}
	if err != nil {
		r.Errors = problems(err)
		if errors.Is(err, server.ErrValueTypes) {
			r.Note = typesFirst
		}
		return r
	}
	r.OK, r.Config = true, showConfig(cfg)
	return r
}

// problems lists a joined error's problems (errors.Join, or any error with
// Unwrap() []error), one each; a single error is one problem, its lines
// joined into one.
func problems(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return []string{strings.Join(lines, " ")}
}

// shownConfig is the configuration as serve would run with it, keyed as in
// the file; derived defaults are filled in (issuer, the revocation budget,
// the cache bound, the deviation kinds) and secrets are masked.
type shownConfig struct {
	Issuer  string `json:"issuer"`
	Listen  string `json:"listen"`
	DataDir string `json:"data_dir"`
	Store   struct {
		Postgres struct {
			DSN     string `json:"dsn"` // passwords masked
			DSNFile string `json:"dsn_file"`
			Replica string `json:"replica"`
		} `json:"postgres"`
	} `json:"store"`
	Signing struct {
		Alg     string `json:"alg"`
		KEK     string `json:"kek"`
		KEKFile string `json:"kek_file"`
	} `json:"signing"`
	Tokens struct {
		RootTTL      string `json:"root_ttl"`
		DelegatedTTL string `json:"delegated_ttl"`
		MaxDepth     int    `json:"max_depth"`
		Retention    string `json:"retention"`
	} `json:"tokens"`
	Policy struct {
		Dir string `json:"dir"`
	} `json:"policy"`
	Deviation struct {
		MaxDenials int      `json:"max_denials"`
		Window     string   `json:"window"`
		Count      []string `json:"count"`
	} `json:"deviation"`
	Audit struct {
		Retention string `json:"retention"`
	} `json:"audit"`
	RateLimit struct {
		PerSecond           float64 `json:"per_second"`
		Burst               int     `json:"burst"`
		RevocationPerSecond float64 `json:"revocation_per_second"`
		RevocationBurst     int     `json:"revocation_burst"`
	} `json:"rate_limit"`
	HTTP struct {
		TrustedProxies []string `json:"trusted_proxies"`
	} `json:"http"`
	Cache struct {
		MaxBytes int64 `json:"max_bytes"`
	} `json:"cache"`
	Log struct {
		Format string `json:"format"`
		Level  string `json:"level"`
	} `json:"log"`
	Clients         []shownClient         `json:"clients"`
	TrustedIssuers  []shownTrustedIssuer  `json:"trusted_issuers"`
	WorkloadIssuers []shownWorkloadIssuer `json:"workload_issuers"`
	IDJAGIssuers    []shownIDJAGIssuer    `json:"id_jag_issuers"`

	notes map[string]string // key → how a derived value was derived (text only)
}

// shownClient is one registration; Secret and SecretHash are masked.
type shownClient struct {
	ID         string          `json:"id"`
	Secret     string          `json:"secret,omitempty"`
	SecretHash string          `json:"secret_hash,omitempty"`
	JWKSFile   string          `json:"jwks_file,omitempty"`
	Grants     []string        `json:"grants"`
	Scopes     []string        `json:"scopes"`
	Audiences  []string        `json:"audiences"`
	Groups     []string        `json:"groups"`
	Role       string          `json:"role"`
	Ephemeral  *shownEphemeral `json:"ephemeral,omitempty"`
	Serves     []string        `json:"serves,omitempty"`
}

// shownEphemeral is a client's ceiling for its ephemeral agents.
type shownEphemeral struct {
	Scopes    []string `json:"scopes"`
	Audiences []string `json:"audiences"`
	Groups    []string `json:"groups"`
}

// shownTrustedIssuer is one trusted external identity provider.
type shownTrustedIssuer struct {
	Issuer string `json:"issuer"`
	shownKeySource
	Audience string `json:"audience"`
}

// shownKeySource is where an issuer's keys come from: one of the three.
type shownKeySource struct {
	JWKSFile  string `json:"jwks_file,omitempty"`
	JWKSURL   string `json:"jwks_url,omitempty"`
	Discovery bool   `json:"discovery,omitempty"`
	CAFile    string `json:"ca_file,omitempty"`
}

// shownWorkloadIssuer is one workload platform and its mapping rules.
type shownWorkloadIssuer struct {
	Issuer      string `json:"issuer,omitempty"`
	TrustDomain string `json:"trust_domain,omitempty"`
	shownKeySource
	Audience    string      `json:"audience"`
	MaxLifetime string      `json:"max_lifetime"`
	SingleUse   bool        `json:"single_use"`
	Rules       []shownRule `json:"rules"`
}

// shownRule is one mapping rule: a client, or an agent template and its ceiling.
type shownRule struct {
	Match     map[string]string `json:"match"`
	Client    string            `json:"client,omitempty"`
	Agent     string            `json:"agent,omitempty"`
	Scopes    []string          `json:"scopes,omitempty"`
	Audiences []string          `json:"audiences,omitempty"`
	Groups    []string          `json:"groups,omitempty"`
}

// shownIDJAGIssuer is one enterprise IdP whose ID-JAGs are redeemed.
type shownIDJAGIssuer struct {
	Issuer string `json:"issuer"`
	shownKeySource
	Audience    string `json:"audience"`
	MaxLifetime string `json:"max_lifetime"`
}

func keySource(k server.KeySource) shownKeySource {
	return shownKeySource{JWKSFile: k.JWKSFile, JWKSURL: k.JWKSURL, Discovery: k.Discovery, CAFile: k.CAFile}
}

// where says in words where keys come from, for the text report.
func (k shownKeySource) where() string {
	w := "jwks_file " + k.JWKSFile
	switch {
	case k.JWKSURL != "":
		w = "jwks_url " + k.JWKSURL
	case k.Discovery:
		w = "discovery (the issuer's OpenID configuration)"
	}
	if k.CAFile != "" {
		w += ", ca_file " + k.CAFile
	}
	return w
}

// masked is what a set secret is shown as.
const masked = "***"

// showConfig turns a loaded configuration into what is shown.
func showConfig(c *server.Config) *shownConfig {
	s := &shownConfig{Issuer: c.Issuer, Listen: c.Listen, DataDir: c.DataDir, notes: map[string]string{}}
	if s.Issuer == "" {
		// Serve's issuer is the address it binds: with port 0, the one the
		// system picks at start.
		s.Issuer = "http://" + c.Listen
		if host, port, err := net.SplitHostPort(c.Listen); err == nil && port == "0" {
			s.Issuer = "http://" + net.JoinHostPort(host, "<the port serve binds>")
		}
		s.notes["issuer"] = "from listen"
	}
	if pg := c.Store.Postgres; pg.Enabled() {
		s.Store.Postgres.DSN, s.Store.Postgres.DSNFile, s.Store.Postgres.Replica = pg.MaskedDSN(), pg.DSNFile, pg.Replica
		if pg.DSNFile != "" {
			s.notes["store.postgres.dsn"] = "read from store.postgres.dsn_file, password masked"
		} else if s.Store.Postgres.DSN != pg.DSN {
			s.notes["store.postgres.dsn"] = "password masked"
		}
		if pg.Replica == "" {
			s.notes["store.postgres.replica"] = "the host name"
		}
		s.notes["data_dir"] = "unused: the store is PostgreSQL"
	}
	s.Signing.Alg, s.Signing.KEKFile = c.Signing.Alg, c.Signing.KEKFile
	if c.Signing.KEK != "" {
		s.Signing.KEK = masked
	}
	s.Tokens.RootTTL, s.Tokens.DelegatedTTL = durationText(c.Tokens.RootTTL), durationText(c.Tokens.DelegatedTTL)
	s.Tokens.MaxDepth, s.Tokens.Retention = c.Tokens.MaxDepth, durationText(c.Tokens.Retention)
	s.Policy.Dir = c.Policy.Dir
	s.Deviation.MaxDenials, s.Deviation.Window = c.Deviation.MaxDenials, durationText(c.Deviation.Window)
	s.Deviation.Count = c.Deviation.Count
	if len(s.Deviation.Count) == 0 {
		s.Deviation.Count = delegation.DefaultDeviationKinds
		s.notes["deviation.count"] = "the default: every kind but depth"
	}
	if c.Deviation.MaxDenials == 0 {
		s.notes["deviation.max_denials"] = "off"
	}
	s.Audit.Retention = durationText(c.Audit.Retention)
	rl := c.RateLimit
	s.RateLimit.PerSecond, s.RateLimit.Burst = rl.PerSecond, rl.Burst
	s.RateLimit.RevocationPerSecond, s.RateLimit.RevocationBurst = rl.RevocationPerSecond, rl.RevocationBurst
	switch {
	case rl.PerSecond == 0 && rl.RevocationPerSecond == 0:
		s.notes["rate_limit.per_second"] = "off"
		s.notes["rate_limit.revocation_per_second"] = "off, as rate_limit.per_second is"
	case rl.PerSecond == 0:
		s.notes["rate_limit.per_second"] = "off"
	case rl.RevocationPerSecond == 0:
		s.RateLimit.RevocationPerSecond = rl.PerSecond * httpapi.RevocationFactor
		s.RateLimit.RevocationBurst = rl.Burst * httpapi.RevocationFactor
		s.notes["rate_limit.revocation_per_second"] = fmt.Sprintf("%d × rate_limit.per_second", httpapi.RevocationFactor)
		s.notes["rate_limit.revocation_burst"] = fmt.Sprintf("%d × rate_limit.burst", httpapi.RevocationFactor)
	}
	s.HTTP.TrustedProxies = orEmpty(c.HTTP.TrustedProxies)
	s.Cache.MaxBytes = c.Cache.MaxBytes
	if s.Cache.MaxBytes == 0 {
		s.Cache.MaxBytes = tokens.DefaultCacheBytes
		s.notes["cache.max_bytes"] = "the default, 32 MiB"
	}
	s.Log.Format, s.Log.Level = c.Log.Format, c.Log.Level
	if s.Log.Format == "" {
		s.Log.Format = "json"
	}
	if s.Log.Level == "" {
		s.Log.Level = "info"
	}
	s.Clients = []shownClient{}
	for _, cl := range c.Clients {
		sc := shownClient{ID: cl.ID, JWKSFile: cl.JWKSFile, Grants: orEmpty(cl.Grants), Scopes: orEmpty(cl.Scopes),
			Audiences: orEmpty(cl.Audiences), Groups: orEmpty(cl.Groups), Role: cl.Role, Serves: cl.Serves}
		if cl.Secret != "" {
			sc.Secret = masked
		}
		if cl.SecretHash != "" {
			sc.SecretHash = "bcrypt"
			if cost, err := bcrypt.Cost([]byte(cl.SecretHash)); err == nil {
				sc.SecretHash = fmt.Sprintf("bcrypt(cost %d)", cost)
			}
		}
		if e := cl.Ephemeral; e != nil {
			sc.Ephemeral = &shownEphemeral{Scopes: orEmpty(e.Scopes), Audiences: orEmpty(e.Audiences), Groups: orEmpty(e.Groups)}
		}
		s.Clients = append(s.Clients, sc)
	}
	s.TrustedIssuers = []shownTrustedIssuer{}
	for _, ti := range c.TrustedIssuers {
		aud := ti.Audience
		if aud == "" {
			aud = s.Issuer
		}
		s.TrustedIssuers = append(s.TrustedIssuers, shownTrustedIssuer{Issuer: ti.Issuer, shownKeySource: keySource(ti.KeySource), Audience: aud})
	}
	orIssuer := func(a string) string {
		if a == "" {
			return s.Issuer
		}
		return a
	}
	s.WorkloadIssuers = []shownWorkloadIssuer{}
	for _, wi := range c.WorkloadIssuers {
		sw := shownWorkloadIssuer{Issuer: wi.Issuer, TrustDomain: wi.TrustDomain, shownKeySource: keySource(wi.KeySource),
			Audience: orIssuer(wi.Audience), MaxLifetime: durationText((&workload.Issuer{MaxLifetime: wi.MaxLifetime}).Lifetime()), SingleUse: wi.SingleUse, Rules: []shownRule{}}
		for _, r := range wi.Rules {
			sw.Rules = append(sw.Rules, shownRule{Match: r.Match, Client: r.Client, Agent: r.Agent, Scopes: r.Scopes, Audiences: r.Audiences, Groups: r.Groups})
		}
		s.WorkloadIssuers = append(s.WorkloadIssuers, sw)
	}
	s.IDJAGIssuers = []shownIDJAGIssuer{}
	for _, ji := range c.IDJAGIssuers {
		s.IDJAGIssuers = append(s.IDJAGIssuers, shownIDJAGIssuer{Issuer: ji.Issuer, shownKeySource: keySource(ji.KeySource),
			Audience: s.Issuer, MaxLifetime: durationText((&workload.IDJAGIssuer{MaxLifetime: ji.MaxLifetime}).Lifetime())})
	}
	return s
}

// orEmpty keeps JSON lists lists: [] rather than null.
func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// durationText writes d as in the configuration: 24h, not 24h0m0s.
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// printCheckReport writes the report for a person: the verdict, every key
// with its value (and how a derived one was derived), the clients, the
// trusted issuers, then the warnings or the problems.
func printCheckReport(w io.Writer, path string, r checkReport) {
	source := "no --config file (defaults and MANDATE_* environment)"
	if path != "" {
		source = path
	}
	if !r.OK {
		fmt.Fprintf(w, "%s: %d problem(s); serve would refuse to start:\n", source, len(r.Errors))
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  - %s\n", e)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "%s\n", r.Note)
		}
		printWarnings(w, r.Warnings)
		return
	}
	c := r.Config
	fmt.Fprintf(w, "%s: OK; serve would run with:\n\n", source)
	text := func(s string) string {
		if s == "" {
			return "(not set)"
		}
		return s
	}
	list := func(l []string) string {
		if len(l) == 0 {
			return "(none)"
		}
		return strings.Join(l, " ")
	}
	number := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	kek := "(not set)"
	if c.Signing.KEK != "" {
		kek = masked + " (set)"
	}
	rows := [][2]string{
		{"issuer", c.Issuer},
		{"listen", c.Listen},
		{"data_dir", c.DataDir},
		{"store.postgres.dsn", text(c.Store.Postgres.DSN)},
		{"store.postgres.dsn_file", text(c.Store.Postgres.DSNFile)},
		{"store.postgres.replica", text(c.Store.Postgres.Replica)},
		{"signing.alg", c.Signing.Alg},
		{"signing.kek", kek},
		{"signing.kek_file", text(c.Signing.KEKFile)},
		{"tokens.root_ttl", c.Tokens.RootTTL},
		{"tokens.delegated_ttl", c.Tokens.DelegatedTTL},
		{"tokens.max_depth", strconv.Itoa(c.Tokens.MaxDepth)},
		{"tokens.retention", c.Tokens.Retention},
		{"policy.dir", text(c.Policy.Dir)},
		{"deviation.max_denials", strconv.Itoa(c.Deviation.MaxDenials)},
		{"deviation.window", c.Deviation.Window},
		{"deviation.count", list(c.Deviation.Count)},
		{"audit.retention", c.Audit.Retention},
		{"rate_limit.per_second", number(c.RateLimit.PerSecond)},
		{"rate_limit.burst", strconv.Itoa(c.RateLimit.Burst)},
		{"rate_limit.revocation_per_second", number(c.RateLimit.RevocationPerSecond)},
		{"rate_limit.revocation_burst", strconv.Itoa(c.RateLimit.RevocationBurst)},
		{"http.trusted_proxies", list(c.HTTP.TrustedProxies)},
		{"cache.max_bytes", strconv.FormatInt(c.Cache.MaxBytes, 10)},
		{"log.format", c.Log.Format},
		{"log.level", c.Log.Level},
	}
	for _, row := range rows {
		line := fmt.Sprintf("%-33s %s", row[0], row[1])
		if n := c.notes[row[0]]; n != "" {
			line += " (" + n + ")"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "\nclients (%d):\n", len(c.Clients))
	for _, cl := range c.Clients {
		fmt.Fprintf(w, "  %s\n", cl.ID)
		field := func(k, v string) { fmt.Fprintf(w, "    %-17s %s\n", k, v) }
		switch {
		case cl.SecretHash != "":
			field("secret_hash", cl.SecretHash)
		case cl.Secret != "":
			field("secret", cl.Secret+" (in clear)")
		case cl.JWKSFile != "":
			field("jwks_file", cl.JWKSFile)
		}
		field("role", text(cl.Role))
		field("grants", list(cl.Grants))
		field("scopes", list(cl.Scopes))
		field("audiences", list(cl.Audiences))
		field("groups", list(cl.Groups))
		if e := cl.Ephemeral; e != nil {
			field("ephemeral", "scopes "+list(e.Scopes)+"; audiences "+list(e.Audiences)+"; groups "+list(e.Groups))
		}
		if len(cl.Serves) > 0 {
			field("serves", list(cl.Serves))
		}
	}
	if len(c.TrustedIssuers) > 0 {
		fmt.Fprintf(w, "\ntrusted_issuers (%d):\n", len(c.TrustedIssuers))
		for _, ti := range c.TrustedIssuers {
			fmt.Fprintf(w, "  %s\n    %-17s %s\n    %-17s %s\n", ti.Issuer, "keys", ti.where(), "audience", ti.Audience)
		}
	}
	if len(c.WorkloadIssuers) > 0 {
		fmt.Fprintf(w, "\nworkload_issuers (%d):\n", len(c.WorkloadIssuers))
		for _, wi := range c.WorkloadIssuers {
			name := wi.Issuer
			if name == "" {
				name = "trust_domain " + wi.TrustDomain
			}
			fmt.Fprintf(w, "  %s\n    %-17s %s\n    %-17s %s\n    %-17s %s\n    %-17s %v\n", name, "keys", wi.where(),
				"audience", wi.Audience, "max_lifetime", wi.MaxLifetime, "single_use", wi.SingleUse)
			for i, r := range wi.Rules {
				keys := make([]string, 0, len(r.Match))
				for k := range r.Match {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				var match []string
				for _, k := range keys {
					match = append(match, k+"="+r.Match[k])
				}
				to := "client " + r.Client
				if r.Agent != "" {
					to = "agent " + r.Agent + "; scopes " + list(r.Scopes) + "; audiences " + list(r.Audiences) + "; groups " + list(r.Groups)
				}
				fmt.Fprintf(w, "    rule %d: %s → %s\n", i, strings.Join(match, " "), to)
			}
		}
	}
	if len(c.IDJAGIssuers) > 0 {
		fmt.Fprintf(w, "\nid_jag_issuers (%d):\n", len(c.IDJAGIssuers))
		for _, ji := range c.IDJAGIssuers {
			fmt.Fprintf(w, "  %s\n    %-17s %s\n    %-17s %s\n    %-17s %s\n", ji.Issuer, "keys", ji.where(), "audience", ji.Audience, "max_lifetime", ji.MaxLifetime)
		}
	}
	printWarnings(w, r.Warnings)
}

// printWarnings lists the warnings, if any, after a blank line.
func printWarnings(w io.Writer, warnings []string) {
	if len(warnings) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwarnings (%d):\n", len(warnings))
	for _, m := range warnings {
		fmt.Fprintf(w, "  - %s\n", m)
	}
}
