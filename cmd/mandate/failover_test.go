package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestFailoverToSynchronousStandby: two replicas on a primary with a
// synchronous streaming standby, through a DSN naming both hosts with
// target_session_attrs=read-write. Mid-load the standby stops receiving
// (its WAL receiver paused), so commits wait for it, and then the primary
// crashes (immediate shutdown) with commits waiting: the window in which
// asynchronous replication loses acknowledged writes. The replicas answer
// 503 with Retry-After, never a success, until the standby is promoted;
// then they follow it by themselves, and every token and revocation they
// acknowledged — on the old primary or the new — is there and in force at
// both, and in the feed from a cursor taken before: with synchronous
// replication a failover loses nothing acknowledged. Each replica's long
// polls then wake on revocations through the other.
func TestFailoverToSynchronousStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two servers and two PostgreSQL servers as child processes")
	}
	primary := pgtest.Own(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name, err := primary.CreateDatabase(ctx, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	standby := pgtest.OwnStandby(t, primary)
	if err := primary.RequireSynchronous(ctx); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("host=%s,%s user=%s dbname=%s sslmode=disable target_session_attrs=read-write",
		primary.Dir(), standby.Dir(), pgtest.Superuser, name)
	rs := startReplicas(t, dsn, "r1", "r2")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	cursor := followFeed(t, rs[0], "", nil)
	led := newCrashLedger()
	l := startLoad(t, rs, led, seed)
	defer l.cancel()

	l.awaitWrites(t, clusterPhaseWrites, "on the primary")
	resume, err := standby.PauseWALReceiver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer resume()
	paused := l.writes.Load()
	waiting := commitsWaitingForStandby(t, primary, name)
	l.goingDown()
	primary.Crash()
	l.db.Store(pgDown)
	onPrimary := l.writes.Load()
	resume()
	l.awaitRefusals(t, 5)
	expectDown(t, rs)
	l.db.Store(pgRecovering)
	t0 := time.Now()
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(t0)
	took := awaitReady(t, rs)
	t.Logf("primary crashed with %d sessions waiting on the paused standby (a commit, or its locks), %d writes acknowledged since the pause; standby promoted in %v, both replicas ready on it %v later",
		waiting, onPrimary-paused, promoted.Round(time.Millisecond), took.Round(time.Millisecond))
	l.db.Store(pgUp)
	l.awaitWrites(t, clusterPhaseWrites, "on the promoted standby")
	l.stop(t)
	t.Logf("load: %d writes acknowledged, %d of them before the primary crashed (%d tokens, %d revocations in all), %d introspections answered, %d 503s (%d once both replicas were ready again)",
		l.writes.Load(), onPrimary, len(led.toks), len(led.revoked), l.reads.Load(), l.refusals.Load(), l.lateRefusals.Load())
	stopIfFailed(t, rs)
	verifyCluster(t, rs, led)
	expectFeedHasAll(t, rs, cursor, led)
	expectFeedWakes(t, rs)
	expectNoRaceReports(t, rs)
}

// commitsWaitingForStandby waits until a commit in database on c waits
// for the synchronous standby (wait event SyncRep), and returns how many
// sessions wait for it, or for the locks of one that does (the revocation
// log's counter, an audit chain).
func commitsWaitingForStandby(t *testing.T, c *pgtest.Cluster, database string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var syncRep, waiting int
	pollUntil(t, "a commit waiting for the standby", func() bool {
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE wait_event = 'SyncRep'), count(*) FILTER (WHERE wait_event = 'SyncRep' OR wait_event_type = 'Lock')
			FROM pg_stat_activity WHERE datname = $1 AND state = 'active'`, database).Scan(&syncRep, &waiting)
		if err != nil {
			t.Fatal(err)
		}
		return syncRep > 0
	})
	return waiting
}
