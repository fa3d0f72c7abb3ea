package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// clockNow is the CLI's clock (tests point it at a test server's clock).
var clockNow = time.Now

// errRefused makes a command exit 1 after printing a negative verdict (an
// audit trail that does not verify, a token that would be refused).
var errRefused = errDenied

// withBackend runs fn against the backend the flags name, closing it after.
func withBackend(cmd *cobra.Command, f *adminFlags, fn func(context.Context, backend) error) error {
	b, err := f.open(cmd)
	if err != nil {
		return err
	}
	defer b.Close()
	return fn(cmd.Context(), b)
}

// isTerminal reports whether w is a terminal (progress is shown only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress prints a self-erasing status line on a terminal, nothing when piped.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(cmd *cobra.Command) *progress {
	return &progress{w: cmd.ErrOrStderr(), on: isTerminal(cmd.ErrOrStderr())}
}

func (p *progress) show(format string, args ...any) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K"+format, args...)
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// jtiArg takes a jti, or reads the jti of a whole token (without verifying:
// the lookup itself is what the operator asked for).
func jtiArg(arg string) (string, error) {
	if strings.Count(arg, ".") != 2 {
		return arg, nil
	}
	c, err := jwt.Unverified(arg)
	if err != nil || c.ID == "" {
		return "", errors.New("the argument looks like a token but its payload has no jti")
	}
	return c.ID, nil
}

func newLineageCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "lineage JTI|TOKEN",
		Short: "Show a token's ancestors and whole subtree, with each token's status",
		Long: `Show the root-to-leaf path of a token's ancestors and its whole subtree of
descendants, each with holder, subject, scope, audience, expiry and status
(active, revoked with when and why, expired, revoked-by-ancestor).
--format tree (default), json (field names documented in docs/operators.md) or
dot (Graphviz: mandate lineage JTI --format dot | dot -Tsvg > task.svg).`,
		Args: cobra.ExactArgs(1),
	}
	format := addFormatFlag(cmd, "tree", "json", "dot")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		jti, err := jtiArg(args[0])
		if err != nil {
			return err
		}
		return withBackend(cmd, &f, func(ctx context.Context, b backend) error {
			l, err := b.Lineage(ctx, jti)
			if err != nil {
				return nameUnknown(err, jti)
			}
			switch *format {
			case "json":
				return renderJSON(cmd.OutOrStdout(), l)
			case "dot":
				renderLineageDOT(cmd.OutOrStdout(), l)
			default:
				renderLineageTree(cmd.OutOrStdout(), l)
			}
			return nil
		})
	}
	f.register(cmd)
	return cmd
}

func newRevokeCmd() *cobra.Command {
	var f adminFlags
	var root, holder, subject, subjectIssuer, reason string
	cmd := &cobra.Command{
		Use:   "revoke [JTI] [--root JTI | --holder CLIENT | --subject S] --reason TEXT",
		Short: "Revoke a token, a whole task, an agent's tokens, or a subject's tasks",
		Long: `Revoke, with a reason recorded on every revocation and in the audit trail:
  mandate revoke JTI            that token and everything delegated from it
  mandate revoke --root JTI     the whole task (JTI may be any token of it)
  mandate revoke --holder C     every live token client C holds, and their subtrees
  mandate revoke --subject S    every live task on behalf of S
It prints how many tokens it made unusable (descendants included). Each
revocation is one record, whatever the size of the subtree. It works
against a running server only: a stopped server's file (--db) is opened
read-only, so revoke refuses it.`,
		Args: cobra.MaximumNArgs(1),
	}
	format := addFormatFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if f.db != "" {
			return errReadOnly
		}
		var t delegation.RevokeTarget
		n := 0
		if len(args) == 1 {
			jti, err := jtiArg(args[0])
			if err != nil {
				return err
			}
			t.JTI, n = jti, n+1
		}
		for _, v := range []*string{&root, &holder, &subject} {
			if *v != "" {
				n++
			}
		}
		if n != 1 {
			return errors.New("name exactly one of JTI, --root, --holder or --subject")
		}
		if strings.TrimSpace(reason) == "" {
			return errors.New("--reason is required: say why, for the audit trail")
		}
		if root != "" {
			jti, err := jtiArg(root)
			if err != nil {
				return err
			}
			t.Root = jti
		}
		t.Subject, t.SubjectIssuer = subject, subjectIssuer
		return withBackend(cmd, &f, func(ctx context.Context, b backend) error {
			var res delegation.RevokeResult
			var err error
			if holder != "" {
				res, err = revokeHolder(ctx, cmd, b, holder, reason)
			} else {
				p := newProgress(cmd)
				p.show("revoking…")
				res, err = b.Revoke(ctx, t, reason)
				p.done()
			}
			if err != nil {
				return nameUnknown(err, t.JTI+t.Root)
			}
			if *format == "json" {
				return renderJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d token(s) made unusable, descendants included (%d revocation record(s) written)\n", res.Unusable, res.Revoked)
			return nil
		})
	}
	f.registerWriter(cmd)
	cmd.Flags().StringVar(&root, "root", "", "end the whole task of this token")
	cmd.Flags().StringVar(&holder, "holder", "", "revoke every live token this client holds")
	cmd.Flags().StringVar(&subject, "subject", "", "revoke every live task on behalf of this subject")
	cmd.Flags().StringVar(&subjectIssuer, "subject-issuer", "", "the issuer of --subject's name (default: Mandate's own; an identity provider's URL for its users)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded)")
	return cmd
}

// revokeHolder revokes a holder's live tokens page by page, so a revocation
// touching thousands of tokens shows its progress.
func revokeHolder(ctx context.Context, cmd *cobra.Command, b backend, holder, reason string) (delegation.RevokeResult, error) {
	p := newProgress(cmd)
	defer p.done()
	var total delegation.RevokeResult
	for {
		page, err := b.ListTokens(ctx, delegation.TokenFilter{Holder: holder, Active: true, Limit: 500})
		if err != nil || len(page.Tokens) == 0 {
			return total, err
		}
		jtis := make([]string, len(page.Tokens))
		for i, n := range page.Tokens {
			jtis[i] = n.JTI
		}
		res, err := b.Revoke(ctx, delegation.RevokeTarget{JTIs: jtis}, reason)
		if err != nil {
			return total, err
		}
		total.Revoked += res.Revoked
		total.Unusable += res.Unusable
		p.show("revoked %d of %s's tokens (%d made unusable)…", total.Revoked, holder, total.Unusable)
		if res.Revoked == 0 { // nothing more could be revoked: avoid looping on a stale listing
			return total, nil
		}
	}
}

func newTokensCmd() *cobra.Command {
	var f adminFlags
	var filter delegation.TokenFilter
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens, filtered, a page at a time (or --all)",
		Args:  cobra.NoArgs,
	}
	format := addFormatFlag(list, "table", "json")
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		if filter.Limit < 1 {
			return fmt.Errorf("--limit must be at least 1 (got %d)", filter.Limit)
		}
		return withBackend(cmd, &f, func(ctx context.Context, b backend) error {
			// Pages are printed as they come (a large store is never held in
			// memory): a table per page, or one JSON page object per line.
			p := newProgress(cmd)
			defer p.done()
			fetched := 0
			for first := true; ; first = false {
				page, err := b.ListTokens(ctx, filter)
				if err != nil {
					return err
				}
				fetched += len(page.Tokens)
				p.done()
				if *format == "json" {
					if err := json.NewEncoder(cmd.OutOrStdout()).Encode(page); err != nil {
						return err
					}
				} else {
					renderTokenRows(cmd.OutOrStdout(), page.Tokens, first)
				}
				if page.Truncated {
					fmt.Fprintf(cmd.ErrOrStderr(), "(task listing cut at %d tokens)\n", delegation.MaxLineageNodes)
				}
				if page.Next == "" {
					return nil
				}
				if !all {
					fmt.Fprintf(cmd.ErrOrStderr(), "more: --after %s (or --all)\n", page.Next)
					return nil
				}
				filter.After = page.Next
				p.show("fetched %d tokens…", fetched)
			}
		})
	}
	f.register(list)
	list.Flags().StringVar(&filter.Holder, "holder", "", "held by this client")
	list.Flags().StringVar(&filter.Subject, "subject", "", "on behalf of this subject")
	list.Flags().StringVar(&filter.SubjectIssuer, "subject-issuer", "", "whose --subject: the issuer of that name (any when empty)")
	list.Flags().StringVar(&filter.Root, "root", "", "in this task (its root and all descendants)")
	list.Flags().BoolVar(&filter.Active, "active", false, "only tokens that can still be used")
	list.Flags().IntVar(&filter.Limit, "limit", 100, "page size")
	list.Flags().StringVar(&filter.After, "after", "", "continue after this jti (from the previous page)")
	list.Flags().BoolVar(&all, "all", false, "fetch every page")
	cmd := groupCmd(&cobra.Command{Use: "tokens", Short: "Inspect issued tokens"})
	cmd.AddCommand(list)
	return cmd
}

func newKeysCmd() *cobra.Command {
	cmd := groupCmd(&cobra.Command{Use: "keys", Short: "List or rotate signing keys"})
	var lf, rf adminFlags
	var alg string
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys: pending, active, retiring (published until its tokens expire), retired",
		Args:  cobra.NoArgs,
	}
	listFormat := addFormatFlag(list, "table", "json")
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return withBackend(cmd, &lf, func(ctx context.Context, b backend) error {
			keys, err := b.Keys(ctx)
			if err != nil {
				return err
			}
			if *listFormat == "json" {
				return renderJSON(cmd.OutOrStdout(), keys)
			}
			renderKeys(cmd.OutOrStdout(), keys)
			return nil
		})
	}
	lf.register(list)
	var compromised bool
	var reason, compromisedKid string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Publish a new signing key; it signs after 30 s, and the old key stays published until its tokens expire",
		Long: `Publish a new signing key. Routinely it signs after 30 s (so verifiers meet no
unknown kid) and the old key stays published until every token it signed has
expired. With --compromised (the key leaked), the new key signs at once, the
old one leaves the JWKS at once, Mandate accepts nothing it signed, and the
revocation feed tells every verifier to drop it (revoked_keys): every token
the old key signed stops working everywhere, so agents must obtain new ones.
It works against a running server only: a stopped server's file (--db) is
opened read-only, so rotate refuses it.`,
		Args: cobra.NoArgs,
	}
	rotateFormat := addFormatFlag(rotate, "text", "json")
	rotate.RunE = func(cmd *cobra.Command, _ []string) error {
		if rf.db != "" {
			return errReadOnly
		}
		if compromised && strings.TrimSpace(reason) == "" {
			return errors.New("--reason is required with --compromised: say why, for the audit trail")
		}
		if compromisedKid != "" && !compromised {
			return errors.New("--kid names the leaked key of an emergency rotation: add --compromised")
		}
		return withBackend(cmd, &rf, func(ctx context.Context, b backend) error {
			kid, at, old, err := b.Rotate(ctx, alg, compromised, compromisedKid, reason)
			if err != nil {
				return err
			}
			if *rotateFormat == "json" {
				return renderJSON(cmd.OutOrStdout(), rotation{KID: kid, ActivatesAt: at.UTC(), Withdrawn: old})
			}
			if compromised {
				fmt.Fprintf(cmd.OutOrStdout(), "key %s withdrawn as compromised; new key %s signs from %s\n", old, kid, ts(at))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new key %s published; it signs from %s\n", kid, ts(at))
			return nil
		})
	}
	rf.registerWriter(rotate)
	rotate.Flags().StringVar(&alg, "alg", "", "EdDSA or ES256 (default: the current key's algorithm)")
	rotate.Flags().BoolVar(&compromised, "compromised", false, "emergency: the key leaked; withdraw it at once (needs --reason)")
	rotate.Flags().StringVar(&reason, "reason", "", "why (required with --compromised; recorded)")
	rotate.Flags().StringVar(&compromisedKid, "kid", "", "with --compromised: the key that leaked (default: the key signing now)")
	cmd.AddCommand(list, rotate)
	return cmd
}

func newAuditCmd() *cobra.Command {
	cmd := groupCmd(&cobra.Command{Use: "audit", Short: "Read and verify the tamper-evident audit trail"})
	var tf, vf adminFlags
	var follow bool
	var n int
	var anchor string
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print the newest audit records (-f to follow)",
		Args:  cobra.NoArgs,
	}
	tailFormat := addFormatFlag(tail, "text", "json")
	tail.RunE = func(cmd *cobra.Command, _ []string) error {
		if n < 1 {
			return fmt.Errorf("-n must be at least 1 (got %d)", n)
		}
		if follow && tf.db != "" {
			return errors.New("-f follows a running server's trail; with --db there is no writer to follow")
		}
		return withBackend(cmd, &tf, func(ctx context.Context, b backend) error {
			recs, err := b.AuditTail(ctx, n)
			if err != nil {
				return err
			}
			print := func(recs []store.AuditRecord) error {
				if *tailFormat == "json" { // JSON Lines: one record per line, as they come
					enc := json.NewEncoder(cmd.OutOrStdout())
					for _, r := range recs {
						if err := enc.Encode(r); err != nil {
							return err
						}
					}
					return nil
				}
				renderAudit(cmd.OutOrStdout(), recs)
				return nil
			}
			if err := print(recs); err != nil || !follow {
				return err
			}
			var last uint64
			if len(recs) > 0 {
				last = recs[len(recs)-1].Seq
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
			defer stop()
			for ctx.Err() == nil {
				more, err := b.Audit(ctx, last, 1000, 20*time.Second)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if len(more) > 0 {
					last = more[len(more)-1].Seq
					if err := print(more); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	tf.register(tail)
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records")
	tail.Flags().IntVarP(&n, "lines", "n", 20, "how many of the newest records")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain; name the first broken record (exit 1) or print the head hash",
		Args:  cobra.NoArgs,
	}
	verifyFormat := addFormatFlag(verify, "text", "json")
	verify.RunE = func(cmd *cobra.Command, _ []string) error {
		var seq uint64
		var hash string
		if anchor != "" {
			var err error
			if seq, hash, err = parseAnchor(anchor); err != nil {
				return err
			}
		}
		return withBackend(cmd, &vf, func(ctx context.Context, b backend) error {
			rep, err := b.VerifyAudit(ctx)
			if err != nil {
				return err
			}
			res := auditVerification{AuditReport: rep}
			if rep.OK && anchor != "" {
				a, err := checkAnchor(ctx, b, rep, seq, hash)
				if err != nil {
					return err
				}
				res.Anchor = &a
			}
			if *verifyFormat == "json" {
				if err := renderJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				renderVerify(cmd.OutOrStdout(), rep)
				if res.Anchor != nil {
					fmt.Fprintln(cmd.OutOrStdout(), res.Anchor.Message)
				}
			}
			if !rep.OK || (res.Anchor != nil && res.Anchor.Status != anchorMatches) {
				return errRefused
			}
			return nil
		})
	}
	vf.register(verify)
	verify.Flags().StringVar(&anchor, "anchor", "", "SEQ:HASH printed by an earlier verify: check that record is still there, unchanged")
	cmd.AddCommand(tail, verify)
	return cmd
}

// auditVerification is `audit verify --format json`: the report, and the
// anchor's check when --anchor was given.
type auditVerification struct {
	store.AuditReport
	Anchor *anchorCheck `json:"anchor,omitempty"`
}

// Anchor check results.
const (
	anchorMatches   = "matches"
	anchorTooOld    = "older-than-kept"
	anchorTruncated = "truncated"
	anchorRewritten = "rewritten"
)

// anchorCheck is the result of comparing a record with an anchored hash.
type anchorCheck struct {
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`
	Status  string `json:"status"` // matches, older-than-kept, truncated or rewritten
	Message string `json:"message"`
}

// rotation is `keys rotate --format json`.
type rotation struct {
	KID         string    `json:"kid"`
	ActivatesAt time.Time `json:"activates_at"`
	Withdrawn   string    `json:"withdrawn,omitempty"` // the compromised key, with --compromised
}

// parseAnchor reads SEQ:HASH, as verify prints it: a record number from 1
// and that record's 64-hex-character hash. Anything else is a usage error,
// never a verdict: a mistyped anchor must not pass for a tampered trail.
func parseAnchor(anchor string) (uint64, string, error) {
	usage := func(what string) error {
		return fmt.Errorf("--anchor %q: %s; give SEQ:HASH as \"mandate audit verify\" prints it (a record number from 1, a colon, the record's 64-hex-character hash)", anchor, what)
	}
	seqText, hash, ok := strings.Cut(anchor, ":")
	if !ok {
		return 0, "", usage("no colon")
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		return 0, "", usage(fmt.Sprintf("SEQ %q is not a positive whole number", seqText))
	}
	if len(hash) != 64 {
		return 0, "", usage(fmt.Sprintf("HASH has %d characters, not 64", len(hash)))
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return 0, "", usage("HASH is not hexadecimal")
	}
	return seq, strings.ToLower(hash), nil
}

// checkAnchor compares a record with a head hash anchored earlier; a
// rewritten trail (all hashes recomputed) passes verify but not this.
func checkAnchor(ctx context.Context, b backend, rep store.AuditReport, seq uint64, hash string) (anchorCheck, error) {
	a := anchorCheck{Seq: seq, Hash: hash}
	if seq < rep.First {
		a.Status, a.Message = anchorTooOld, fmt.Sprintf("anchor #%d is older than the records kept (#%d..#%d): it cannot be checked", seq, rep.First, rep.Last)
		return a, nil
	}
	recs, err := b.Audit(ctx, seq-1, 1, 0)
	if err != nil {
		return a, err
	}
	switch {
	case len(recs) != 1 || recs[0].Seq != seq:
		a.Status, a.Message = anchorTruncated, fmt.Sprintf("anchor MISMATCH: record #%d is gone: the trail was truncated", seq)
	case recs[0].Hash != hash:
		a.Status, a.Message = anchorRewritten, fmt.Sprintf("anchor MISMATCH: record #%d's hash is not the anchored one: the trail was rewritten", seq)
	default:
		a.Status, a.Message = anchorMatches, fmt.Sprintf("anchor #%d matches", seq)
	}
	return a, nil
}
