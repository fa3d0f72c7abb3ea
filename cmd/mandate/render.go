package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
)

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// statusText is a node's status with when, by whom and why.
func statusText(n *delegation.Node) string {
	switch n.Status {
	case delegation.StatusRevoked:
		s := "revoked"
		if n.RevokedAt != nil {
			s += " " + ts(*n.RevokedAt)
		}
		if n.RevokedBy != "" {
			s += " by " + n.RevokedBy
		}
		if n.RevokedReason != "" {
			s += ": " + n.RevokedReason
		}
		return s
	case delegation.StatusRevokedByAncestor:
		return "revoked-by-ancestor (" + n.RevokedAncestor + ")"
	}
	return n.Status
}

// renderLineageTree draws the task from its root down the path to the token
// asked about (marked ◀), then the token's whole subtree, with box-drawing
// branches and each token's details on the line under it.
func renderLineageTree(w io.Writer, l *delegation.Lineage) {
	if len(l.Missing) > 0 {
		fmt.Fprintf(w, "(%d ancestor record(s) collected after retention: %s)\n", len(l.Missing), strings.Join(l.Missing, ", "))
	}
	path := append(append([]*delegation.Node{}, l.Ancestors...), l.Token)
	// Chain the ancestors' path into one tree whose last node is the token.
	var nodes []*delegation.Node
	for i, n := range path {
		c := *n
		if i < len(path)-1 {
			c.Children = nil // only the path: an ancestor's other branches are not this token's lineage
		}
		nodes = append(nodes, &c)
	}
	for i := len(nodes) - 2; i >= 0; i-- {
		nodes[i].Children = []*delegation.Node{nodes[i+1]}
	}
	var walk func(n *delegation.Node, prefix string, last, top bool)
	walk = func(n *delegation.Node, prefix string, last, top bool) {
		branch, cont := "", ""
		if !top {
			branch, cont = "├─ ", "│  "
			if last {
				branch, cont = "└─ ", "   "
			}
		}
		mark := ""
		if n.JTI == l.Token.JTI {
			mark = "  ◀"
		}
		fmt.Fprintf(w, "%s%s%s  %s  [%s]%s\n", prefix, branch, n.JTI, n.Holder, statusText(n), mark)
		detail := "   "
		if len(n.Children) > 0 {
			detail = "│  "
		}
		aud := strings.Join(n.Audience, " ")
		if aud == "" {
			aud = "-"
		}
		fmt.Fprintf(w, "%s%s%ssub %s · scope %q · aud %s · exp %s\n", prefix, cont, detail, n.Subject, n.Scope, aud, ts(n.ExpiresAt))
		for i, c := range n.Children {
			walk(c, prefix+cont, i == len(n.Children)-1, false)
		}
	}
	walk(nodes[0], "", true, true)
	if l.Truncated {
		fmt.Fprintf(w, "(subtree truncated at %d tokens)\n", delegation.MaxLineageNodes)
	}
}

// renderLineageDOT writes the lineage as a Graphviz digraph: ancestors and
// subtree, colored by status, the token asked about drawn bold.
func renderLineageDOT(w io.Writer, l *delegation.Lineage) {
	colors := map[string]string{
		delegation.StatusActive: "darkgreen", delegation.StatusRevoked: "red3",
		delegation.StatusRevokedByAncestor: "darkorange", delegation.StatusExpired: "gray50",
	}
	fmt.Fprintln(w, "digraph lineage {")
	fmt.Fprintln(w, `  node [shape=box, fontname="monospace"];`)
	var nodes []*delegation.Node
	var edges [][2]string
	var visit func(n *delegation.Node)
	visit = func(n *delegation.Node) {
		nodes = append(nodes, n)
		for _, c := range n.Children {
			edges = append(edges, [2]string{n.JTI, c.JTI})
			visit(c)
		}
	}
	for i, a := range l.Ancestors {
		nodes = append(nodes, a)
		next := l.Token.JTI
		if i+1 < len(l.Ancestors) {
			next = l.Ancestors[i+1].JTI
		}
		edges = append(edges, [2]string{a.JTI, next})
	}
	visit(l.Token)
	for _, n := range nodes {
		extra := ""
		if n.JTI == l.Token.JTI {
			extra = ", penwidth=3"
		}
		label := fmt.Sprintf(`%s\n%s\nscope %s\n%s`, n.JTI, n.Holder, n.Scope, n.Status)
		fmt.Fprintf(w, "  %q [label=\"%s\", color=%s%s];\n", n.JTI, strings.ReplaceAll(label, `"`, `\"`), colors[n.Status], extra)
	}
	for _, e := range edges {
		fmt.Fprintf(w, "  %q -> %q;\n", e[0], e[1])
	}
	fmt.Fprintln(w, "}")
}

func renderJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// renderTokens writes tokens as a table.
func renderTokens(w io.Writer, tokens []*delegation.Node) { renderTokenRows(w, tokens, true) }

// renderTokenRows writes a page of tokens as a table, with the header only on
// the first page.
func renderTokenRows(w io.Writer, tokens []*delegation.Node, header bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "JTI\tHOLDER\tSUB\tDEPTH\tSTATUS\tEXPIRES\tSCOPE")
	}
	for _, n := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.JTI, n.Holder, n.Subject, n.Depth, n.Status, ts(n.ExpiresAt), n.Scope)
	}
	tw.Flush()
}

// renderKeys writes the signing keys as a table.
func renderKeys(w io.Writer, keys []tokens.KeyInfo) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATUS\tCREATED\tSIGNS FROM\tLEAVES JWKS")
	for _, k := range keys {
		leaves := "-"
		if k.LeavesAt != nil {
			leaves = ts(*k.LeavesAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Alg, k.Status, ts(k.CreatedAt), ts(k.ActivatesAt), leaves)
	}
	tw.Flush()
}

// renderAudit writes audit records one per line: sequence, time, type, then
// the fields that are set.
func renderAudit(w io.Writer, recs []store.AuditRecord) {
	for _, r := range recs {
		var b strings.Builder
		fmt.Fprintf(&b, "#%-6d %s %-15s", r.Seq, ts(r.Time), r.Type)
		fields := [][2]string{{"client", r.Client}, {"grant", r.Grant}, {"jti", r.JTI}, {"holder", r.Holder},
			{"sub", r.Subject}, {"scope", r.Scope}, {"kid", r.KID}, {"code", r.Code}}
		if a := r.Assertion; a != nil {
			// Which platform token or ID-JAG started the chain.
			fields = append(fields, [][2]string{{"assertion", a.Kind}, {"assertion_iss", a.Issuer}, {"assertion_sub", a.Subject},
				{"assertion_jti", a.JTI}, {"assertion_sha256", a.SHA256}}...)
		}
		for _, kv := range fields {
			switch {
			case kv[1] == "":
			case needsQuote(kv[1]):
				fmt.Fprintf(&b, " %s=%q", kv[0], kv[1])
			default:
				fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
			}
		}
		if len(r.Policies) > 0 {
			fmt.Fprintf(&b, " policies=%s", strings.Join(r.Policies, ","))
		}
		if r.Reason != "" {
			fmt.Fprintf(&b, " reason=%q", r.Reason)
		}
		fmt.Fprintln(w, b.String())
	}
}

// needsQuote reports whether a value must be quoted to stay on its line and
// unambiguous: spaces, quotes, '=', and any control or non-ASCII character
// (%q escapes those, so a record can never print as two lines or a terminal
// escape sequence).
func needsQuote(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == '\\' || r >= 0x7f {
			return true
		}
	}
	return false
}

// renderVerify writes an audit verification report.
func renderVerify(w io.Writer, r store.AuditReport) {
	if r.OK {
		fmt.Fprintf(w, "audit trail intact: %d records (#%d..#%d)\nhead %d:%s  (anchor this elsewhere; check it later with --anchor)\n", r.Records, r.First, r.Last, r.Last, r.Head)
		return
	}
	fmt.Fprintf(w, "audit trail BROKEN at record #%d: %s\n(%d records, #%d..#%d)\n", r.BrokenAt, r.Problem, r.Records, r.First, r.Last)
}
