package bolt_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
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
// root first, then other roots of the same store, serially (one commit and
// fsync each). The per-revocation cost must not depend on the size.
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
				Clients: []delegation.Registration{{ID: "ops", Secret: delegation.NewPlainSecret("x"), Role: delegation.RoleAdmin}}}, keys, db)
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			// Roots, each with size descendants written straight to the store
			// (a two-level tree: children of the root, grandchildren under them).
			roots := make([]string, max(b.N, 1))
			for i := range roots {
				roots[i] = fmt.Sprintf("root-%d", i)
				if err := db.PutToken(ctx, benchRecord(roots[i], "", nil, now.Add(time.Hour)), nil); err != nil {
					b.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			work := make(chan int, 1024)
			for range 64 {
				wg.Go(func() {
					for j := range work {
						child := fmt.Sprintf("c-%d", j/100)
						rec := benchRecord(fmt.Sprintf("g-%d", j), child, []string{roots[0], child}, now.Add(time.Hour))
						if j%100 == 0 {
							rec = benchRecord(child, roots[0], []string{roots[0]}, now.Add(time.Hour))
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
			i := 0
			b.ResetTimer()
			for b.Loop() {
				if _, err := svc.AdminRevoke(ctx, "ops", delegation.RevokeTarget{JTI: roots[i%len(roots)]}, "bench"); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
