package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// The starter configuration's cast, the same as the demo's and the
// README's: an operator, an orchestrator, two registered agents and the API
// they call.
const (
	initConfigName = "mandate.yaml"
	initListen     = "127.0.0.1:8080"
	initAudience   = "https://orders.example"
)

// initClient is one client of the starter configuration.
type initClient struct {
	id, about string
	yaml      string // its registration without id and secret_hash, indented for the list
}

// initClients are the starter configuration's clients, in the file's order.
var initClients = []initClient{
	{id: "ops", about: "admin: the operator commands (MANDATE_CLIENT_ID)",
		yaml: "    role: admin                  # lineage, revoke, tokens, keys, audit\n"},
	{id: "orchestrator", about: "mints task tokens and delegates them, also to ephemeral agents",
		yaml: "    grants: [client_credentials, token_exchange]\n" +
			"    scopes: [\"db:read:*\", \"tools:*\"]      # the most any token it holds may carry\n" +
			"    audiences: [\"" + initAudience + "\"]\n" +
			"    groups: [orchestrators]      # Cedar: Group::\"orchestrators\"\n" +
			"    ephemeral:                   # unregistered agents orchestrator/<name>, each with its own key\n" +
			"      scopes: [\"db:read:*\"]\n" +
			"      audiences: [\"" + initAudience + "\"]\n" +
			"      groups: [research-agents]\n"},
	{id: "researcher", about: "an agent: receives delegated tokens, delegates further",
		yaml: "    grants: [token_exchange]     # it holds only what is delegated to it\n" +
			"    scopes: [\"db:read:*\", \"tools:search\"]\n" +
			"    audiences: [\"" + initAudience + "\"]\n" +
			"    groups: [research-agents]\n"},
	{id: "db-agent", about: "an agent: receives delegated tokens",
		yaml: "    grants: [token_exchange]\n" +
			"    scopes: [\"db:read:*\"]\n" +
			"    audiences: [\"" + initAudience + "\"]\n"},
	{id: "orders-api", about: "the API of " + initAudience + ": introspection and the revocation feed",
		yaml: "    role: resource_server        # verifies tokens for " + initAudience + "\n"},
}

func newInitCmd() *cobra.Command {
	var dir, issuer, listen string
	var format *string // set by addFormatFlag below
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a starter mandate.yaml with fresh client secrets",
		Long: `Write a starter configuration, DIR/mandate.yaml (mode 0600): Mandate on
--listen (` + initListen + `), its data in ./mandate-data, and five clients —
ops (admin), orchestrator, the agents researcher and db-agent, and
orders-api, the resource server of ` + initAudience + `.

--issuer is the URL clients use (http://<listen> when left out). An issuer on
this machine (127.0.0.1, localhost, ::1) without --listen is also where
Mandate listens, so the printed MANDATE_SERVER reaches it.

Each client gets a fresh random secret (256 bits). The file holds only their
bcrypt hashes; the secrets are printed here, once, with the environment the
operator commands need. An existing file is never replaced without --force
(which makes every secret it held stop working).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			issuer, listen, err = initAddresses(issuer, cmd.Flags().Changed("issuer"), listen, cmd.Flags().Changed("listen"))
			if err != nil {
				return err
			}
			secrets := make(map[string]string, len(initClients))
			var hashes []string
			for _, c := range initClients {
				s, err := newSecret()
				if err != nil {
					return err
				}
				h, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.DefaultCost)
				if err != nil {
					return fmt.Errorf("hash the secret of %s: %w", c.id, err)
				}
				secrets[c.id] = s
				hashes = append(hashes, string(h))
			}
			path := filepath.Join(dir, initConfigName)
			if err := writeInitConfig(path, starterConfig(issuer, listen, hashes), force); err != nil {
				return err
			}
			return printInitSecrets(cmd.OutOrStdout(), *format, path, issuer, secrets)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write "+initConfigName+" into (created if missing)")
	cmd.Flags().StringVar(&issuer, "issuer", "", "issuer URL: the iss of every token, the URL clients use (default http://<listen>)")
	cmd.Flags().StringVar(&listen, "listen", initListen, "host:port Mandate listens on; without it, a loopback --issuer's host and port")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing "+initConfigName+" (its secrets stop working)")
	format = addFormatFlag(cmd, "text", "json") // json: {"config", "server", "secrets": {id: secret}}
	return cmd
}

// initAddresses checks init's --issuer and --listen and fills in the one left
// out: a loopback issuer (127.0.0.1, localhost, ::1) is also where Mandate
// listens, and without --issuer the issuer is http://<listen>. Either way the
// issuer, which init prints as MANDATE_SERVER, is where Mandate answers.
func initAddresses(issuer string, issuerSet bool, listen string, listenSet bool) (string, string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", "", fmt.Errorf("--listen %q must be host:port, such as 127.0.0.1:8080", listen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("--listen %q must name a port from 1 to 65535, such as 127.0.0.1:8080 (port 0 would pick one at start, which no client could know)", listen)
	}
	if !issuerSet {
		if listenSet && (host == "" || net.ParseIP(host).IsUnspecified()) {
			return "", "", fmt.Errorf("--issuer is required when --listen (%q) binds every interface: give the URL clients use, such as --issuer https://mandate.example", listen)
		}
		return "http://" + listen, listen, nil
	}
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("--issuer %q must be an absolute http(s) URL without query or fragment, such as https://mandate.example", issuer)
	}
	if !listenSet && isLoopbackHost(u.Hostname()) {
		p := u.Port()
		if p == "" {
			p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		listen = net.JoinHostPort(u.Hostname(), p)
	}
	return issuer, listen, nil
}

// isLoopbackHost is whether host names this machine: localhost or a
// loopback address.
func isLoopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || (ip != nil && ip.IsLoopback())
}

// newSecret is 32 random bytes, base64url: what hash-secret --generate makes.
func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate a secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// starterConfig is the YAML of the starter configuration, hashes[i] being
// initClients[i]'s secret hash.
func starterConfig(issuer, listen string, hashes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Mandate's configuration, written by mandate init. Every key, its default
# and its range: README.md, "Configuration reference". Check a change with
# mandate config check --config %s before serving it.
issuer: %s
listen: %s
data_dir: ./mandate-data          # relative to this file; holds mandate.db
tokens: {root_ttl: 15m, delegated_ttl: 5m, max_depth: 4}
# policy: {dir: ./policies}       # Cedar policies decide every token request (docs/policy.md)
# deviation: {max_denials: 5, window: 1m}   # suspend an agent that keeps asking for more
clients:                          # secrets: bcrypt hashes only (mandate hash-secret makes more)
`, initConfigName, yamlScalar(issuer), yamlScalar(listen))
	for i, c := range initClients {
		fmt.Fprintf(&b, "  - id: %s\n    secret_hash: %q\n%s", c.id, hashes[i], c.yaml)
	}
	return b.String()
}

// plainScalar is text YAML reads as itself without quotes.
var plainScalar = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@%+~-]*$`)

// yamlScalar is s written for a YAML value: as it is when that reads back
// the same, quoted otherwise ("[::1]:8080" would be a list, ":8080" is no
// plain scalar).
func yamlScalar(s string) string {
	if plainScalar.MatchString(s) && !strings.HasSuffix(s, ":") {
		return s
	}
	return strconv.Quote(s)
}

// writeInitConfig writes the configuration at path with mode 0600: never
// over an existing file without force, and with force by replacing it whole
// (a new file renamed over it), so no reader sees half of one.
func writeInitConfig(path, content string, force bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists and was left as it is: use --force to replace it (the secrets it holds would stop working), or --dir to write elsewhere", path)
		}
		if err != nil {
			return err
		}
		if _, err := f.WriteString(content); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(dir, "."+initConfigName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// printInitSecrets prints each client's secret, once, and what to run next.
func printInitSecrets(w io.Writer, format, path, issuer string, secrets map[string]string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Config  string            `json:"config"`
			Server  string            `json:"server"`
			Secrets map[string]string `json:"secrets"`
		}{path, issuer, secrets})
	}
	fmt.Fprintf(w, "Wrote %s (mode 0600).\n\n", path)
	fmt.Fprintln(w, "Each client's secret, shown this once (the file holds only its bcrypt hash):")
	for _, c := range initClients {
		fmt.Fprintf(w, "  %-13s %s  %s\n", c.id, secrets[c.id], c.about)
	}
	fmt.Fprintf(w, "\nNext:\n")
	fmt.Fprintf(w, "  mandate config check --config %s\n", path)
	fmt.Fprintf(w, "  mandate serve --config %s\n", path)
	fmt.Fprintf(w, "\nThe operator commands (mandate lineage, revoke, tokens, keys, audit) as ops:\n")
	fmt.Fprintf(w, "  export MANDATE_SERVER=%s MANDATE_CLIENT_ID=ops MANDATE_CLIENT_SECRET=%s\n", issuer, secrets["ops"])
	return nil
}
