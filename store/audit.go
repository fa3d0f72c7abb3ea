package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Audit event types.
const (
	AuditIssued         = "issued"
	AuditRefused        = "refused"
	AuditRevoked        = "revoked"
	AuditSuspended      = "suspended"
	AuditKeyRotated     = "key_rotated"
	AuditPolicyReloaded = "policy_reloaded"
	// AuditCollected records a collection of old records and vouches for the
	// chain's new base (Base, BaseHash), so deleting records from the start
	// of the trail is detected.
	AuditCollected = "audit_collected"
)

// AuditEvent is one decision to record: what happened, to which token, at
// whose request, and why. It never holds a token or a secret.
type AuditEvent struct {
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Client   string    `json:"client,omitempty"`
	Grant    string    `json:"grant,omitempty"`
	JTI      string    `json:"jti,omitempty"`
	Holder   string    `json:"holder,omitempty"`
	Subject  string    `json:"sub,omitempty"`
	Scope    string    `json:"scope,omitempty"`
	Root     string    `json:"root,omitempty"`
	Depth    int       `json:"depth,omitempty"`
	Code     string    `json:"code,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Policies []string  `json:"policies,omitempty"`
	// Count, on a refused record, is how many refusals it stands for when
	// repeated ones were coalesced (0 or absent: one).
	Count    int    `json:"count,omitempty"`
	KID      string `json:"kid,omitempty"`
	Base     uint64 `json:"base,omitempty"`
	BaseHash string `json:"base_hash,omitempty"`
	// Assertion, on an issued root, names the platform token or ID-JAG
	// that started the chain (the JWT bearer grant). Last and omitted when
	// absent, so records written before it hash as they did.
	Assertion *AssertionRef `json:"assertion,omitempty"`
}

// AssertionRef names an assertion without keeping it: its issuer, subject
// and jti, or, for a token without a jti, the SHA-256 (hex) of the token.
type AssertionRef struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	JTI     string `json:"jti,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	// Kind is "workload" or "id-jag".
	Kind string `json:"kind"`
}

// AuditRecord is an event as the trail keeps it: numbered, and chained to the
// record before it by hash, so editing, removing or reordering any record
// breaks the chain from there on.
type AuditRecord struct {
	Seq uint64 `json:"seq"`
	AuditEvent
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// ComputeHash is the SHA-256 (hex) of the record's JSON with Hash empty: it
// covers the sequence number, the event and the previous record's hash.
func (r AuditRecord) ComputeHash() string {
	r.Hash = ""
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// AuditReport is the outcome of verifying the trail.
type AuditReport struct {
	OK      bool   `json:"ok"`
	Records int    `json:"records"`
	First   uint64 `json:"first"` // the oldest record kept (older ones were collected)
	Last    uint64 `json:"last"`
	Head    string `json:"head"` // hash of the newest record: anchor it elsewhere to detect truncation
	// BrokenAt is the first record that fails, and Problem says how.
	BrokenAt uint64 `json:"broken_at,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// Audit is the audit trail. Writers of decisions (PutToken, Revoke) append
// their event in the same transaction; Append records the others. Every
// backend chains records with NextAuditRecord and verifies with
// VerifyAuditChain, so a trail means the same whatever stores it.
type Audit interface {
	// Append durably adds a record for ev.
	Append(ctx context.Context, ev AuditEvent) error
	// AuditAfter returns up to limit records with Seq > after, oldest first.
	AuditAfter(ctx context.Context, after uint64, limit int) ([]AuditRecord, error)
	// AuditTail returns the newest n records, oldest first.
	AuditTail(ctx context.Context, n int) ([]AuditRecord, error)
	// VerifyAudit recomputes the chain and reports the first broken record.
	VerifyAudit(ctx context.Context) (AuditReport, error)
}
