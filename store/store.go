// Package store defines what Mandate persists, the interfaces a storage
// backend satisfies, and the rules every backend applies alike (audit
// chaining and verification, retention); store/bolt is the embedded default,
// and store/storetest the conformance suite every backend passes.
//
// Invariants every backend keeps: a method that returns nil has made its write
// durable (an acknowledged token or revocation survives a crash); a revocation
// is one record however many descendants it cuts off, since verifiers walk
// lineage, not the tree; a revocation record may be dropped once its token has
// expired, because no descendant outlives it. Records hold no secrets and no
// whole tokens, only claims.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// ErrNotFound is returned when a record does not exist (or was collected).
var ErrNotFound = errors.New("not found")

// ErrAncestorRevoked is returned (wrapped, naming the jti) by PutToken for
// a token one of whose ancestors is revoked: it is not recorded, so it is
// never issued.
var ErrAncestorRevoked = errors.New("an ancestor of the token is revoked")

// ErrUnavailable marks an error (errors.Is) of a store that could not be
// reached, or lost its connection: nothing was acknowledged, and the same
// call may succeed later. A server answers it with 503 and Retry-After,
// never with a guess. An embedded store never returns it.
var ErrUnavailable = errors.New("store unavailable")

// ErrReadOnly is returned by every write to a store opened read-only (for
// forensics on a stopped server), which reads but never changes the data.
var ErrReadOnly = errors.New("store opened read-only")

// TokenRecord is what Mandate remembers of an issued token: its claims, not the
// token itself. Parent is the last lineage entry ("" for a root).
type TokenRecord struct {
	JTI       string     `json:"jti"`
	Parent    string     `json:"parent,omitempty"`
	Lineage   []string   `json:"lineage"`
	Subject   string     `json:"sub"`
	SubIss    string     `json:"sub_iss,omitempty"`
	Holder    string     `json:"holder"`
	Act       *jwt.Actor `json:"act,omitempty"`
	Scope     string     `json:"scope"`
	Audience  []string   `json:"aud"`
	IssuedAt  time.Time  `json:"iat"`
	ExpiresAt time.Time  `json:"exp"`
	JKT       string     `json:"jkt,omitempty"`
}

// Revocation records that a token, and with it every descendant, is revoked.
// Seq is its position in the store's revocation log, assigned by Revoke.
type Revocation struct {
	Seq       uint64    `json:"seq"`
	JTI       string    `json:"jti"`
	ExpiresAt time.Time `json:"exp"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason,omitempty"`
	By        string    `json:"by,omitempty"`
}

// Tokens persists token records and their parent → child index.
type Tokens interface {
	// PutToken durably stores rec, indexes it under its parent and holder, and
	// appends ev (if not nil) to the audit trail in the same transaction —
	// unless a jti of rec.Lineage is revoked, when it writes nothing and
	// returns an error matching ErrAncestorRevoked. That check and the
	// write are one step against revocations (through any process sharing
	// the store): a revocation committed before it refuses the token, one
	// committed after finds the token recorded below it.
	PutToken(ctx context.Context, rec *TokenRecord, ev *AuditEvent) error
	// Token returns the record with the given jti, or ErrNotFound.
	Token(ctx context.Context, jti string) (*TokenRecord, error)
	// Children returns the jtis of the tokens issued directly from jti, in
	// jti order.
	Children(ctx context.Context, jti string) ([]string, error)
	// HeldBy returns the records of the tokens holder holds that expire after
	// now, soonest expiry first.
	HeldBy(ctx context.Context, holder string, now time.Time) ([]*TokenRecord, error)
	// ScanTokens returns up to limit records with a jti after the given one, in
	// jti order. It holds no transaction once it returns, so callers may read
	// the store again while working through the batch.
	ScanTokens(ctx context.Context, after string, limit int) ([]*TokenRecord, error)
}

// Revocations persists revocation records.
type Revocations interface {
	// Revoke durably records r and appends it to the revocation log, setting
	// its Seq, and appends ev (if not nil) to the audit trail, in one
	// transaction. If the token is already revoked it returns the existing
	// record and false, leaving everything unchanged.
	Revoke(ctx context.Context, r Revocation, ev *AuditEvent) (Revocation, bool, error)
	// FirstRevoked returns the revocation of the first jti in jtis that is
	// revoked, or nil when none is.
	FirstRevoked(ctx context.Context, jtis ...string) (*Revocation, error)
}

// Suspensions persists the deviation detector's suspensions, so a restart
// does not lift one.
type Suspensions interface {
	// Suspend durably records that client gets no token until until.
	Suspend(ctx context.Context, client string, until time.Time) error
	// Suspended returns the suspensions still in force at now.
	Suspended(ctx context.Context, now time.Time) (map[string]time.Time, error)
}

// RevocationLog is the ordered log of revocations that feeds resource servers.
// Entries leave it when their revocation record is collected, so reading it
// from the start yields every revocation that still matters.
type RevocationLog interface {
	// RevocationsAfter returns up to limit stored revocations with Seq > after,
	// in order; next is the Seq of the last entry it examined (or head when
	// it reached the end), and head the Seq of the newest revocation ever
	// recorded.
	RevocationsAfter(ctx context.Context, after uint64, limit int) (revs []Revocation, next, head uint64, err error)
	// RevocationAt returns the jti logged at seq, if that entry is still stored.
	RevocationAt(ctx context.Context, seq uint64) (string, bool, error)
	// ID identifies this store, so a log position from another store is never
	// mistaken for one of this store's.
	ID() string
}

// Kinds of single-use values (Replays), each its own namespace.
const (
	// ReplayDPoP is a DPoP proof accepted at the token endpoint.
	ReplayDPoP = "dpop"
	// ReplayAssertion is a private_key_jwt client assertion.
	ReplayAssertion = "assertion"
	// ReplayWorkload is a single-use workload issuer's token (RFC 7523).
	ReplayWorkload = "workload"
	// ReplayIDJAG is an identity assertion JWT authorization grant.
	ReplayIDJAG = "id-jag"
)

// SingleUse records single-use values durably, so one used before a
// restart is still refused after it (every backend: the embedded one
// writes once per call, so only rare values — ID-JAGs, single-use workload
// tokens — go through it, never each DPoP proof).
type SingleUse interface {
	// RecordOnce durably records key in namespace kind until expires and
	// reports whether this call recorded it (false: a replay).
	RecordOnce(ctx context.Context, kind, key string, expires time.Time) (bool, error)
}

// Replays remembers single-use values — a DPoP proof's jti, a client
// assertion's — for every process that shares the store, so a value used at
// one replica is refused at another. An embedded store, which one process
// owns, need not implement it: the process's memory serves.
type Replays interface {
	// FirstUse durably records key in namespace kind until expires and
	// reports whether this call recorded it (false: it was used before, a
	// replay).
	FirstUse(ctx context.Context, kind, key string, expires time.Time) (bool, error)
}
