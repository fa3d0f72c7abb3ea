package bolt_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/storetest"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

func benchRecord(jti, parent string, lineage []string, exp time.Time) *store.TokenRecord {
	return &store.TokenRecord{JTI: jti, Parent: parent, Lineage: lineage, Subject: "orchestrator", Holder: "researcher",
		Act: &jwt.Actor{Subject: "researcher"}, Scope: "db:read:orders", Audience: []string{"https://db.example"},
		IssuedAt: exp.Add(-5 * time.Minute), ExpiresAt: exp}
}

// BenchmarkPutToken is one durable token write (record, indexes, audit
// record): serially each pays a commit and an fsync; in parallel, group
// commit shares them.
func BenchmarkPutToken(b *testing.B) {
	exp := time.Now().Add(time.Hour)
	for _, par := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", par), func(b *testing.B) {
			db, err := bolt.Open(b.TempDir(), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var n atomic.Int64
			b.SetParallelism(par)
			if par == 1 {
				for b.Loop() {
					jti := fmt.Sprint("t", n.Add(1))
					if err := db.PutToken(context.Background(), benchRecord(jti, "root", []string{"root"}, exp), &store.AuditEvent{Time: exp, Type: store.AuditIssued, JTI: jti}); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					jti := fmt.Sprint("t", n.Add(1))
					if err := db.PutToken(context.Background(), benchRecord(jti, "root", []string{"root"}, exp), &store.AuditEvent{Time: exp, Type: store.AuditIssued, JTI: jti}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkCascadeRevocation measures revoking a task's root when the task
// has 10 or 100,000 descendants. Revocation writes one record and touches no
// descendant (each names the root in its lineage), so the only thing that
// could grow with the task is the store: the benchmark revokes that task's
// root first, then other roots of the same store, each minted (outside the
// timer) just before it is revoked, so that every iteration writes a
// revocation: one commit and fsync each. The owner revokes its root (RFC
// 7009: one check of the lineage, one record); the admin API's revocation
// also walks the subtree to count what it cut off (store/postgres's
// benchmark measures that walk). The per-revocation cost must not depend on
// the size.
func BenchmarkCascadeRevocation(b *testing.B) {
	for _, size := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("descendants=%d", size), func(b *testing.B) {
			ctx := context.Background()
			now := time.Now()
			db, err := bolt.Open(b.TempDir(), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			keys, err := tokens.OpenKeyRing(ctx, db, tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			svc, err := delegation.New(delegation.Config{Issuer: "https://mandate.example", RootTTL: time.Hour, DelegatedTTL: time.Hour, MaxDepth: 4,
				Clients: []delegation.Registration{{ID: "orchestrator", Secret: delegation.NewPlainSecret("x"),
					Grants: []string{delegation.GrantNameClientCredentials}, Scopes: []string{"db:read:*"}, Audiences: []string{"https://db.example"}}}}, keys, db)
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			orch, _ := svc.Registration("orchestrator")
			mint := func() string {
				r, err := svc.Token(ctx, orch, delegation.TokenRequest{GrantType: oauth.GrantClientCredentials})
				if err != nil {
					b.Fatal(err)
				}
				return r.AccessToken
			}
			root := mint()
			claims, err := keys.Verify(root)
			if err != nil {
				b.Fatal(err)
			}
			// The task's descendants, written straight to the store (a
			// two-level tree: children of the root, grandchildren under them).
			var wg sync.WaitGroup
			work := make(chan int, 1024)
			for range 64 {
				wg.Go(func() {
					for j := range work {
						child := fmt.Sprintf("c-%d", j/100)
						rec := benchRecord(fmt.Sprintf("g-%d", j), child, []string{claims.ID, child}, now.Add(time.Hour))
						if j%100 == 0 {
							rec = benchRecord(child, claims.ID, []string{claims.ID}, now.Add(time.Hour))
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
			next := root
			for b.Loop() {
				if err := svc.Revoke(ctx, orch, next); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				next = mint()
				b.StartTimer()
			}
			if st, err := db.Stats(now); err != nil || st.Revocations != b.N {
				b.Fatalf("%d revocation records after %d revocations (%v)", st.Revocations, b.N, err)
			}
		})
	}
}

// BenchmarkBytesPerToken is store/postgres's benchmark of the same name on
// bbolt, for comparison: b.N tokens under the same steady load
// (storetest.SteadyLoad: tasks of a root and a child, each token with its
// audit record, 32 writers, store.RunGC every 50 ms on the simulated clock,
// token records collected at expiry, audit records once 5 minutes old). It
// reports the data file's size per live token (free pages included: bbolt
// reuses them, the file never shrinks), and the pages of the token buckets
// per token record and of the audit bucket per audit record; -v logs them
// every 10,000 tokens.
func BenchmarkBytesPerToken(b *testing.B) {
	db, err := bolt.Open(b.TempDir(), bolt.Options{AuditRetention: storetest.SteadyTTL - time.Second, RevocationGrace: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sample := func(written int, now time.Time) bolt.Stats {
		s, err := db.Stats(now)
		if err != nil {
			b.Fatal(err)
		}
		if !testing.Verbose() {
			return s
		}
		b.Logf("%7d written: %6d live tokens (%d records), %5d audit records, %6.1f MiB: %5d bytes per live token (token records %d B, audit records %d B each)",
			written, s.Unexpired, s.Tokens, s.AuditRecords, float64(s.FileBytes)/(1<<20), s.FileBytes/int64(max(s.Unexpired, 1)),
			s.TokenBytes/int64(max(s.Tokens, 1)), s.AuditBytes/int64(max(s.AuditRecords, 1)))
		return s
	}
	end := storetest.SteadyLoad(b, db, db, func(written int, now time.Time) { sample(written, now) })
	s := sample(b.N, end)
	b.ReportMetric(float64(s.FileBytes)/float64(max(s.Unexpired, 1)), "B/live-token")
	b.ReportMetric(float64(s.TokenBytes)/float64(max(s.Tokens, 1)), "B/token-record")
	b.ReportMetric(float64(s.AuditBytes)/float64(max(s.AuditRecords, 1)), "B/audit-record")
}
