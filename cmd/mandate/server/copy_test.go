package server

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/postgres"
)

// TestCopyStoreToPostgres: a stopped bbolt server's store copied into an
// empty PostgreSQL database keeps every token and revocation (Seqs, head and
// store id, so feed cursors stay valid), seals the keys, keeps the audit chain
// verifiable as one replica's chain, refuses a second copy into the same
// database, and a server started on the copy answers for the old tokens.
func TestCopyStoreToPostgres(t *testing.T) {
	dsn := pgRole(t)
	dir := t.TempDir()
	s := startTest(t, testConfig(dir)) // no KEK: the file's keys are in clear
	mint := func(client string) string {
		r := call(t, s, "/oauth2/token", client, url.Values{"grant_type": {"client_credentials"}})
		if r["status"] != 200 {
			t.Fatalf("mint: %v", r)
		}
		return r["access_token"].(string)
	}
	kept, revoked, alsoRevoked := mint("orchestrator"), mint("orchestrator"), mint("orchestrator")
	child := call(t, s, "/oauth2/token", "orchestrator", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {revoked}, "subject_token_type": {oauth.TokenTypeAccessToken},
		"actor_token":      {call(t, s, "/oauth2/token", "researcher", url.Values{"grant_type": {"client_credentials"}, "audience": {s.URL}})["access_token"].(string)},
		"actor_token_type": {oauth.TokenTypeAccessToken},
	})["access_token"].(string)
	for _, tok := range []string{revoked, alsoRevoked} {
		if r := call(t, s, "/oauth2/revoke", "orchestrator", url.Values{"token": {tok}}); r["status"] != 200 {
			t.Fatalf("revoke: %v", r)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	src, err := bolt.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantTokens, _ := src.ScanTokens(ctx, "", 1000)
	wantRevs, _, wantHead, _ := src.RevocationsAfter(ctx, 0, 0)
	wantID := src.ID()
	wantAudit, _ := src.AuditAfter(ctx, 0, 0)
	src.Close()
	if len(wantTokens) < 5 || len(wantRevs) != 2 || wantHead != 2 || len(wantAudit) == 0 {
		t.Fatalf("source: %d tokens, %d revocations, head %d, %d audit records", len(wantTokens), len(wantRevs), wantHead, len(wantAudit))
	}

	kek := bytes.Repeat([]byte{9}, 32) // testKEK
	if _, err := CopyStore(ctx, dir, dsn, "r1", nil); err == nil {
		t.Error("a copy without the KEK was made")
	}
	rep, err := CopyStore(ctx, dir, dsn, "r1", kek)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tokens != len(wantTokens) || rep.Revocations != 2 || rep.Audit != len(wantAudit) || rep.Keys == 0 {
		t.Errorf("report: %+v", rep)
	}
	if _, err := CopyStore(ctx, dir, dsn, "r1", kek); !errors.Is(err, postgres.ErrNotEmpty) {
		t.Errorf("a second copy into the same database: %v", err)
	}

	dst, err := postgres.OpenReadOnly(ctx, dsn, postgres.Options{Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if dst.ID() != wantID {
		t.Errorf("store id %q, want the file's %q", dst.ID(), wantID)
	}
	for _, w := range wantTokens {
		if got, err := dst.Token(ctx, w.JTI); err != nil || got.Holder != w.Holder || !got.ExpiresAt.Equal(w.ExpiresAt) || len(got.Lineage) != len(w.Lineage) {
			t.Errorf("token %s: %+v %v", w.JTI, got, err)
		}
	}
	revs, _, head, err := dst.RevocationsAfter(ctx, 0, 0)
	if err != nil || head != wantHead || len(revs) != len(wantRevs) {
		t.Fatalf("revocations: %+v head %d %v", revs, head, err)
	}
	for i := range revs {
		if revs[i].Seq != wantRevs[i].Seq || revs[i].JTI != wantRevs[i].JTI {
			t.Errorf("revocation %d: %+v, want %+v", i, revs[i], wantRevs[i])
		}
	}
	keys, _ := dst.SigningKeys(ctx)
	for _, k := range keys {
		if !k.Sealed && !k.Destroyed() {
			t.Errorf("key %s copied in clear", k.ID)
		}
	}
	verify := func(when string) {
		chains, err := dst.VerifyAuditChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chains {
			if !c.OK || (c.Replica == "r1" && c.Records < len(wantAudit)) {
				t.Errorf("%s: chain %+v", when, c)
			}
		}
	}
	verify("after the copy")

	cfg := testConfig("")
	cfg.Store.Postgres = PostgresConfig{DSN: dsn, Replica: "r1"}
	cfg.Signing.KEK = testKEK
	s = startTest(t, cfg)
	for tok, active := range map[string]bool{kept: true, revoked: false, alsoRevoked: false, child: false} {
		if r := call(t, s, "/oauth2/introspect", "rs", url.Values{"token": {tok}}); r["active"] != active {
			t.Errorf("introspection on the copy (want active %v): %v", active, r)
		}
	}
	mint("orchestrator") // appends to r1's chain after the copied records
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	verify("after serving")
	dst.Close()
}
