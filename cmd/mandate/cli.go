package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", arg, cmd.CommandPath())
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
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
// bare host:port would otherwise fail with Go's "unsupported protocol scheme").
func checkServerURL(source, base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q must look like http://host:port", source, base)
	}
	return nil
}

// errAdminCredentials is the admin API's 401.
var errAdminCredentials = errors.New("the server refused the admin credentials (MANDATE_CLIENT_ID/MANDATE_CLIENT_SECRET)")

// errNotAdmin is the admin API's 403: the credentials are right, the client
// is not an admin.
type errNotAdmin struct{ client string }

func (e *errNotAdmin) Error() string {
	return fmt.Sprintf("client %q is not an admin client (role: admin in the config)", e.client)
}
