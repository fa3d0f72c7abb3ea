package delegation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// The operator side of the core: what the admin API (and through it the CLI)
// may do. Callers have already checked the client is an admin.

// Lineage returns the lineage of jti now.
func (s *Service) Lineage(ctx context.Context, jti string) (*Lineage, error) {
	return LineageOf(ctx, s.store, jti, s.now())
}

// ListTokens returns a page of tokens now.
func (s *Service) ListTokens(ctx context.Context, f TokenFilter) (*TokenPage, error) {
	return ListTokens(ctx, s.store, f, s.now())
}

// AuditAfter returns audit records after seq.
func (s *Service) AuditAfter(ctx context.Context, after uint64, limit int) ([]store.AuditRecord, error) {
	return s.store.AuditAfter(ctx, after, limit)
}

// AuditTail returns the newest n audit records.
func (s *Service) AuditTail(ctx context.Context, n int) ([]store.AuditRecord, error) {
	return s.store.AuditTail(ctx, n)
}

// VerifyAudit recomputes the audit chain.
func (s *Service) VerifyAudit(ctx context.Context) (store.AuditReport, error) {
	return s.store.VerifyAudit(ctx)
}

// RevokeTarget names what an operator revokes: exactly one field is set.
type RevokeTarget struct {
	// JTI: that token and its subtree.
	JTI string `json:"jti,omitempty"`
	// Root: the whole task the given token (a root or any token of it) belongs to.
	Root string `json:"root,omitempty"`
	// Holder: every live token the client holds, and their subtrees.
	Holder string `json:"holder,omitempty"`
	// Subject: every live task on the subject's behalf, with SubjectIssuer
	// the issuer of that name (Mandate's own when empty): an identity
	// provider's user called "orchestrator" is not the orchestrator client.
	Subject       string `json:"sub,omitempty"`
	SubjectIssuer string `json:"sub_iss,omitempty"`
	// JTIs: each of these tokens and their subtrees (for paged revocations).
	JTIs []string `json:"jtis,omitempty"`
}

// RevokeResult counts what a revocation did: the records written (one per
// token named, never one per descendant) and the tokens it made unusable
// (live ones, descendants included, that were usable before).
type RevokeResult struct {
	Revoked  int `json:"revoked"`
	Unusable int `json:"unusable"`
}

// maxCount bounds the subtree walk that counts what a revocation cut off.
const maxCount = 1_000_000

// AdminRevoke revokes for an operator, with the reason recorded on every
// revocation and in the audit trail.
func (s *Service) AdminRevoke(ctx context.Context, by string, t RevokeTarget, reason string) (RevokeResult, error) {
	set := 0
	for _, v := range []bool{t.JTI != "", t.Root != "", t.Holder != "", t.Subject != "", len(t.JTIs) > 0} {
		if v {
			set++
		}
	}
	if set != 1 {
		return RevokeResult{}, oauth.New(oauth.CodeInvalidRequest, "name exactly one of jti, root, holder, sub or jtis")
	}
	if reason == "" {
		reason = "revoked by operator"
	}
	now := s.now()
	var jtis []string
	switch {
	case t.JTI != "":
		jtis = []string{t.JTI}
	case len(t.JTIs) > 0:
		if len(t.JTIs) > MaxPage {
			return RevokeResult{}, oauth.New(oauth.CodeInvalidRequest, "at most %d jtis per request", MaxPage)
		}
		jtis = t.JTIs
	case t.Root != "":
		rec, err := s.store.Token(ctx, t.Root)
		if errors.Is(err, store.ErrNotFound) {
			return RevokeResult{}, ErrUnknownToken
		}
		if err != nil {
			return RevokeResult{}, err
		}
		root := rec.JTI
		if len(rec.Lineage) > 0 {
			root = rec.Lineage[0]
		}
		jtis = []string{root}
	case t.Holder != "":
		held, err := s.store.HeldBy(ctx, t.Holder, now)
		if err != nil {
			return RevokeResult{}, err
		}
		if len(held) == 0 && !s.knownHolder(t.Holder) {
			// A misspelt holder must not pass for "nothing to revoke". One
			// that holds live tokens is revoked even when no longer
			// registered: its tokens still work at resource servers.
			return RevokeResult{}, oauth.New(oauth.CodeInvalidRequest, "no client %q is registered, nor is it an ephemeral agent of one, and it holds no live token: check the name", jwt.Excerpt(t.Holder))
		}
		for _, r := range held {
			jtis = append(jtis, r.JTI)
		}
	case t.Subject != "":
		subIss := t.SubjectIssuer
		if subIss == "" {
			subIss = s.issuer
		}
		for after := ""; ; {
			batch, err := s.store.ScanTokens(ctx, after, 512)
			if err != nil {
				return RevokeResult{}, err
			}
			if len(batch) == 0 {
				break
			}
			for _, r := range batch {
				if r.Subject == t.Subject && s.subjectIssuerOf(r) == subIss && len(r.Lineage) == 0 && now.Before(r.ExpiresAt) {
					jtis = append(jtis, r.JTI)
				}
			}
			after = batch[len(batch)-1].JTI
		}
	}
	// Revoke ancestors before descendants: a token whose ancestor is revoked
	// here is cut off by that one record and needs none of its own.
	var recs []*store.TokenRecord
	for _, jti := range jtis {
		rec, err := s.store.Token(ctx, jti)
		if errors.Is(err, store.ErrNotFound) {
			if t.JTI != "" {
				return RevokeResult{}, ErrUnknownToken
			}
			continue
		}
		if err != nil {
			return RevokeResult{}, err
		}
		recs = append(recs, rec)
	}
	slices.SortStableFunc(recs, func(a, b *store.TokenRecord) int { return len(a.Lineage) - len(b.Lineage) })
	// Verifiers accept a token up to their leeway past exp, so a token that
	// expired within chain.RevocationGrace is still worth revoking.
	horizon := now.Add(-chain.RevocationGrace)
	var res RevokeResult
	var revoked []*store.TokenRecord
	for _, rec := range recs {
		n := newNode(rec)
		if err := setStatus(ctx, s.store, n, rec.Lineage, nil, horizon); err != nil {
			return res, err
		}
		if n.Unusable() {
			continue // already cut off: nothing to write
		}
		// Revoke first, count after: the tree is cut off by this one
		// record at once, however long counting what it cut off takes (a
		// task of 100,000 tokens is seconds of reads on PostgreSQL).
		if _, err := s.recordRevocation(ctx, rec.JTI, rec.ExpiresAt, reason, by); err != nil {
			return res, err
		}
		res.Revoked++
		revoked = append(revoked, rec)
	}
	for _, rec := range revoked {
		// Usable until now: the token itself (it was not cut off above)
		// and what below it was not revoked on its own.
		if horizon.Before(rec.ExpiresAt) {
			res.Unusable++
		}
		kids, err := s.store.Children(ctx, rec.JTI)
		if err != nil {
			return res, err
		}
		for _, k := range kids {
			n, err := countUsable(ctx, s.store, k, horizon, maxCount-res.Unusable)
			if err != nil {
				return res, err
			}
			res.Unusable += n
		}
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "operator revocation", slog.String("by", by), slog.String("reason", reason),
		slog.Int("records", res.Revoked), slog.Int("unusable", res.Unusable))
	return res, nil
}

// subjectIssuerOf is the issuer of a record's subject; records written before
// sub_iss existed are read as Mandate's own.
func (s *Service) subjectIssuerOf(r *store.TokenRecord) string {
	if r.SubIss == "" {
		return s.issuer
	}
	return r.SubIss
}

// KeyAdmin is the signing-key side an operator manages.
type KeyAdmin interface {
	Keys() []tokens.KeyInfo
	Rotate(ctx context.Context, ks tokens.KeyStore, alg string) (tokens.StoredKey, error)
	RotateCompromised(ctx context.Context, ks tokens.KeyStore, alg, kid string) (tokens.StoredKey, string, error)
	CompromisedKeys() []string
}

var errNoKeyAdmin = errors.New("key management is not available on this server")

// Keys lists the signing keys.
func (s *Service) Keys() ([]tokens.KeyInfo, error) {
	ka, ok := s.keys.(KeyAdmin)
	if !ok {
		return nil, errNoKeyAdmin
	}
	return ka.Keys(), nil
}

// RotateKey publishes a new signing key (of alg, or of the current key's
// algorithm when alg is empty) that signs after
// tokens.KeyActivationDelay, and records the rotation, with the operator's
// reason when one is given, in the audit trail.
func (s *Service) RotateKey(ctx context.Context, by, alg, reason string) (tokens.StoredKey, error) {
	ka, ok := s.keys.(KeyAdmin)
	ks := s.keyStoreOf()
	if !ok || ks == nil {
		return tokens.StoredKey{}, errNoKeyAdmin
	}
	if alg != "" && alg != tokens.AlgEdDSA && alg != tokens.AlgES256 {
		return tokens.StoredKey{}, oauth.New(oauth.CodeInvalidRequest, "alg must be %s or %s (or empty: the current key's)", tokens.AlgEdDSA, tokens.AlgES256)
	}
	k, err := ka.Rotate(ctx, ks, alg)
	if err != nil {
		return k, err
	}
	why := fmt.Sprintf("%s key published; signs from %s", k.Alg, k.ActivatesAt.UTC().Format(time.RFC3339))
	if r := strings.TrimSpace(reason); r != "" {
		why = bounded(why + "; " + r)
	}
	s.audit(ctx, store.AuditEvent{Time: s.now(), Type: store.AuditKeyRotated, Client: by, KID: k.ID, Reason: why})
	s.log.Warn("signing key rotated", slog.String("by", by), slog.String("kid", k.ID), slog.Time("activates_at", k.ActivatesAt))
	return k, nil
}

// RotateCompromisedKey is the emergency rotation, for a signing key that
// leaked (kid; empty: the key signing now): a new key (of alg, or the
// withdrawn one's) signs at once, the old one leaves the JWKS at once and Mandate accepts nothing it signed
// (introspection answers inactive, exchanges are refused), and every
// verifier following the revocation feed is told to drop it (revoked_keys)
// at once. The audit trail records who and why.
func (s *Service) RotateCompromisedKey(ctx context.Context, by, alg, kid, reason string) (tokens.StoredKey, string, error) {
	ka, ok := s.keys.(KeyAdmin)
	ks := s.keyStoreOf()
	if !ok || ks == nil {
		return tokens.StoredKey{}, "", errNoKeyAdmin
	}
	if alg != "" && alg != tokens.AlgEdDSA && alg != tokens.AlgES256 {
		return tokens.StoredKey{}, "", oauth.New(oauth.CodeInvalidRequest, "alg must be %s or %s (or empty: the current key's)", tokens.AlgEdDSA, tokens.AlgES256)
	}
	if strings.TrimSpace(reason) == "" {
		return tokens.StoredKey{}, "", oauth.New(oauth.CodeInvalidRequest, "say why the key is compromised (reason): the audit trail records it")
	}
	k, old, err := ka.RotateCompromised(ctx, ks, alg, kid)
	if err != nil {
		return k, old, err
	}
	s.verified.Clear() // nothing verified under the old key is trusted again
	s.keyEpoch.Add(1)
	s.revoked.notify() // long polls answer now, with revoked_keys
	s.audit(ctx, store.AuditEvent{Time: s.now(), Type: store.AuditKeyRotated, Client: by, KID: k.ID,
		Reason: bounded(fmt.Sprintf("emergency rotation: key %s compromised (%s); %s key %s signs now", old, reason, k.Alg, k.ID))})
	s.log.Warn("signing key compromised: withdrawn at once", slog.String("by", by), slog.String("kid", old), slog.String("new_kid", k.ID), slog.String("reason", reason))
	return k, old, nil
}

// revokedKeys are the compromised kids the feed tells verifiers to drop.
func (s *Service) revokedKeys() []string {
	if ka, ok := s.keys.(KeyAdmin); ok {
		return ka.CompromisedKeys()
	}
	return []string{}
}

// AuditPolicyReload records the outcome of a policy reload.
func (s *Service) AuditPolicyReload(ctx context.Context, dir string, policies int, err error) {
	ev := store.AuditEvent{Time: s.now(), Type: store.AuditPolicyReloaded, Reason: fmt.Sprintf("%d policies loaded from %s", policies, dir)}
	if err != nil {
		ev.Code, ev.Reason = "rejected", fmt.Sprintf("reload of %s rejected, previous policies kept: %v", dir, err)
	}
	s.audit(ctx, ev)
}

// knownHolder reports whether id is a registered client, an ephemeral
// agent's name under a client that may name them, or a name a workload
// rule generates.
func (s *Service) knownHolder(id string) bool {
	if s.registeredOrEphemeral(id) {
		return true
	}
	_, ok := s.generatedHolder(id)
	return ok
}

// registeredOrEphemeral reports whether id is a registered client or an
// ephemeral agent's name under a client that may name them.
func (s *Service) registeredOrEphemeral(id string) bool {
	if _, ok := s.clients[id]; ok {
		return true
	}
	owner, name, ok := strings.Cut(id, "/")
	c := s.clients[owner]
	return ok && c != nil && c.Ephemeral != nil && agentName.MatchString(name)
}
