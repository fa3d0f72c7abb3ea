package delegationtest_test

import (
	"crypto/x509"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestMain starts one throw-away PostgreSQL for the package's tests that
// need one (the others never touch it).
func TestMain(m *testing.M) { pgtest.Main(m) }

// testIssuer is the issuer every server on PostgreSQL runs with: replicas
// of one Mandate share it, and a restart on another port keeps it.
const testIssuer = "http://mandate.test"

// onPostgres starts a server through server.Start on a database of the
// package's cluster, as replica (a new database when dsn is empty).
func onPostgres(t *testing.T, dsn, replica string, opts dt.Options) (*dt.Env, string) {
	t.Helper()
	if dsn == "" {
		dsn = pgtest.Need(t).NewDatabase(t)
	}
	opts.Postgres, opts.Replica, opts.Issuer = dsn, replica, testIssuer
	return dt.New(t, opts), dsn
}

// TestEndToEndOnPostgres: the flows every test runs on bbolt — mint,
// exchange down a chain, introspect, the revocation feed (snapshot, cursor,
// a long poll woken by a revocation), revoke with its cascade — run
// through server.Start on PostgreSQL, with keys sealed in the database,
// and survive a restart of the server.
func TestEndToEndOnPostgres(t *testing.T) {
	env, dsn := onPostgres(t, "", "a", dt.Options{})
	if env.Bolt != nil {
		t.Fatal("the server runs on bbolt")
	}
	if _, ok := env.DB.(*postgres.DB); !ok {
		t.Fatalf("the store is %T", env.DB)
	}
	stored, err := env.DB.SigningKeys(t.Context())
	if err != nil || len(stored) != 1 {
		t.Fatalf("%d keys stored: %v", len(stored), err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(stored[0].PKCS8); !stored[0].Sealed || err == nil {
		t.Fatal("the signing key rests in clear in the database")
	}

	root := env.Mint(t, "orchestrator", nil)
	child := env.Delegate(t, "orchestrator", root, "researcher", nil)
	grand := env.Delegate(t, "researcher", child, "db-agent", nil)
	other := env.Mint(t, "outsider", nil)
	for _, tok := range []string{root, child, grand, other} {
		if r := env.Introspect(t, "no-grants-rs", tok); r.JSON["active"] != true {
			t.Fatalf("introspection of a live token: %d %s", r.Status, r.Raw)
		}
	}
	if r := env.Introspect(t, "no-grants-rs", grand); len(r.JSON["lineage"].([]any)) != 2 {
		t.Errorf("grandchild's lineage: %s", r.Raw)
	}

	snap := env.Feed(t, "no-grants-rs", "", 0)
	if len(dt.FeedJTIs(t, snap)) != 0 || snap.JSON["reset"] != true {
		t.Fatalf("first feed: %s", snap.Raw)
	}
	cursor := snap.String("cursor")
	polled := make(chan dt.Response, 1)
	go func() { polled <- env.Feed(t, "no-grants-rs", cursor, 20*time.Second) }()
	time.Sleep(50 * time.Millisecond) // the poll is waiting
	start := time.Now()
	env.Revoke(t, "orchestrator", root)
	r := <-polled
	if got := dt.FeedJTIs(t, r); !slices.Equal(got, []string{env.Claims(t, root).ID}) || r.JSON["reset"] != false {
		t.Fatalf("long poll: %s", r.Raw)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the long poll answered %v after the revocation", waited)
	}
	cursor = r.String("cursor")
	for _, tok := range []string{root, child, grand} {
		if r := env.Introspect(t, "no-grants-rs", tok); r.Status != http.StatusOK || strings.TrimSpace(string(r.Raw)) != `{"active":false}` {
			t.Errorf("introspection after the root's revocation: %d %s", r.Status, r.Raw)
		}
	}
	if r := env.Exchange(t, "researcher", child, "", nil); r.Error() != oauth.CodeInvalidRequest || !strings.Contains(r.String("error_description"), "revoked") {
		t.Errorf("exchange of a revoked token's child: %d %s", r.Status, r.Raw)
	}
	if rep, err := env.DB.VerifyAudit(t.Context()); err != nil || !rep.OK || rep.Records < 6 {
		t.Errorf("audit: %+v %v", rep, err)
	}
	if m := env.Get(t, env.Base+"/metrics"); !strings.Contains(string(m.Raw), "mandate_store_pool_connections ") || strings.Contains(string(m.Raw), "mandate_store_file_bytes") {
		t.Errorf("metrics on PostgreSQL: pool gauges missing, or bbolt's shown")
	}

	// A restart keeps the key, the tokens, the revocations and the feed's
	// cursors (the store id lives in the database).
	kid := env.Keys.CurrentKeyID()
	env.Stop(t)
	env, _ = onPostgres(t, dsn, "a", dt.Options{Clock: env.Clock})
	if env.Keys.CurrentKeyID() != kid {
		t.Error("the signing key changed across a restart")
	}
	if r := env.Introspect(t, "no-grants-rs", other); r.JSON["active"] != true {
		t.Errorf("a live token after the restart: %s", r.Raw)
	}
	if r := env.Introspect(t, "no-grants-rs", grand); r.JSON["active"] != false {
		t.Errorf("a revoked chain after the restart: %s", r.Raw)
	}
	env.Revoke(t, "outsider", other)
	r = env.Feed(t, "no-grants-rs", cursor, 0)
	if got := dt.FeedJTIs(t, r); !slices.Equal(got, []string{env.Claims(t, other).ID}) || r.JSON["reset"] != false {
		t.Errorf("feed from a cursor of before the restart: %s", r.Raw)
	}
}
