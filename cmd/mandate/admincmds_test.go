package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

var goldenT0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// fixedStore writes a small, fixed task into a data directory: a root, a
// researcher's child (revoked by its holder), the db-agent's grandchildren
// (one live, one expired), and a mailer's sibling (revoked by an operator).
func fixedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(dir, bolt.Options{Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	at := func(m int) time.Time { return goldenT0.Add(time.Duration(m) * time.Minute) }
	put := func(jti string, lineage []string, holder string, act *jwt.Actor, scope string, exp time.Time) {
		rec := &store.TokenRecord{JTI: jti, Lineage: lineage, Subject: "orchestrator", Holder: holder, Act: act,
			Scope: scope, Audience: []string{"https://db.example"}, IssuedAt: goldenT0, ExpiresAt: exp}
		if n := len(lineage); n > 0 {
			rec.Parent = lineage[n-1]
		}
		ev := &store.AuditEvent{Time: goldenT0, Type: store.AuditIssued, Client: "orchestrator", JTI: jti, Holder: holder,
			Subject: "orchestrator", Scope: scope, Depth: len(lineage)}
		if err := db.PutToken(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
	}
	researcher := &jwt.Actor{Subject: "researcher"}
	put("task-root", nil, "orchestrator", nil, "db:read:* tools:*", at(15))
	put("tok-researcher", []string{"task-root"}, "researcher", researcher, "db:read:*", at(5))
	put("tok-mailer", []string{"task-root"}, "mailer", &jwt.Actor{Subject: "mailer"}, "tools:mail", at(5))
	put("tok-db-agent", []string{"task-root", "tok-researcher"}, "db-agent", &jwt.Actor{Subject: "db-agent", Act: researcher}, "db:read:orders", at(5))
	put("tok-db-agent-2", []string{"task-root", "tok-researcher"}, "db-agent", &jwt.Actor{Subject: "db-agent", Act: researcher}, "db:read:users", at(2))
	revoke := func(jti, by, reason string, m int) {
		_, _, err := db.Revoke(ctx, store.Revocation{JTI: jti, ExpiresAt: at(5), RevokedAt: at(m), Reason: reason, By: by},
			&store.AuditEvent{Time: at(m), Type: store.AuditRevoked, Client: by, JTI: jti, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
	}
	revoke("tok-mailer", "ops", "incident 7: mailer misbehaving", 1)
	revoke("tok-researcher", "researcher", "task step done", 2)
	for i, k := range []tokens.StoredKey{
		{ID: "key-2026-10", Alg: "EdDSA", PKCS8: []byte("x"), CreatedAt: at(-60 * 24 * 30)},
		{ID: "key-2026-11", Alg: "EdDSA", PKCS8: []byte("x"), CreatedAt: at(-10), ActivatesAt: at(-10)},
		{ID: "key-next", Alg: "ES256", PKCS8: []byte("x"), CreatedAt: at(2), ActivatesAt: at(4)},
	} {
		if err := db.AddSigningKey(ctx, k); err != nil {
			t.Fatal(i, err)
		}
	}
	return dir
}

func fixedBackend(t *testing.T, dir string) *fileBackend {
	t.Helper()
	db, err := bolt.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fileBackend{db: db, overlap: 16 * time.Minute, now: func() time.Time { return goldenT0.Add(3 * time.Minute) }}
}

func TestGoldenOutputs(t *testing.T) {
	b := fixedBackend(t, fixedStore(t))
	ctx := context.Background()
	l, err := b.Lineage(ctx, "tok-researcher")
	if err != nil {
		t.Fatal(err)
	}
	render := func(f func(*bytes.Buffer)) []byte {
		var buf bytes.Buffer
		f(&buf)
		return buf.Bytes()
	}
	golden(t, "lineage.tree.txt", render(func(w *bytes.Buffer) { renderLineageTree(w, l) }))
	golden(t, "lineage.json", render(func(w *bytes.Buffer) { _ = renderJSON(w, l) }))
	golden(t, "lineage.dot", render(func(w *bytes.Buffer) { renderLineageDOT(w, l) }))
	rootL, _ := b.Lineage(ctx, "task-root")
	golden(t, "lineage-root.tree.txt", render(func(w *bytes.Buffer) { renderLineageTree(w, rootL) }))

	page, err := b.ListTokens(ctx, delegation.TokenFilter{Root: "task-root"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "tokens-list.txt", render(func(w *bytes.Buffer) { renderTokens(w, page.Tokens) }))
	keys, _ := b.Keys(ctx)
	golden(t, "keys-list.txt", render(func(w *bytes.Buffer) { renderKeys(w, keys) }))
	recs, _ := b.AuditTail(ctx, 20)
	golden(t, "audit-tail.txt", render(func(w *bytes.Buffer) { renderAudit(w, recs) }))
	rep, _ := b.VerifyAudit(ctx)
	golden(t, "audit-verify.txt", render(func(w *bytes.Buffer) { renderVerify(w, rep) }))
}

func TestForensicsOnAStoppedServersFile(t *testing.T) {
	dir := fixedStore(t)
	out, err := runCLI(t, "", "lineage", "tok-db-agent", "--db", dir)
	if err != nil || !strings.Contains(out, "tok-db-agent  db-agent  [revoked-by-ancestor (tok-researcher)]  ◀") {
		t.Fatalf("lineage --db: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "revoke", "tok-db-agent", "--reason", "x", "--db", dir); !errors.Is(err, errReadOnly) {
		t.Errorf("revoke --db: %v", err)
	}
	if _, err := runCLI(t, "", "keys", "rotate", "--db", dir); !errors.Is(err, errReadOnly) {
		t.Errorf("keys rotate --db: %v", err)
	}
	out, err = runCLI(t, "", "audit", "verify", "--db", dir)
	if err != nil || !strings.Contains(out, "audit trail intact: 7 records") {
		t.Errorf("audit verify --db: %v\n%s", err, out)
	}
	// A running server's file is locked: --db refuses rather than read it mid-write.
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := runCLI(t, "", "lineage", "tok-db-agent", "--db", dir); err == nil || !strings.Contains(err.Error(), "running server") {
		t.Errorf("--db on a locked file: %v", err)
	}
}

// TestAuditVerifyNamesAnEditedRecord edits one record in the bbolt file, as
// someone covering their tracks would, and expects `audit verify` to name it.
func TestAuditVerifyNamesAnEditedRecord(t *testing.T) {
	dir := fixedStore(t)
	raw, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, 6)
		v := strings.Replace(string(b.Get(k)), `"client":"ops"`, `"client":"nobody"`, 1)
		return b.Put(k, []byte(v))
	})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "", "audit", "verify", "--db", dir)
	// As docs/operators.md shows it.
	if !errors.Is(err, errDenied) || out != "audit trail BROKEN at record #6: record 6 was altered: its content does not match its hash\n(7 records, #1..#7)\n" {
		t.Fatalf("audit verify after an edit: %v\n%s", err, out)
	}
}

func TestAuditLinesCannotBeForged(t *testing.T) {
	var buf bytes.Buffer
	renderAudit(&buf, []store.AuditRecord{{Seq: 1, AuditEvent: store.AuditEvent{Time: goldenT0, Type: "refused",
		Grant: "x\n#8      2026-11-27T09:00:00Z revoked  client=ops\x1b[2K", Reason: "r\rx"}}})
	if strings.Count(buf.String(), "\n") != 1 || strings.ContainsAny(buf.String(), "\x1b\r") {
		t.Errorf("a record printed as more than one line, or with an escape: %q", buf.String())
	}
}

// TestAuditTailNamesTheAssertion: a root the JWT bearer grant issued shows
// which platform token started its chain (by jti, or by hash without one).
func TestAuditTailNamesTheAssertion(t *testing.T) {
	var buf bytes.Buffer
	renderAudit(&buf, []store.AuditRecord{
		{Seq: 1, AuditEvent: store.AuditEvent{Time: goldenT0, Type: store.AuditIssued, Client: "k8s/agents/researcher", Grant: "jwt_bearer", JTI: "j1",
			Assertion: &store.AssertionRef{Kind: "workload", Issuer: "https://kubernetes.default.svc.cluster.local", Subject: "system:serviceaccount:agents:researcher", JTI: "a1"}}},
		{Seq: 2, AuditEvent: store.AuditEvent{Time: goldenT0, Type: store.AuditIssued, Grant: "jwt_bearer", JTI: "j2",
			Assertion: &store.AssertionRef{Kind: "workload", Issuer: "spiffe://example.org", Subject: "spiffe://example.org/agents/s", SHA256: "ab12"}}},
	})
	want := "#1      2026-11-27T09:00:00Z issued          client=k8s/agents/researcher grant=jwt_bearer jti=j1 assertion=workload assertion_iss=https://kubernetes.default.svc.cluster.local assertion_sub=system:serviceaccount:agents:researcher assertion_jti=a1\n" +
		"#2      2026-11-27T09:00:00Z issued          grant=jwt_bearer jti=j2 assertion=workload assertion_iss=spiffe://example.org assertion_sub=spiffe://example.org/agents/s assertion_sha256=ab12\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// TestAuditAnchor: a trail rewritten in full (every hash recomputed, head
// updated) verifies on its own, but not against a head hash anchored earlier.
func TestAuditAnchor(t *testing.T) {
	dir := fixedStore(t)
	out, err := runCLI(t, "", "audit", "verify", "--db", dir)
	if err != nil {
		t.Fatal(err)
	}
	anchor := strings.Fields(strings.Split(out, "head ")[1])[0]
	if out, err := runCLI(t, "", "audit", "verify", "--db", dir, "--anchor", anchor); err != nil || !strings.Contains(out, "anchor #7 matches") {
		t.Fatalf("intact: %v\n%s", err, out)
	}
	// Rewrite record 6 and re-chain everything after it, as a careful forger would.
	raw, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Update(func(tx *bbolt.Tx) error {
		b, meta := tx.Bucket([]byte("audit")), tx.Bucket([]byte("meta"))
		prev := ""
		for i := uint64(1); i <= 7; i++ {
			k := make([]byte, 8)
			binary.BigEndian.PutUint64(k, i)
			var r store.AuditRecord
			_ = jsonUnmarshal(b.Get(k), &r)
			if i == 6 {
				r.Client = "nobody"
			}
			r.Prev = prev
			r.Hash = r.ComputeHash()
			prev = r.Hash
			v, _ := json.Marshal(r)
			_ = b.Put(k, v)
		}
		return meta.Put([]byte("audit_head"), []byte(prev))
	})
	raw.Close()
	if out, err := runCLI(t, "", "audit", "verify", "--db", dir); err != nil {
		t.Fatalf("a fully re-chained trail should verify on its own: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "", "audit", "verify", "--db", dir, "--anchor", anchor); !errors.Is(err, errDenied) || !strings.Contains(out, "rewritten") {
		t.Fatalf("against the anchor: %v\n%s", err, out)
	}
}

// TestEmergencyRotationNeedsAReason: `keys rotate --compromised` says why,
// for the audit trail, before anything is sent.
func TestEmergencyRotationNeedsAReason(t *testing.T) {
	if _, err := runCLI(t, "", "keys", "rotate", "--compromised", "--server", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "--reason is required with --compromised") {
		t.Errorf("err = %v", err)
	}
}

// TestAuditAnchorMustBeWellFormed: an --anchor that is not SEQ:HASH (a
// record number from 1, 64 hex characters) is a usage error (exit 2)
// naming the form, never a verdict: a mistyped anchor must not report a
// tampered (exit 1) or truncated trail.
func TestAuditAnchorMustBeWellFormed(t *testing.T) {
	dir := fixedStore(t)
	hash := strings.Repeat("ab", 32)
	var tr transcript
	for _, anchor := range []string{"3:deadbeef", "999:abc", "0:" + hash, "-1:" + hash, "x:" + hash, "+3:" + hash, "3", "3:", ":" + hash,
		"3:" + hash[:63], "3:" + hash + "0", "3:" + strings.Repeat("zz", 32)} {
		out, stderr, code := runMain(t, "", "audit", "verify", "--db", dir, "--anchor", anchor)
		if code != exitError || out != "" || !strings.HasPrefix(stderr, "mandate: --anchor ") ||
			!strings.Contains(stderr, `give SEQ:HASH as "mandate audit verify" prints it`) {
			t.Errorf("--anchor %q: exit %d, %q\n%s", anchor, code, stderr, out)
		}
		if anchor == "3:deadbeef" || anchor == "999:abc" || anchor == "0:"+hash {
			tr.run(t, "", "audit", "verify", "--db", dir, "--anchor", anchor)
		}
	}
	// Well-formed anchors still get their verdicts: a record that is not
	// there (truncated, exit 1), a hash that differs (rewritten, exit 1),
	// upper-case hex read as the same hash.
	out, err := runCLI(t, "", "audit", "verify", "--db", dir)
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Fields(strings.Split(out, "head ")[1])[0]
	for _, tt := range []struct {
		anchor string
		code   int
		want   string
	}{
		{"999:" + hash, exitDenied, "anchor MISMATCH: record #999 is gone: the trail was truncated"},
		{"3:" + hash, exitDenied, "anchor MISMATCH: record #3's hash is not the anchored one: the trail was rewritten"},
		{strings.ToUpper(head), exitOK, "anchor #7 matches"},
	} {
		out, code := tr.run(t, "", "audit", "verify", "--db", dir, "--anchor", tt.anchor)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("--anchor %s: exit %d, want %d and %q:\n%s", tt.anchor, code, tt.code, tt.want, out)
		}
	}
	goldenCLI(t, "audit-anchor.txt", tr.String(), (&normalizer{}).add(dir, "DIR").add(strings.ToUpper(head), "7:UPPER-CASE-HASH"))
}
