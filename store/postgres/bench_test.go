package postgres_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
	"github.com/mandate-auth/mandate/store/storetest"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

func benchRecord(jti string, exp time.Time) *store.TokenRecord {
	return &store.TokenRecord{JTI: jti, Parent: "root", Lineage: []string{"root"}, Subject: "orchestrator", Holder: "researcher",
		Act: &jwt.Actor{Subject: "researcher"}, Scope: "db:read:orders", Audience: []string{"https://db.example"},
		IssuedAt: exp.Add(-5 * time.Minute), ExpiresAt: exp}
}

// BenchmarkPutToken is one durable token write with its audit record, as
// store/bolt's benchmark of the same name: serially each pays a commit; in
// parallel, group commit shares the round trips and the commit.
func BenchmarkPutToken(b *testing.B) {
	c := pgtest.Need(b)
	exp := time.Now().Add(time.Hour)
	for _, par := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", par), func(b *testing.B) {
			db, err := postgres.Open(context.Background(), c.NewDatabase(b), postgres.Options{Replica: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var n atomic.Int64
			put := func() error {
				jti := fmt.Sprint("t", n.Add(1))
				return db.PutToken(context.Background(), benchRecord(jti, exp), &store.AuditEvent{Time: exp, Type: store.AuditIssued, JTI: jti})
			}
			if par == 1 {
				for b.Loop() {
					if err := put(); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := put(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRevoke is one durable revocation with its audit record, by 32
// writers at once: revocations serialize on the log's counter, so the
// group commit is what lets them scale.
func BenchmarkRevoke(b *testing.B) {
	db, err := postgres.Open(context.Background(), pgtest.Need(b).NewDatabase(b), postgres.Options{Replica: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	exp := time.Now().Add(time.Hour)
	var n atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			jti := fmt.Sprint("r", n.Add(1))
			if _, _, err := db.Revoke(context.Background(), store.Revocation{JTI: jti, ExpiresAt: exp, RevokedAt: exp},
				&store.AuditEvent{Time: exp, Type: store.AuditRevoked, JTI: jti}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// largeRuns reports whether the benchmarks' large cases run: not under
// -short, and not when -benchtime is an iteration count (CI's smoke run,
// `make bench`, is -benchtime=100x), where their setup (100,000 token
// writes, ~9 s) or a hundred walks of a large tree would dominate. Run them
// with a duration: the default 1s or more.
func largeRuns() bool {
	if testing.Short() {
		return false
	}
	f := flag.Lookup("test.benchtime")
	return f == nil || !strings.HasSuffix(f.Value.String(), "x")
}

// cascadeTask is a store holding one task: a root the orchestrator minted,
// a child and a grandchild exchanged from it (real tokens, as the service
// issues them), and size more descendants of the root written straight to
// the store (a two-level tree: children of the root, grandchildren under
// them).
type cascadeTask struct {
	db         *postgres.DB
	svc        *delegation.Service
	orch, ops  *delegation.Registration
	rs         *delegation.Registration
	root       string // the root token
	rootJTI    string
	grandchild string // a token two exchanges below the root
	sql        *pgx.Conn
}

func newCascadeTask(b *testing.B, size int) *cascadeTask {
	ctx := context.Background()
	dsn := pgtest.Need(b).NewDatabase(b)
	db, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ks, err := tokens.NewSealedKeyStore(db, kek)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := tokens.OpenKeyRing(ctx, ks, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	both := []string{delegation.GrantNameClientCredentials, delegation.GrantNameTokenExchange}
	svc, err := delegation.New(delegation.Config{Issuer: "https://mandate.example", RootTTL: time.Hour, DelegatedTTL: time.Hour, MaxDepth: 4,
		Clients: []delegation.Registration{
			{ID: "orchestrator", Secret: delegation.NewPlainSecret("x"), Grants: both, Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}},
			{ID: "rs", Secret: delegation.NewPlainSecret("x"), Role: delegation.RoleResourceServer},
			{ID: "ops", Secret: delegation.NewPlainSecret("x"), Role: delegation.RoleAdmin},
		}}, keys, db)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close)
	t := &cascadeTask{db: db, svc: svc}
	t.orch, _ = svc.Registration("orchestrator")
	t.rs, _ = svc.Registration("rs")
	t.ops, _ = svc.Registration("ops")
	token := func(req delegation.TokenRequest) string {
		r, err := svc.Token(ctx, t.orch, req)
		if err != nil {
			b.Fatal(err)
		}
		return r.AccessToken
	}
	exchange := func(subject string) string {
		return token(delegation.TokenRequest{GrantType: oauth.GrantTokenExchange, SubjectToken: subject,
			SubjectTokenType: oauth.TokenTypeAccessToken, Scope: "db:read:orders"})
	}
	t.root = token(delegation.TokenRequest{GrantType: oauth.GrantClientCredentials})
	t.grandchild = exchange(exchange(t.root))
	claims, err := keys.Verify(t.root)
	if err != nil {
		b.Fatal(err)
	}
	t.rootJTI = claims.ID
	if t.sql, err = pgx.Connect(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { t.sql.Close(context.Background()) })

	// The rest of the tree, by 64 writers at once: the group commit batches
	// them (up to 512 a transaction).
	start := time.Now()
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	work := make(chan int, 1024)
	for range 64 {
		wg.Go(func() {
			for j := range work {
				child := fmt.Sprintf("c-%d", j/100)
				rec := treeRecord(fmt.Sprintf("g-%d", j), []string{t.rootJTI, child}, exp)
				if j%100 == 0 {
					rec = treeRecord(child, []string{t.rootJTI}, exp)
				}
				if err := db.PutToken(ctx, rec, nil); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for j := range size {
		work <- j
	}
	close(work)
	wg.Wait()
	if testing.Verbose() {
		b.Logf("%d descendants written in %v", size, time.Since(start).Round(time.Millisecond))
	}
	// What autovacuum and the checkpointer would have done by then, so they
	// do not start in the middle of the measurement.
	for _, sql := range []string{`VACUUM ANALYZE`, `CHECKPOINT`} {
		if _, err := t.sql.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	return t
}

// treeRecord is a delegated token's record below lineage.
func treeRecord(jti string, lineage []string, exp time.Time) *store.TokenRecord {
	rec := benchRecord(jti, exp)
	rec.Parent, rec.Lineage = lineage[len(lineage)-1], lineage
	return rec
}

// forget deletes the root's revocation record, as collection would once the
// root expired, so the next iteration revokes a live root with its whole
// tree again.
func (t *cascadeTask) forget(b *testing.B) {
	if _, err := t.sql.Exec(context.Background(), `DELETE FROM mandate_revocations WHERE jti = $1`, t.rootJTI); err != nil {
		b.Fatal(err)
	}
}

// head is the revocation log's head: one more for each record written.
func (t *cascadeTask) head(b *testing.B) int {
	var n int
	if err := t.sql.QueryRow(context.Background(), `SELECT seq FROM mandate_revocation_head`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkCascadeRevocation revokes the root of a task with 10, 1,000 or
// 100,000 descendants, every iteration the same root with its whole tree
// (its revocation record is deleted between iterations, outside the
// timer). The 100,000 case, and admin-revoke beyond 10, run only in large
// runs (largeRuns: not under -short, nor -benchtime Nx, so not in CI's
// `make bench`).
//
//   - revoke: the orchestrator revokes its root (RFC 7009, as an agent
//     does): one check of the lineage and one record, whatever the tree;
//   - admin-revoke: an operator revokes it by jti (the admin API), which
//     also counts the tokens the revocation made unusable (reported as
//     unusable/op) by walking the subtree: three reads per descendant;
//   - introspect-descendant: a resource server introspects a token two
//     exchanges below the revoked root (refused: inactive).
func BenchmarkCascadeRevocation(b *testing.B) {
	sizes := []int{10, 1_000}
	if largeRuns() {
		sizes = append(sizes, 100_000)
	}
	ctx := context.Background()
	for _, size := range sizes {
		b.Run(fmt.Sprintf("descendants=%d", size), func(b *testing.B) {
			t := newCascadeTask(b, size)
			b.Run("revoke", func(b *testing.B) {
				before := t.head(b)
				for range b.N {
					b.StopTimer()
					t.forget(b)
					b.StartTimer()
					if err := t.svc.Revoke(ctx, t.orch, t.root); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if got := t.head(b) - before; got != b.N {
					b.Fatalf("%d revocation records written by %d revocations", got, b.N)
				}
			})
			b.Run("admin-revoke", func(b *testing.B) {
				if size > 10 && !largeRuns() {
					b.Skip("walks the whole tree each time: large runs only (largeRuns)")
				}
				unusable := 0
				for range b.N {
					b.StopTimer()
					t.forget(b)
					b.StartTimer()
					res, err := t.svc.AdminRevoke(ctx, t.ops.ID, delegation.RevokeTarget{JTI: t.rootJTI}, "bench")
					if err != nil {
						b.Fatal(err)
					}
					if res.Revoked != 1 {
						b.Fatalf("admin revocation: %+v", res)
					}
					unusable = res.Unusable
				}
				b.ReportMetric(float64(unusable), "unusable/op")
			})
			b.Run("introspect-descendant", func(b *testing.B) {
				if err := t.svc.Revoke(ctx, t.orch, t.root); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					in, err := t.svc.Introspect(ctx, t.rs, t.grandchild)
					if err != nil {
						b.Fatal(err)
					}
					if in.Active {
						b.Fatal("a descendant of a revoked root is active")
					}
				}
			})
		})
	}
}

// BenchmarkBytesPerToken writes b.N tokens under steady load
// (storetest.SteadyLoad, on a simulated clock: each simulated minute 2,000
// tokens are written that live 5 minutes, so 10,000 are live at any time
// once the first five minutes have passed) — tasks of a root and a child
// delegated from it, each token with its audit record as issuance writes
// them, by 32 writers (group commit) — while retention collection runs (store.RunGC every 50 ms, on the simulated clock; token
// records collected at expiry, audit records once 5 minutes old, so each
// live token keeps about one audit record). It reports the disk the store uses
// per live token (pg_total_relation_size of every Mandate table: rows,
// indexes, TOAST, free space maps), and per token record and audit record,
// when the b.N tokens are written; with -v it logs the same every 10,000
// tokens. Run it with -benchtime 10000x, 50000x, 100000x: flat means
// the figure stays put as the tokens written grow.
//
// PostgreSQL reuses the space of deleted rows only once VACUUM has passed:
// "vacuum=after-gc" runs a plain VACUUM of the tables after each collection
// pass, standing in for autovacuum keeping up (a run compresses hours into
// seconds, and autovacuum wakes once a minute); "vacuum=autovacuum" leaves
// it to the cluster's autovacuum (PostgreSQL's defaults), which in a run
// this short seldom reaches the tables: what a store whose autovacuum is off
// or falling behind looks like.
func BenchmarkBytesPerToken(b *testing.B) {
	for _, vacuum := range []bool{true, false} {
		name := "vacuum=after-gc"
		if !vacuum {
			name = "vacuum=autovacuum"
		}
		b.Run(name, func(b *testing.B) { bytesPerToken(b, vacuum) })
	}
}

// vacuumingCollector is a store's collector followed by a VACUUM of the
// tables collection deletes from.
type vacuumingCollector struct {
	db   *postgres.DB
	conn *pgx.Conn
}

func (v vacuumingCollector) GC(now time.Time) (store.GCResult, error) {
	res, err := v.db.GC(now)
	if err == nil {
		_, err = v.conn.Exec(context.Background(), `VACUUM mandate_tokens, mandate_audit, mandate_audit_chains, mandate_revocations`)
	}
	return res, err
}

// storeSize is what a store's tables hold and use.
type storeSize struct {
	live, tokens, audit           int
	total, tokenBytes, auditBytes int64
}

func measureStore(b *testing.B, conn *pgx.Conn, now time.Time) storeSize {
	var s storeSize
	if err := conn.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM mandate_tokens WHERE expires_at > $1),
		(SELECT count(*) FROM mandate_tokens),
		(SELECT count(*) FROM mandate_audit),
		(SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'mandate\_%'),
		pg_total_relation_size('mandate_tokens'),
		pg_total_relation_size('mandate_audit')`, now).Scan(&s.live, &s.tokens, &s.audit, &s.total, &s.tokenBytes, &s.auditBytes); err != nil {
		b.Fatal(err)
	}
	return s
}

func bytesPerToken(b *testing.B, vacuum bool) {
	ctx := context.Background()
	dsn := pgtest.Need(b).NewDatabase(b)
	db, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "bench", AuditRetention: storetest.SteadyTTL - time.Second, RevocationGrace: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	conns := make([]*pgx.Conn, 2)
	for i := range conns {
		if conns[i], err = pgx.Connect(ctx, dsn); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close(ctx)
	}
	var collector store.Collector = db
	if vacuum {
		collector = vacuumingCollector{db, conns[1]}
	}
	sample := func(written int, now time.Time) storeSize {
		s := measureStore(b, conns[0], now)
		if !testing.Verbose() {
			return s
		}
		b.Logf("%7d written: %6d live tokens (%d records), %5d audit records, %6.1f MiB: %5d bytes per live token (token records %d B, audit records %d B each)",
			written, s.live, s.tokens, s.audit, float64(s.total)/(1<<20), s.total/int64(max(s.live, 1)),
			s.tokenBytes/int64(max(s.tokens, 1)), s.auditBytes/int64(max(s.audit, 1)))
		return s
	}
	end := storetest.SteadyLoad(b, db, collector, func(written int, now time.Time) { sample(written, now) })
	s := sample(b.N, end)
	b.ReportMetric(float64(s.total)/float64(max(s.live, 1)), "B/live-token")
	b.ReportMetric(float64(s.tokenBytes)/float64(max(s.tokens, 1)), "B/token-record")
	b.ReportMetric(float64(s.auditBytes)/float64(max(s.audit, 1)), "B/audit-record")
}
