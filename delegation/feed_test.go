package delegation_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
)

func TestFeedTimesOutEmpty(t *testing.T) {
	env := dt.New(t, dt.Options{})
	rs, _ := env.Svc.Registration("no-grants-rs")
	snap, err := env.Svc.RevocationFeed(context.Background(), rs, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := env.Svc.RevocationFeed(context.Background(), rs, snap.Cursor, 10*time.Millisecond)
	if err != nil || f.Reset || len(f.Revocations) != 0 || f.Cursor != snap.Cursor {
		t.Fatalf("timed-out poll = %+v, %v", f, err)
	}
}

// TestManyLongPollsShareOneWakeup holds 500 long polls, revokes once, and
// checks that every poll returns the revocation and that no goroutine
// outlives them.
func TestManyLongPollsShareOneWakeup(t *testing.T) {
	env := dt.New(t, dt.Options{})
	rs, _ := env.Svc.Registration("no-grants-rs")
	snap, _ := env.Svc.RevocationFeed(context.Background(), rs, "", 0)
	root := env.Mint(t, "orchestrator", nil)
	before := runtime.NumGoroutine()

	const n = 500
	var wg sync.WaitGroup
	got := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := env.Svc.RevocationFeed(context.Background(), rs, snap.Cursor, 20*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- len(f.Revocations)
		}()
	}
	ops, _ := env.Svc.Registration("ops")
	if _, err := env.Svc.AdminRevoke(context.Background(), ops.ID, delegation.RevokeTarget{JTI: env.Claims(t, root).ID}, "test"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(got)
	for k := range got {
		if k != 1 {
			t.Fatalf("a poll returned %d revocations", k)
		}
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("goroutines: %d before the polls, %d after", before, after)
	}
}

func TestCloseReleasesLongPolls(t *testing.T) {
	env := dt.New(t, dt.Options{})
	rs, _ := env.Svc.Registration("no-grants-rs")
	snap, _ := env.Svc.RevocationFeed(context.Background(), rs, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = env.Svc.RevocationFeed(context.Background(), rs, snap.Cursor, 20*time.Second)
	}()
	env.Svc.Close()
	<-done // would take 20 s if Close did not release it
	if _, err := env.Svc.RevocationFeed(context.Background(), rs, snap.Cursor, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}
