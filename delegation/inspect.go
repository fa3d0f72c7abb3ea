package delegation

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/mandate-auth/mandate/store"
)

// Inspector is what lineage inspection and listings read: the live store,
// or a stopped server's data file opened read-only, so operators get the
// same answers from `--server` and from `--db`.
type Inspector interface {
	Token(ctx context.Context, jti string) (*store.TokenRecord, error)
	Children(ctx context.Context, jti string) ([]string, error)
	FirstRevoked(ctx context.Context, jtis ...string) (*store.Revocation, error)
	HeldBy(ctx context.Context, holder string, now time.Time) ([]*store.TokenRecord, error)
	ScanTokens(ctx context.Context, after string, limit int) ([]*store.TokenRecord, error)
}

// Token statuses.
const (
	StatusActive            = "active"
	StatusRevoked           = "revoked"
	StatusRevokedByAncestor = "revoked-by-ancestor"
	StatusExpired           = "expired"
)

// Node is one token in a lineage or a listing: its record and its status.
// The JSON field names are stable (docs/operators.md).
type Node struct {
	JTI       string    `json:"jti"`
	Parent    string    `json:"parent,omitempty"`
	Depth     int       `json:"depth"`
	Holder    string    `json:"holder"`
	Subject   string    `json:"sub"`
	SubIss    string    `json:"sub_iss,omitempty"`
	Actors    []string  `json:"actors"`
	Scope     string    `json:"scope"`
	Audience  []string  `json:"aud"`
	IssuedAt  time.Time `json:"iat"`
	ExpiresAt time.Time `json:"exp"`
	// Status is active, revoked, revoked-by-ancestor or expired.
	Status string `json:"status"`
	// For revoked: when, by whom and why; for revoked-by-ancestor: which ancestor.
	RevokedAt       *time.Time `json:"revoked_at,omitempty"`
	RevokedBy       string     `json:"revoked_by,omitempty"`
	RevokedReason   string     `json:"revoked_reason,omitempty"`
	RevokedAncestor string     `json:"revoked_ancestor,omitempty"`
	// Children are the tokens issued from this one (in a lineage's subtree).
	Children []*Node `json:"children,omitempty"`
}

// Unusable reports whether the token can no longer be used.
func (n *Node) Unusable() bool { return n.Status != StatusActive }

func newNode(rec *store.TokenRecord) *Node {
	aud := rec.Audience
	if aud == nil {
		aud = []string{}
	}
	return &Node{JTI: rec.JTI, Parent: rec.Parent, Depth: len(rec.Lineage), Holder: rec.Holder, Subject: rec.Subject, SubIss: rec.SubIss,
		Actors: append([]string{}, rec.Act.Path()...), Scope: rec.Scope, Audience: aud,
		IssuedAt: rec.IssuedAt.UTC(), ExpiresAt: rec.ExpiresAt.UTC()}
}

// setStatus fills the status from the token's own revocation, an ancestor's
// (inherited, or looked up when not known), and its expiry.
func setStatus(ctx context.Context, st Inspector, n *Node, lineage []string, inherited *Node, now time.Time) error {
	own, err := st.FirstRevoked(ctx, n.JTI)
	if err != nil {
		return err
	}
	switch {
	case own != nil:
		t := own.RevokedAt.UTC()
		n.Status, n.RevokedAt, n.RevokedBy, n.RevokedReason = StatusRevoked, &t, own.By, own.Reason
		return nil
	case inherited != nil && (inherited.Status == StatusRevoked || inherited.Status == StatusRevokedByAncestor):
		n.Status, n.RevokedAncestor = StatusRevokedByAncestor, inherited.RevokedAncestor
		if inherited.Status == StatusRevoked {
			n.RevokedAncestor = inherited.JTI
		}
		return nil
	case inherited == nil && len(lineage) > 0:
		anc, err := st.FirstRevoked(ctx, lineage...)
		if err != nil {
			return err
		}
		if anc != nil {
			n.Status, n.RevokedAncestor = StatusRevokedByAncestor, anc.JTI
			return nil
		}
	}
	if !now.Before(n.ExpiresAt) {
		n.Status = StatusExpired
	} else {
		n.Status = StatusActive
	}
	return nil
}

// Lineage is a token's place in its task: its ancestors, root first, and the
// token with its whole subtree of descendants.
type Lineage struct {
	Ancestors []*Node `json:"ancestors"`
	Token     *Node   `json:"token"`
	// Missing lists ancestors whose records were collected (expired beyond
	// tokens.retention).
	Missing []string `json:"missing,omitempty"`
	// Truncated says the subtree was cut at MaxLineageNodes.
	Truncated bool `json:"truncated,omitempty"`
}

// MaxLineageNodes bounds the subtree a lineage answer walks.
const MaxLineageNodes = 10000

// ErrUnknownToken reports a jti with no record (never issued, or collected).
var ErrUnknownToken = errors.New("no record of this token (never issued here, or collected after tokens.retention)")

// LineageOf returns the lineage of jti at now.
func LineageOf(ctx context.Context, st Inspector, jti string, now time.Time) (*Lineage, error) {
	rec, err := st.Token(ctx, jti)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownToken
	}
	if err != nil {
		return nil, err
	}
	out := &Lineage{Ancestors: []*Node{}}
	var prev *Node
	for i, a := range rec.Lineage {
		ar, err := st.Token(ctx, a)
		if errors.Is(err, store.ErrNotFound) {
			out.Missing = append(out.Missing, a)
			continue
		}
		if err != nil {
			return nil, err
		}
		n := newNode(ar)
		if err := setStatus(ctx, st, n, rec.Lineage[:i], prev, now); err != nil {
			return nil, err
		}
		out.Ancestors = append(out.Ancestors, n)
		prev = n
	}
	out.Token = newNode(rec)
	if err := setStatus(ctx, st, out.Token, rec.Lineage, prev, now); err != nil {
		return nil, err
	}
	budget := MaxLineageNodes
	out.Truncated, err = descend(ctx, st, out.Token, now, &budget)
	return out, err
}

// descend fills n's subtree (depth first, children in jti order) and reports
// whether it ran out of budget.
func descend(ctx context.Context, st Inspector, n *Node, now time.Time, budget *int) (bool, error) {
	kids, err := st.Children(ctx, n.JTI)
	if err != nil {
		return false, err
	}
	for _, k := range kids {
		if *budget <= 0 {
			return true, nil
		}
		rec, err := st.Token(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		*budget--
		c := newNode(rec)
		if err := setStatus(ctx, st, c, rec.Lineage, n, now); err != nil {
			return false, err
		}
		n.Children = append(n.Children, c)
		if cut, err := descend(ctx, st, c, now, budget); err != nil || cut {
			return cut, err
		}
	}
	return false, nil
}

// TokenFilter selects tokens for a listing; empty fields do not filter.
type TokenFilter struct {
	Holder  string `json:"holder,omitempty"`
	Subject string `json:"sub,omitempty"`
	// SubjectIssuer narrows Subject to the issuer of that name (any issuer
	// when empty).
	SubjectIssuer string `json:"sub_iss,omitempty"`
	// Root selects a task: its root and every descendant.
	Root string `json:"root,omitempty"`
	// Active keeps only tokens that can still be used.
	Active bool `json:"active,omitempty"`
	// After is the last jti of the previous page; Limit the page size.
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// TokenPage is one page of a listing, in jti order; Next is the After of the
// next page, empty on the last.
type TokenPage struct {
	Tokens []*Node `json:"tokens"`
	Next   string  `json:"next,omitempty"`
	// Truncated says a task listing stopped at MaxLineageNodes tokens.
	Truncated bool `json:"truncated,omitempty"`
}

// MaxPage bounds a listing's page.
const MaxPage = 1000

// ListTokens returns a page of the tokens matching f at now.
func ListTokens(ctx context.Context, st Inspector, f TokenFilter, now time.Time) (*TokenPage, error) {
	if f.Limit <= 0 || f.Limit > MaxPage {
		f.Limit = min(max(f.Limit, 100), MaxPage)
	}
	var candidates []*store.TokenRecord
	page := &TokenPage{Tokens: []*Node{}}
	switch {
	case f.Root != "":
		// A task: its root (the first ancestor of the token named) and every
		// descendant, up to MaxLineageNodes.
		named, err := st.Token(ctx, f.Root)
		if errors.Is(err, store.ErrNotFound) {
			return page, nil
		}
		if err != nil {
			return nil, err
		}
		root := named
		if len(named.Lineage) > 0 {
			if root, err = st.Token(ctx, named.Lineage[0]); err != nil {
				root = named // the root was collected: list from the named token
			}
		}
		candidates = []*store.TokenRecord{root}
		for i := 0; i < len(candidates); i++ {
			kids, err := st.Children(ctx, candidates[i].JTI)
			if err != nil {
				return nil, err
			}
			for _, k := range kids {
				if len(candidates) == MaxLineageNodes {
					page.Truncated = true
					break
				}
				if rec, err := st.Token(ctx, k); err == nil {
					candidates = append(candidates, rec)
				}
			}
		}
	case f.Holder != "" && f.Active:
		held, err := st.HeldBy(ctx, f.Holder, now)
		if err != nil {
			return nil, err
		}
		candidates = held
	}
	keep := func(rec *store.TokenRecord) (bool, error) {
		if rec.JTI <= f.After && f.After != "" ||
			f.Holder != "" && rec.Holder != f.Holder || f.Subject != "" && rec.Subject != f.Subject ||
			f.SubjectIssuer != "" && rec.SubIss != f.SubjectIssuer {
			return false, nil
		}
		n := newNode(rec)
		if err := setStatus(ctx, st, n, rec.Lineage, nil, now); err != nil {
			return false, err
		}
		if f.Active && n.Unusable() {
			return false, nil
		}
		if len(page.Tokens) == f.Limit {
			page.Next = page.Tokens[len(page.Tokens)-1].JTI
			return true, nil
		}
		page.Tokens = append(page.Tokens, n)
		return false, nil
	}
	if candidates != nil {
		slices.SortFunc(candidates, func(a, b *store.TokenRecord) int {
			return cmpString(a.JTI, b.JTI)
		})
		for _, rec := range candidates {
			if full, err := keep(rec); err != nil || full {
				return page, err
			}
		}
		return page, nil
	}
	for after := f.After; ; {
		batch, err := st.ScanTokens(ctx, after, 512)
		if err != nil || len(batch) == 0 {
			return page, err
		}
		for _, rec := range batch {
			if full, err := keep(rec); err != nil || full {
				return page, err
			}
		}
		after = batch[len(batch)-1].JTI
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// countUsable counts the tokens of jti's subtree (itself included) that are
// still usable at now: unexpired, and not under a revoked token (the walk
// does not enter a revoked subtree). The caller has checked jti's ancestors.
// It stops at limit.
func countUsable(ctx context.Context, st Inspector, jti string, now time.Time, limit int) (int, error) {
	n := 0
	queue := []string{jti}
	for len(queue) > 0 && n < limit {
		j := queue[0]
		queue = queue[1:]
		rec, err := st.Token(ctx, j)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if r, err := st.FirstRevoked(ctx, j); err != nil {
			return n, err
		} else if r != nil {
			continue // already cut off, with everything under it
		}
		if now.Before(rec.ExpiresAt) {
			n++
		}
		kids, err := st.Children(ctx, j)
		if err != nil {
			return n, err
		}
		queue = append(queue, kids...)
	}
	return n, nil
}
