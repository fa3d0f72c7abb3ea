package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
	"github.com/mandate-auth/mandate/tokens"
)

// events records what Listen reports, one channel per event.
type events struct {
	revocations, keys, suspensions chan struct{}
	up, down                       chan error
}

func newEvents() *events {
	return &events{revocations: make(chan struct{}, 100), keys: make(chan struct{}, 100), suspensions: make(chan struct{}, 100),
		up: make(chan error, 100), down: make(chan error, 100)}
}

func (e *events) handlers() postgres.Events {
	put := func(ch chan struct{}) func() { return func() { ch <- struct{}{} } }
	return postgres.Events{Revocations: put(e.revocations), SigningKeys: put(e.keys), Suspensions: put(e.suspensions),
		Connection: func(up bool, err error) {
			if up {
				e.up <- nil
			} else {
				e.down <- err
			}
		}}
}

// drain empties ch.
func drain[T any](ch chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// within waits for ch, failing the test after d.
func within[T any](t *testing.T, what string, ch chan T, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-ch:
		return time.Since(start)
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		return 0
	}
}

// TestListenAcrossReplicas: a replica listening learns within milliseconds
// of a revocation, a signing key and a suspension another replica commits;
// when it (re)connects it reports every event, since notifications sent
// while it was away are lost.
func TestListenAcrossReplicas(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	a, b := open(t, dsn, "a", postgres.Options{}), open(t, dsn, "b", postgres.Options{})
	ev := newEvents()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.Listen(lctx, ev.handlers())
	within(t, "up", ev.up, 5*time.Second)
	for _, ch := range []chan struct{}{ev.revocations, ev.keys, ev.suspensions} {
		within(t, "an event on connecting", ch, time.Second)
	}
	drain(ev.revocations)

	exp := time.Now().Add(time.Hour)
	var worst time.Duration
	for i := range 20 {
		start := time.Now()
		if _, _, err := a.Revoke(ctx, store.Revocation{JTI: fmt.Sprintf("r%d", i), ExpiresAt: exp}, nil); err != nil {
			t.Fatal(err)
		}
		within(t, "a revocation", ev.revocations, 5*time.Second)
		worst = max(worst, time.Since(start))
	}
	t.Logf("revoke at a → b notified: worst of 20 %v (the revoke's commit included)", worst)
	if worst > 500*time.Millisecond {
		t.Errorf("a notification took %v", worst)
	}
	// Revoking what is revoked writes nothing and notifies no one.
	if _, created, err := a.Revoke(ctx, store.Revocation{JTI: "r0", ExpiresAt: exp}, nil); err != nil || created {
		t.Fatal(created, err)
	}
	select {
	case <-ev.revocations:
		t.Error("a revocation that wrote nothing notified")
	case <-time.After(200 * time.Millisecond):
	}

	if err := a.Suspend(ctx, "agent", exp); err != nil {
		t.Fatal(err)
	}
	within(t, "a suspension", ev.suspensions, 5*time.Second)
	ks, _ := tokens.NewSealedKeyStore(a, kek)
	key, _ := tokens.GenerateKey(tokens.AlgEdDSA, t0)
	if err := ks.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	within(t, "a signing key", ev.keys, 5*time.Second)

	// Closing the store stops its listener.
	b.Close()
	drain(ev.revocations)
	if _, _, err := a.Revoke(ctx, store.Revocation{JTI: "after", ExpiresAt: exp}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.revocations:
		t.Error("a closed store still listens")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestListenerReconnects: when the database goes away the listener says so
// and reports a revocation event (whoever waits reads again, and finds the
// store unavailable); when it is back, it reconnects by itself and reports
// every event again.
func TestListenerReconnects(t *testing.T) {
	c := pgtest.Own(t)
	dsn := c.NewDatabase(t)
	a, b := open(t, dsn, "a", postgres.Options{}), open(t, dsn, "b", postgres.Options{})
	ev := newEvents()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.Listen(lctx, ev.handlers())
	within(t, "up", ev.up, 5*time.Second)
	drain(ev.revocations)
	drain(ev.keys)

	c.Stop()
	within(t, "down", ev.down, 5*time.Second)
	within(t, "a revocation event on losing the connection", ev.revocations, time.Second)
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	if err := c.Resume(rctx); err != nil {
		t.Fatal(err)
	}
	within(t, "up again", ev.up, 10*time.Second)
	within(t, "keys re-read on reconnecting", ev.keys, time.Second)
	drain(ev.revocations)
	deadline := time.Now().Add(10 * time.Second)
	for a.Ping() != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := a.Revoke(ctx, store.Revocation{JTI: "after", ExpiresAt: time.Now().Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	within(t, "a revocation after reconnecting", ev.revocations, 5*time.Second)
}

// TestFirstUseAcrossReplicas: a single-use value is recorded once whoever
// records it, concurrently at several replicas or twice in one group
// commit; it is forgotten only once expired and collected.
func TestFirstUseAcrossReplicas(t *testing.T) {
	dsn := pgtest.Need(t).NewDatabase(t)
	a, b := open(t, dsn, "a", postgres.Options{}), open(t, dsn, "b", postgres.Options{})
	exp := time.Now().Add(time.Minute)
	for round := range 20 {
		key := fmt.Sprintf("client/jkt/jti-%d", round)
		var firsts atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			db := a
			if i%2 == 1 {
				db = b
			}
			wg.Go(func() {
				first, err := db.FirstUse(ctx, store.ReplayDPoP, key, exp)
				if err != nil {
					t.Error(err)
				}
				if first {
					firsts.Add(1)
				}
			})
		}
		wg.Wait()
		if n := firsts.Load(); n != 1 {
			t.Fatalf("round %d: %d first uses of one value, want 1", round, n)
		}
	}
	// Kinds are namespaces.
	if first, err := a.FirstUse(ctx, store.ReplayAssertion, "client/jkt/jti-0", exp); err != nil || !first {
		t.Errorf("the same key in another kind: %v %v", first, err)
	}
	// Collected once expired, not before.
	past := time.Now().Add(-time.Second)
	if first, _ := a.FirstUse(ctx, store.ReplayDPoP, "old", past); !first {
		t.Fatal("a new value refused")
	}
	if _, err := b.GC(time.Now()); err != nil {
		t.Fatal(err)
	}
	if first, _ := b.FirstUse(ctx, store.ReplayDPoP, "old", exp); !first {
		t.Error("an expired, collected value is still remembered")
	}
	if first, _ := b.FirstUse(ctx, store.ReplayDPoP, "client/jkt/jti-0", exp); first {
		t.Error("a live value was collected")
	}
}
