package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Verdicts of `inspect` (the "verdict" of its JSON; exit 0, 1, 3).
const (
	verdictValid             = "valid"
	verdictRefused           = "refused"
	verdictRevocationUnknown = "revocation-unknown"
)

// inspectReport is what `inspect` found; its JSON field names are stable
// (docs/operators.md).
type inspectReport struct {
	Header inspectHeader `json:"header"`
	// Claims is the token's payload as it is (verified or not: see Verdict).
	Claims json.RawMessage `json:"claims"`
	// Verdict is valid (exit 0), refused (exit 1) or revocation-unknown
	// (exit 3: signature and claims pass, revocation not checked).
	Verdict string `json:"verdict"`
	// JWKS is where the verification keys came from.
	JWKS string `json:"jwks"`
	// Problems are the reasons the token is refused; empty otherwise.
	Problems   []string          `json:"problems"`
	Revocation inspectRevocation `json:"revocation"`

	claims *jwt.Claims
}

// inspectHeader is the JWS header's fields that matter; absent ones are "".
type inspectHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// inspectRevocation says whether, where and with what result revocation
// of the token and its ancestors was checked.
type inspectRevocation struct {
	Checked bool `json:"checked"`
	// Via is the server URL or data file asked.
	Via string `json:"via,omitempty"`
	// Status is not-revoked, revoked (the token itself), revoked-by-ancestor,
	// expired or unknown-token (no record there); empty when not checked.
	Status        string     `json:"status,omitempty"`
	RevokedJTI    string     `json:"revoked_jti,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	RevokedReason string     `json:"revoked_reason,omitempty"`
	// Ancestors is how many ancestors were checked with the token.
	Ancestors int `json:"ancestors"`
	// UncheckedBecause says why revocation is unknown (no server, no
	// credentials, the server unreachable).
	UncheckedBecause string `json:"unchecked_because,omitempty"`
}

func newInspectCmd() *cobra.Command {
	var f adminFlags
	var jwksSrc, issuer string
	cmd := &cobra.Command{
		Use:   "inspect TOKEN [--jwks URL|FILE]",
		Short: "Decode a token, verify it as a resource server would, check its chain's revocation, and say why it would be refused",
		Long: `Decode a token and print its chain; verify its signature against a JWKS (a
file, a URL, or the server's jwks_uri) and check its time and chain
structure, as a resource server would. With a server and admin credentials
(MANDATE_SERVER, MANDATE_CLIENT_ID, MANDATE_CLIENT_SECRET), or a data file
(--db), it also checks that neither the token nor any ancestor is revoked.

Exit status: 0 valid (revocation checked), 1 refused, 3 valid signature and
claims but revocation unknown (no server or credentials at hand: offline),
2 on error.`,
		Args: cobra.ExactArgs(1),
	}
	format := addFormatFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		r, err := inspectToken(cmd, &f, strings.TrimSpace(args[0]), jwksSrc, issuer)
		if err != nil {
			return err
		}
		if *format == "json" {
			if err := renderJSON(cmd.OutOrStdout(), r); err != nil {
				return err
			}
		} else {
			renderInspect(cmd.OutOrStdout(), r)
		}
		switch r.Verdict {
		case verdictRefused:
			return errRefused
		case verdictRevocationUnknown:
			return errRevocationUnknown
		}
		return nil
	}
	f.register(cmd)
	cmd.Flags().StringVar(&jwksSrc, "jwks", "", "JWKS file or URL (default: the server's jwks_uri)")
	cmd.Flags().StringVar(&issuer, "issuer", "", "expected issuer (optional)")
	return cmd
}

// inspectToken decodes, verifies and checks a token; an error means it
// could not be judged (no JWKS, not a JWT), not that it was refused.
func inspectToken(cmd *cobra.Command, f *adminFlags, token, jwksSrc, issuer string) (*inspectReport, error) {
	c, err := jwt.Unverified(token)
	if err != nil {
		return nil, fmt.Errorf("not a JWT: %w", err)
	}
	r := &inspectReport{Header: decodeHeader(token), Claims: rawPayload(token), Problems: []string{}, claims: c}
	base, id, secret, err := f.resolve(cmd)
	if err != nil {
		return nil, err
	}
	keys, source, err := loadJWKS(cmd.Context(), base, jwksSrc)
	if err != nil {
		return nil, err
	}
	r.JWKS = source
	payload, _, verr := tokens.Verify(token, keys, tokens.TypeAccessToken)
	if verr != nil {
		r.Problems = append(r.Problems, "signature: "+verr.Error())
	} else if vc, err := jwt.Parse(payload); err != nil {
		r.Problems = append(r.Problems, err.Error())
	} else {
		r.claims = vc
	}
	// The one claim check every verifier runs (package chain): the chain's
	// structure and scope, then issuer (when given) and time.
	now := clockNow()
	expect := chain.Expect{Issuer: issuer, Now: now, Leeway: 5 * time.Second}
	if _, err := expect.Check(r.claims); err != nil {
		p := err.Error()
		switch {
		case errors.Is(err, chain.ErrExpired):
			p = fmt.Sprintf("expired %s ago", now.Sub(r.claims.Expiry.Time()).Round(time.Second))
		case errors.Is(err, chain.ErrWrongIssuer):
			p = fmt.Sprintf("issuer %q, expected %q", r.claims.Issuer, issuer)
		}
		r.Problems = append(r.Problems, p)
	}
	if len(r.Problems) > 0 {
		r.Verdict = verdictRefused
		return r, nil
	}
	checkRevocation(cmd, f, r, base, id, secret)
	return r, nil
}

// checkRevocation asks the data file (--db) or the server's admin API for
// the token's lineage: the token and every ancestor, with their statuses.
// Without either, or when the server cannot be reached, revocation is
// unknown: the verdict says so, and never "valid".
func checkRevocation(cmd *cobra.Command, f *adminFlags, r *inspectReport, base, id, secret string) {
	rev := &r.Revocation
	var b backend
	switch {
	case f.db != "":
		fb, err := f.openFile(cmd)
		if err != nil {
			r.Verdict, rev.UncheckedBecause = verdictRevocationUnknown, err.Error()
			return
		}
		b, rev.Via = fb, f.db
	case base == "":
		r.Verdict, rev.UncheckedBecause = verdictRevocationUnknown, "no server: set MANDATE_SERVER (or --server) with admin credentials, or --db"
		return
	case id == "" || secret == "":
		r.Verdict, rev.UncheckedBecause = verdictRevocationUnknown, "no admin credentials: set MANDATE_CLIENT_ID and MANDATE_CLIENT_SECRET"
		return
	default:
		b, rev.Via = &apiBackend{base: base, id: id, secret: secret, http: &http.Client{Timeout: 10 * time.Second}}, base
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
	defer cancel()
	l, err := b.Lineage(ctx, r.claims.ID)
	switch {
	case errors.Is(err, delegation.ErrUnknownToken):
		rev.Checked, rev.Status = true, "unknown-token"
		r.Verdict = verdictRefused
		r.Problems = append(r.Problems, "no record of this token at "+rev.Via+" (never issued there, or collected after tokens.retention)")
		return
	case err != nil:
		r.Verdict, rev.UncheckedBecause = verdictRevocationUnknown, err.Error()
		return
	}
	rev.Checked, rev.Ancestors = true, len(l.Ancestors)
	n := l.Token
	switch n.Status {
	case delegation.StatusActive:
		if len(l.Missing) > 0 { // collected ancestors: their revocation cannot be read
			rev.Checked = false
			r.Verdict, rev.UncheckedBecause = verdictRevocationUnknown, "ancestor record(s) collected: "+strings.Join(l.Missing, ", ")
			return
		}
		rev.Status, r.Verdict = "not-revoked", verdictValid
		return
	case delegation.StatusExpired:
		rev.Status = "expired"
		r.Problems = append(r.Problems, "expired (by the clock of "+rev.Via+")")
	case delegation.StatusRevoked:
		rev.Status = "revoked"
		rev.RevokedJTI, rev.RevokedAt, rev.RevokedBy, rev.RevokedReason = n.JTI, n.RevokedAt, n.RevokedBy, n.RevokedReason
		r.Problems = append(r.Problems, "revoked ("+revokedText(n)+")")
	case delegation.StatusRevokedByAncestor:
		rev.Status, rev.RevokedJTI = "revoked-by-ancestor", n.RevokedAncestor
		text := "ancestor " + n.RevokedAncestor + " revoked"
		for _, a := range l.Ancestors {
			if a.JTI == n.RevokedAncestor {
				rev.RevokedAt, rev.RevokedBy, rev.RevokedReason = a.RevokedAt, a.RevokedBy, a.RevokedReason
				if t := revokedText(a); t != "" {
					text += " " + t
				}
			}
		}
		r.Problems = append(r.Problems, "revoked ("+text+")")
	default:
		rev.Status = n.Status
		r.Problems = append(r.Problems, "status "+n.Status)
	}
	r.Verdict = verdictRefused
}

// revokedText is when, by whom and why a node was revoked.
func revokedText(n *delegation.Node) string {
	var parts []string
	if n.RevokedAt != nil {
		parts = append(parts, ts(*n.RevokedAt))
	}
	if n.RevokedBy != "" {
		parts = append(parts, "by "+n.RevokedBy)
	}
	s := strings.Join(parts, " ")
	if n.RevokedReason != "" {
		s += fmt.Sprintf(": %q", n.RevokedReason)
	}
	return s
}

// renderInspect writes the report as text: the decoded token, then the
// verdict.
func renderInspect(w io.Writer, r *inspectReport) {
	c := r.claims
	orNone := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	fmt.Fprintf(w, "header   alg %s · kid %s · typ %s\n", orNone(r.Header.Alg), orNone(r.Header.Kid), orNone(r.Header.Typ))
	fmt.Fprintf(w, "jti      %s\niss      %s\nsub      %s\nholder   %s\n", c.ID, c.Issuer, c.Subject, c.ClientID)
	if c.Act != nil {
		fmt.Fprintf(w, "act      %s\n", strings.Join(c.Act.Path(), " ← "))
	}
	if len(c.Lineage) == 0 {
		fmt.Fprintln(w, "lineage  (none: a root token, depth 0)")
	} else {
		fmt.Fprintf(w, "lineage  %s (depth %d)\n", strings.Join(c.Lineage, " → "), len(c.Lineage))
	}
	fmt.Fprintf(w, "scope    %s\naud      %s\n", c.Scope, strings.Join(c.Audience, " "))
	fmt.Fprintf(w, "issued   %s\nexpires  %s\n", ts(c.IssuedAt.Time()), ts(c.Expiry.Time()))
	rev := r.Revocation
	checks := "signature by " + r.JWKS + ", not expired, chain well-formed"
	switch r.Verdict {
	case verdictValid:
		fmt.Fprintf(w, "verdict  valid: %s\n", checks)
		fmt.Fprintf(w, "         revocation checked: not revoked (the token and %d ancestor(s), at %s)\n", rev.Ancestors, rev.Via)
	case verdictRevocationUnknown:
		fmt.Fprintln(w, "verdict  valid signature; revocation unknown (offline)")
		fmt.Fprintf(w, "         %s\n", checks)
		fmt.Fprintf(w, "         revocation not checked: %s\n", rev.UncheckedBecause)
	default:
		if rev.Checked && len(r.Problems) == 1 { // the signature and claims passed; the server refused
			fmt.Fprintf(w, "verdict  REFUSED: %s\n", r.Problems[0])
			fmt.Fprintf(w, "         %s; revocation checked at %s\n", checks, rev.Via)
			return
		}
		fmt.Fprintf(w, "verdict  REFUSED (checked against %s):\n", r.JWKS)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "         - %s\n", p)
		}
	}
}

// loadJWKS reads the key set to verify against: --jwks (file or URL), or the
// JWKS of the server at base.
func loadJWKS(ctx context.Context, base, src string) (*tokens.SetResolver, string, error) {
	fromServer := src == ""
	if fromServer {
		if base == "" {
			return nil, "", errors.New("give --jwks FILE|URL, or --server / MANDATE_SERVER")
		}
		src = base + httpapi.PathJWKS
	}
	var raw []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		raw, err = fetch(ctx, src)
		if err = transportError(base, err); !fromServer {
			var unreachable *errUnreachable
			if errors.As(err, &unreachable) {
				unreachable.base, unreachable.jwks = src, true
			}
		}
	} else {
		raw, err = os.ReadFile(src)
	}
	if err != nil {
		var unreachable *errUnreachable
		if errors.As(err, &unreachable) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("JWKS %s: %w", src, err)
	}
	keys, err := tokens.NewSetResolver(raw)
	if err != nil {
		return nil, "", fmt.Errorf("JWKS %s: %w", src, err)
	}
	return keys, src, nil
}

func fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// decodeHeader reads a JWS header for display: a field that is absent, or
// not a string, is "" (shown as "(none)"), never Go's %!s(<nil>).
func decodeHeader(token string) inspectHeader {
	var h map[string]any
	part, _, _ := strings.Cut(token, ".")
	if raw, err := base64.RawURLEncoding.DecodeString(part); err == nil {
		_ = json.Unmarshal(raw, &h)
	}
	field := func(name string) string {
		switch v := h[name].(type) {
		case nil:
			return ""
		case string:
			return v
		default:
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	return inspectHeader{Alg: field("alg"), Kid: field("kid"), Typ: field("typ")}
}

// rawPayload is the token's payload, compacted, for the JSON report (null
// when it does not decode: jwt.Unverified accepted it, so it does).
func rawPayload(token string) json.RawMessage {
	parts := strings.SplitN(token, ".", 3)
	if len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) == nil {
				return buf.Bytes()
			}
		}
	}
	return json.RawMessage("null")
}
