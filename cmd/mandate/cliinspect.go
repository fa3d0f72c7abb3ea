package main

import (
	"bytes"
	"cmp"
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
	// unknown is why revocation is unknown, in the verdict's words: offline,
	// or what the server or data file answered.
	unknown string
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
	// expired, unknown-token (no record there) or key-compromised (signed
	// by a key withdrawn by an emergency rotation); empty when not checked.
	Status        string     `json:"status,omitempty"`
	RevokedJTI    string     `json:"revoked_jti,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	RevokedReason string     `json:"revoked_reason,omitempty"`
	// KeyWithdrawnAt is when the key that signed the token was withdrawn as
	// compromised (status key-compromised).
	KeyWithdrawnAt *time.Time `json:"key_withdrawn_at,omitempty"`
	// Ancestors is how many ancestors were checked with the token.
	Ancestors int `json:"ancestors"`
	// UncheckedBecause says why revocation is unknown (no server, no
	// credentials, the server unreachable or refusing the credentials).
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

TOKEN is the token itself; a pasted "Bearer TOKEN" or "DPoP TOKEN" is read
as TOKEN. With a server at hand, a token signed by a key withdrawn by
"keys rotate --compromised" is refused even when --jwks still lists the key.

Exit status: 0 valid (revocation checked), 1 refused, 3 valid signature and
claims but revocation unknown (no server or credentials at hand, or the
server refused them), 2 on error.`,
		Args: cobra.ExactArgs(1),
	}
	format := addFormatFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		token, err := tokenArg(args[0])
		if err != nil {
			return err
		}
		r, err := inspectToken(cmd, &f, token, jwksSrc, issuer)
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

// tokenArg reads inspect's argument as a token: a pasted Authorization
// header's value ("Bearer TOKEN", "DPoP TOKEN", any case, with or without
// "Authorization:") is the token it carries; a pasted token response is
// answered with what to pass instead. The token itself is never echoed.
func tokenArg(arg string) (string, error) {
	s := strings.TrimSpace(arg)
	if strings.HasPrefix(s, "{") {
		var resp map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &resp) == nil {
			if _, ok := resp["access_token"]; ok {
				return "", errors.New("this looks like a token response: pass its access_token")
			}
		}
		return "", errors.New("not a JWT: the argument is a JSON document, not header.payload.signature")
	}
	if name, rest, ok := strings.Cut(s, ":"); ok && strings.EqualFold(name, "Authorization") {
		s = strings.TrimSpace(rest)
	}
	if scheme, rest, ok := strings.Cut(s, " "); ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) {
		s = strings.TrimSpace(rest)
	}
	return s, nil
}

// inspectToken decodes, verifies and checks a token; an error means it
// could not be judged (no JWKS, not a JWT), not that it was refused.
func inspectToken(cmd *cobra.Command, f *adminFlags, token, jwksSrc, issuer string) (*inspectReport, error) {
	c, err := jwt.Unverified(token)
	if err != nil {
		return nil, fmt.Errorf("not a JWT: %w", err)
	}
	r := &inspectReport{Header: decodeHeader(token), Claims: rawPayload(token), Problems: []string{}, claims: c}
	conn, err := f.resolve(cmd)
	if err != nil {
		return nil, err
	}
	keys, source, err := loadJWKS(cmd.Context(), conn, jwksSrc)
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
	checkRevocation(cmd, f, r, conn)
	return r, nil
}

// Why revocation is unknown, in the verdict's words.
const (
	unknownOffline     = "offline"
	unknownCredentials = "the server refused the admin credentials"
	unknownCollected   = "ancestor records collected"
)

// unknownBecause is the verdict's words for an error of the server or the
// data file: refused credentials (a wrong secret, or a client that is not
// an admin) are named, as the server was reached; an unreachable server is
// offline.
func unknownBecause(err error) string {
	var notAdmin *errNotAdmin
	var unreachable *errUnreachable
	switch {
	case errors.Is(err, errAdminCredentials), errors.As(err, &notAdmin):
		return unknownCredentials
	case errors.As(err, &unreachable):
		return unknownOffline
	}
	return "the server could not answer"
}

// checkRevocation asks the data file (--db) or the server's admin API for
// the keys and the token's lineage: a token signed by a key withdrawn as
// compromised is refused (a saved --jwks may still list the key), then the
// token and every ancestor are checked for revocation. Without a server or
// data file, or when the server cannot be reached or refuses the
// credentials, revocation is unknown: the verdict says so, and never
// "valid".
func checkRevocation(cmd *cobra.Command, f *adminFlags, r *inspectReport, conn connection) {
	rev := &r.Revocation
	unknown := func(why, because string) {
		r.Verdict, r.unknown, rev.UncheckedBecause = verdictRevocationUnknown, why, because
	}
	var b backend
	switch {
	case f.db != "":
		fb, err := f.openFile(cmd)
		if err != nil {
			unknown("the data file could not be read", err.Error())
			return
		}
		b, rev.Via = fb, f.db
	case conn.base == "":
		unknown(unknownOffline, "no server: set MANDATE_SERVER (or --server) with admin credentials, or --db")
		return
	case conn.id == "" || conn.secret == "":
		unknown(unknownOffline, "no admin credentials: set MANDATE_CLIENT_ID and MANDATE_CLIENT_SECRET")
		return
	default:
		b, rev.Via = conn.backend(&http.Client{Timeout: 10 * time.Second}), conn.base
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
	defer cancel()
	keys, err := b.Keys(ctx)
	if err != nil {
		unknown(unknownBecause(err), err.Error())
		return
	}
	for _, k := range keys {
		if k.ID == r.Header.Kid && k.Status == "compromised" {
			rev.Checked, rev.Status, rev.KeyWithdrawnAt = true, "key-compromised", k.RetiredAt
			p := "signed by key " + k.ID + ", withdrawn as compromised"
			if k.RetiredAt != nil {
				p += " at " + ts(*k.RetiredAt)
			}
			r.Verdict, r.Problems = verdictRefused, append(r.Problems, p)
			return
		}
	}
	l, err := b.Lineage(ctx, r.claims.ID)
	switch {
	case errors.Is(err, delegation.ErrUnknownToken):
		rev.Checked, rev.Status = true, "unknown-token"
		r.Verdict = verdictRefused
		r.Problems = append(r.Problems, "no record of this token at "+rev.Via+" (never issued there, or collected after tokens.retention)")
		return
	case err != nil:
		unknown(unknownBecause(err), err.Error())
		return
	}
	rev.Checked, rev.Ancestors = true, len(l.Ancestors)
	n := l.Token
	switch n.Status {
	case delegation.StatusActive:
		if len(l.Missing) > 0 { // collected ancestors: their revocation cannot be read
			rev.Checked = false
			unknown(unknownCollected, "ancestor record(s) collected: "+strings.Join(l.Missing, ", "))
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
	fmt.Fprintf(w, "issued   %s\nexpires  %s\n", claimTime(c.IssuedAt), claimTime(c.Expiry))
	rev := r.Revocation
	checks := "signature by " + r.JWKS + ", not expired, chain well-formed"
	switch r.Verdict {
	case verdictValid:
		fmt.Fprintf(w, "verdict  valid: %s\n", checks)
		fmt.Fprintf(w, "         revocation checked: not revoked (%s, at %s)\n", ancestorsText(rev.Ancestors), rev.Via)
	case verdictRevocationUnknown:
		fmt.Fprintf(w, "verdict  valid signature; revocation unknown (%s)\n", cmp.Or(r.unknown, unknownOffline))
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

// claimTime is a time claim for display: "(none)" when absent, never
// 1970-01-01.
func claimTime(d jwt.NumericDate) string {
	if d.IsZero() {
		return "(none)"
	}
	return ts(d.Time())
}

// ancestorsText is what the revocation check covered: the token, and its
// ancestors (none for a root).
func ancestorsText(n int) string {
	switch n {
	case 0:
		return "the token, a root: no ancestor"
	case 1:
		return "the token and 1 ancestor"
	}
	return fmt.Sprintf("the token and %d ancestors", n)
}

// loadJWKS reads the key set to verify against: --jwks (file or URL), or the
// JWKS of the server conn names. The source is returned as it may be
// printed (a URL's password redacted).
func loadJWKS(ctx context.Context, conn connection, src string) (*tokens.SetResolver, string, error) {
	fromServer := src == ""
	if fromServer {
		if conn.base == "" {
			return nil, "", errors.New("give --jwks FILE|URL, or --server / MANDATE_SERVER")
		}
		src = conn.base + httpapi.PathJWKS
	}
	shown := redactURL(src)
	var raw []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		raw, err = fetch(ctx, src)
		var status *errHTTPStatus
		switch {
		case fromServer && errors.As(err, &status) && status.code == http.StatusNotFound:
			return nil, "", &errNoEndpoint{base: conn.base, source: conn.source, endpoint: httpapi.PathJWKS}
		case fromServer:
			err = transportError(conn.base, err)
		default:
			err = transportError(shown, err)
			var unreachable *errUnreachable
			if errors.As(err, &unreachable) {
				unreachable.jwks = true
			}
		}
	} else {
		raw, err = os.ReadFile(src)
	}
	if err != nil {
		var unreachable *errUnreachable
		var mismatch *errSchemeMismatch
		if errors.As(err, &unreachable) || errors.As(err, &mismatch) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("JWKS %s: %w", shown, err)
	}
	keys, err := tokens.NewSetResolver(raw)
	if err != nil {
		return nil, "", fmt.Errorf("JWKS %s: %w", shown, err)
	}
	return keys, shown, nil
}

// errHTTPStatus is an answer other than 200 to a GET of a JWKS.
type errHTTPStatus struct{ code int }

func (e *errHTTPStatus) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

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
		return nil, &errHTTPStatus{resp.StatusCode}
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
