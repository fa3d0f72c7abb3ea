package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/delegation"
)

// Exit statuses (docs/operators.md): 0 success, 1 a negative verdict already
// printed (errDenied), 2 an error, 3 `inspect` of a token whose signature and
// claims pass but whose revocation could not be checked (errRevocationUnknown).
const (
	exitOK                = 0
	exitDenied            = 1
	exitError             = 2
	exitRevocationUnknown = 3
)

// errRevocationUnknown makes `inspect` exit 3 after printing its verdict: the
// token's signature and claims pass, but no server or data file was at hand
// to check that neither it nor an ancestor is revoked.
var errRevocationUnknown = errors.New("valid signature; revocation unknown (offline)")

// exitCode maps a command's error to the process's exit status, and says
// whether the error is still to be printed (a verdict is already printed).
func exitCode(err error) (code int, show bool) {
	switch {
	case err == nil:
		return exitOK, false
	case errors.Is(err, errDenied):
		return exitDenied, false
	case errors.Is(err, errRevocationUnknown):
		return exitRevocationUnknown, false
	}
	return exitError, true
}

// groupCmd makes cmd a command that only holds subcommands refuse anything
// else: cobra checks a subcommand's name only on the root, so without this
// `mandate audit verfy` would print help and exit 0 (a CI step "passes").
// Alone, the group prints its help.
func groupCmd(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return unknownCommand(cmd, args[0])
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

// unknownCommand is cobra's error for an unknown subcommand, with its
// suggestions (Levenshtein distance 2, or a prefix).
func unknownCommand(cmd *cobra.Command, arg string) error {
	return fmt.Errorf("unknown command %q for %q%s", arg, cmd.CommandPath(), suggestions(cmd, arg))
}

// suggestions is cobra's "Did you mean this?" paragraph for arg among
// cmd's subcommands, or "" when none is close.
func suggestions(cmd *cobra.Command, arg string) string {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		return "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return ""
}

// errUnknownJTI names the jti the server (or data file) has no record of,
// once: the store's own error says the same thing without the jti.
type errUnknownJTI struct{ jti string }

func (e *errUnknownJTI) Error() string {
	return fmt.Sprintf("no token with jti %q (never issued here, or collected after tokens.retention)", e.jti)
}

func (e *errUnknownJTI) Unwrap() error { return delegation.ErrUnknownToken }

// nameUnknown replaces an unknown-token error with one naming jti.
func nameUnknown(err error, jti string) error {
	if jti != "" && errors.Is(err, delegation.ErrUnknownToken) {
		return &errUnknownJTI{jti}
	}
	return err
}

// errUnreachable says the server (or a --jwks URL) could not be reached,
// and what to check.
type errUnreachable struct {
	base string
	err  error
	jwks bool // base is a --jwks URL, not the server
}

func (e *errUnreachable) Error() string {
	if e.jwks {
		return fmt.Sprintf("cannot fetch the JWKS at %s: %s (check --jwks)", e.base, netCause(e.err))
	}
	return fmt.Sprintf("cannot reach the server at %s: %s — is \"mandate serve\" running there? (set --server or MANDATE_SERVER)", e.base, netCause(e.err))
}

func (e *errUnreachable) Unwrap() error { return e.err }

// transportError explains an HTTP client error: a network failure becomes
// errUnreachable; the command's own cancellation (Ctrl-C) stays as it is.
func transportError(base string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, http.ErrSchemeMismatch) {
		return &errSchemeMismatch{base: base}
	}
	var op *net.OpError
	var dns *net.DNSError
	var ue *url.Error
	if errors.As(err, &op) || errors.As(err, &dns) || (errors.As(err, &ue) && ue.Timeout()) {
		return &errUnreachable{base: base, err: err}
	}
	return err
}

// netCause is the part of a network error an operator acts on, without Go's
// "Get URL: dial tcp ADDR:" prefix.
func netCause(err error) string {
	var dns *net.DNSError
	var ue *url.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("no such host %q", dns.Name)
	case errors.As(err, &ue) && ue.Timeout():
		return "timed out"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// checkServerURL refuses a server address that is not an http(s) URL (a
// bare host:port would otherwise fail with Go's "unsupported protocol
// scheme"), one that carries credentials (they would be echoed in every
// message naming the server; the admin credentials have their own
// variables), and one with a query or fragment (the CLI appends the API's
// paths to it). The address is never printed when it carries credentials.
func checkServerURL(source, base string) error {
	u, err := url.Parse(base)
	if (err == nil && u.User != nil) || hasUserinfo(base) {
		return fmt.Errorf("%s must not carry credentials: set MANDATE_CLIENT_ID and MANDATE_CLIENT_SECRET", source)
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q must look like http://host:port", source, base)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(base, "#") {
		return fmt.Errorf("%s %q must not carry a query or fragment: give Mandate's own URL (its issuer), such as https://mandate.example", source, base)
	}
	return nil
}

// hasUserinfo reports whether s, parsed or not, has "user@" or
// "user:password@" before its host: "ops:pw@host:8080" has no scheme url.Parse
// accepts, yet holds a password all the same.
func hasUserinfo(s string) bool {
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	return strings.Contains(s, "@")
}

// redactURL is a URL as it may be printed: its password, if any, replaced
// (url.URL.Redacted); a string that does not parse as a URL but carries
// credentials is printed only from its host on.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil && u.Host != "" {
		return u.Redacted()
	}
	if hasUserinfo(s) {
		scheme, rest, ok := strings.Cut(s, "://")
		if !ok {
			scheme, rest = "", s
		} else {
			scheme += "://"
		}
		i := strings.IndexAny(rest, "/?#")
		if i < 0 {
			i = len(rest)
		}
		return scheme + "xxxxx@" + rest[strings.LastIndex(rest[:i], "@")+1:]
	}
	return s
}

// errNoEndpoint is a 404 from a path of Mandate's API: the server there is
// not Mandate, or the address has a path Mandate does not serve under.
type errNoEndpoint struct {
	base, source, endpoint string
}

func (e *errNoEndpoint) Error() string {
	hint := fmt.Sprintf("is %s Mandate's own URL (its issuer)?", e.source)
	if e.source == sourceConfig {
		hint = "is the issuer of --config where the server answers?"
	}
	return fmt.Sprintf("the server at %s has no %s endpoint: %s", e.base, e.endpoint, hint)
}

// errSchemeMismatch is an https:// address of a server that speaks http.
type errSchemeMismatch struct{ base string }

func (e *errSchemeMismatch) Error() string {
	return fmt.Sprintf("the server at %s speaks http, not https: use http://%s", e.base, strings.TrimPrefix(e.base, "https://"))
}

func (e *errSchemeMismatch) Unwrap() error { return http.ErrSchemeMismatch }

// errAdminCredentials is the admin API's 401.
var errAdminCredentials = errors.New("the server refused the admin credentials (MANDATE_CLIENT_ID/MANDATE_CLIENT_SECRET)")

// errNotAdmin is the admin API's 403: the credentials are right, the client
// is not an admin.
type errNotAdmin struct{ client string }

func (e *errNotAdmin) Error() string {
	return fmt.Sprintf("client %q is not an admin client (role: admin in the config)", e.client)
}

// configFileArgs is the Args of the commands that read a configuration
// (serve, config check): they take no argument, and a file given as one
// (`mandate serve mandate.yaml`) is answered with the flag that passes it,
// not with "unknown command".
func configFileArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if ext := strings.ToLower(path.Ext(args[0])); ext == ".yaml" || ext == ".yml" {
			return fmt.Errorf("pass the configuration with --config %s", args[0])
		}
	}
	return cobra.NoArgs(cmd, args)
}

// newHelpCmd is `mandate help [command]`: cobra's own prints "Unknown help
// topic" and the usage and exits 0 for a topic that does not exist, so a
// typo passes in a script; this one exits 2 with `unknown help topic "foo"`
// and cobra's suggestions. It takes effect once the root installs it
// (root.SetHelpCommand(newHelpCmd()) in newRootCmd).
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help provides help for any command in the application.\nSimply type mandate help [path to command] for full details.",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, sub.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 {
				parent := c.Root()
				if cmd != nil && err == nil {
					parent = cmd // a known command, then an unknown subcommand
				}
				return fmt.Errorf("unknown help topic %q%s", strings.Join(args, " "), suggestions(parent, args[len(args)-1]))
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}
