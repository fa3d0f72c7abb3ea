package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
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
