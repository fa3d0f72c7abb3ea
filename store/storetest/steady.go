package storetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// The steady load of the backends' BenchmarkBytesPerToken, on a simulated
// clock: each simulated minute 2,000 tokens are written that live 5
// minutes, so 10,000 are live at any time once the first five minutes have
// passed.
const (
	SteadyStep    = time.Minute
	SteadyTTL     = 5 * time.Minute
	SteadyPerStep = 2_000
)

// jtiEncoding is the service's order-preserving alphabet (delegation's
// newJTI), so the jtis written here sort by issuance as real ones do.
var jtiEncoding = base64.NewEncoding("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~").WithPadding(base64.NoPadding)

// SteadyLoad writes b.N tokens into db under the steady load — tasks of a
// root and a child delegated from it, each token with its audit record as
// issuance writes them, by 32 writers — while collector collects
// (store.RunGC every 50 ms on the simulated clock). Under -v it calls
// sample every 10,000 tokens with the timer stopped. Once the tokens are
// written it stops the collection, runs one last pass (what a pass would
// collect by then) and returns the simulated time, with the timer stopped.
func SteadyLoad(b *testing.B, db store.Tokens, collector store.Collector, sample func(written int, now time.Time)) time.Time {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	gcCtx, stopGC := context.WithCancel(ctx)
	var gc sync.WaitGroup
	gc.Go(func() {
		store.RunGC(gcCtx, collector, 50*time.Millisecond, now, func(_ store.GCResult, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	})
	var seq atomic.Uint64
	jti := func(t time.Time) string {
		// 30 characters sorted by issuance, as the service's jtis are.
		var raw [22]byte
		binary.BigEndian.PutUint64(raw[:8], uint64(t.UnixMilli())<<16)
		binary.BigEndian.PutUint64(raw[6:14], seq.Add(1))
		_, _ = rand.Read(raw[14:])
		return jtiEncoding.EncodeToString(raw[:])
	}
	put := func(rec *store.TokenRecord, client, grant string, t time.Time) {
		ev := &store.AuditEvent{Time: t, Type: store.AuditIssued, Client: client, Grant: grant, JTI: rec.JTI, Holder: rec.Holder,
			Subject: rec.Subject, Scope: rec.Scope, Root: rec.JTI, Depth: len(rec.Lineage)}
		if len(rec.Lineage) > 0 {
			ev.Root = rec.Lineage[0]
		}
		if err := db.PutToken(ctx, rec, ev); err != nil {
			b.Error(err)
		}
	}
	// task writes a root and, when two tokens are asked for, a child of it.
	task := func(tokens int) {
		t := now()
		root := &store.TokenRecord{JTI: jti(t), Lineage: []string{}, Subject: "orchestrator", Holder: "orchestrator",
			Scope: "db:read:* tools:search", Audience: []string{"https://db.example", "https://tools.example"}, IssuedAt: t, ExpiresAt: t.Add(SteadyTTL)}
		put(root, "orchestrator", "client_credentials", t)
		if tokens == 2 {
			child := &store.TokenRecord{JTI: jti(t), Parent: root.JTI, Lineage: []string{root.JTI}, Subject: "orchestrator", Holder: "researcher",
				Act: &jwt.Actor{Subject: "researcher"}, Scope: "db:read:orders", Audience: []string{"https://db.example"}, IssuedAt: t, ExpiresAt: t.Add(SteadyTTL)}
			put(child, "orchestrator", "urn:ietf:params:oauth:grant-type:token-exchange", t)
		}
	}

	b.ResetTimer()
	for written := 0; written < b.N; {
		if written > 0 {
			clock.Add(int64(SteadyStep))
		}
		n := min(SteadyPerStep, b.N-written)
		work := make(chan int, n/2+1)
		for i := 0; i < n; i += 2 {
			work <- min(2, n-i)
		}
		close(work)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for tokens := range work {
					task(tokens)
				}
			})
		}
		wg.Wait()
		written += n
		if testing.Verbose() && written%10_000 == 0 && written < b.N {
			b.StopTimer()
			sample(written, now())
			b.StartTimer()
		}
	}
	b.StopTimer()
	stopGC()
	gc.Wait()
	if _, err := collector.GC(now()); err != nil { // what a pass would collect by now
		b.Fatal(err)
	}
	return now()
}
