package delegation

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

// orderedStore records the order of revocation writes and subtree reads.
type orderedStore struct {
	*bolt.DB
	mu    sync.Mutex
	calls []string
}

func (o *orderedStore) note(c string) {
	o.mu.Lock()
	o.calls = append(o.calls, c)
	o.mu.Unlock()
}

func (o *orderedStore) Revoke(ctx context.Context, r store.Revocation, ev *store.AuditEvent) (store.Revocation, bool, error) {
	o.note("revoke " + r.JTI)
	return o.DB.Revoke(ctx, r, ev)
}

func (o *orderedStore) Children(ctx context.Context, jti string) ([]string, error) {
	o.note("children " + jti)
	return o.DB.Children(ctx, jti)
}

// TestAnOperatorsRevocationIsWrittenBeforeTheTreeIsCounted: the admin
// revocation of a task writes its one record before it walks the tree to
// count what it cut off, so a large task is cut off at once (the walk is
// seconds on PostgreSQL at 100,000 tokens), and the count is still right.
func TestAnOperatorsRevocationIsWrittenBeforeTheTreeIsCounted(t *testing.T) {
	db, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := &orderedStore{DB: db}
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	keys, err := tokens.OpenKeyRing(ctx, db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Issuer: "https://m.example", RootTTL: time.Hour, DelegatedTTL: time.Hour, MaxDepth: 4, Now: func() time.Time { return now },
		Clients: []Registration{{ID: "a", Secret: NewPlainSecret("s"), Grants: []string{GrantNameClientCredentials}}}}, keys, st)
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour)
	put := func(jti string, lineage ...string) {
		rec := &store.TokenRecord{JTI: jti, Lineage: lineage, Subject: "a", Holder: "a", IssuedAt: now, ExpiresAt: exp}
		if len(lineage) > 0 {
			rec.Parent = lineage[len(lineage)-1]
		}
		if err := db.PutToken(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	put("root")
	put("c1", "root")
	put("c2", "root")
	put("g1", "root", "c1")
	if _, _, err := db.Revoke(ctx, store.Revocation{JTI: "c2", ExpiresAt: exp, RevokedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := svc.AdminRevoke(ctx, "ops", RevokeTarget{Root: "g1"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Revoked != 1 || res.Unusable != 3 { // root, c1, g1 (c2 was revoked already)
		t.Errorf("result %+v, want 1 record cutting off 3 tokens", res)
	}
	if len(st.calls) == 0 || st.calls[0] != "revoke root" {
		t.Errorf("calls %v: the revocation is not written first", st.calls)
	}
}
