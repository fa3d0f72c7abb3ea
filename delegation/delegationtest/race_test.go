package delegationtest_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
	"github.com/mandate-auth/mandate/tokens"
)

// TestExchangeRacingRevocationAcrossReplicas: a task token is revoked
// through replica A while replicas B and C exchange it (and exchange what
// they get once more) as fast as they can. Afterwards no child is usable:
// introspection answers inactive at every replica, and a verifier
// following C's feed refuses every one. No exchange that began after the
// revocation was acknowledged succeeds, every refusal is invalid_request
// (never a server error), and a child the store refused is never recorded:
// the store checks the lineage against the revocations in the transaction
// that would record it, under the revocation counter's shared lock.
func TestExchangeRacingRevocationAcrossReplicas(t *testing.T) {
	rs, dsn := replicasOn(t, pgtest.Need(t).NewDatabase(t), 3, dt.Options{})
	a, exchangers := rs[0], rs[1:]
	var parents []string
	const rounds, workers = 12, 3

	var issued []string // every token an exchange returned
	var lateWins, storeRefusals atomic.Int64
	for round := range rounds {
		parent := a.Mint(t, "orchestrator", nil)
		parents = append(parents, a.Claims(t, parent).ID)
		var mu sync.Mutex
		var revokedAt atomic.Pointer[time.Time] // when the revocation was acknowledged
		var revoking atomic.Bool                // set as the revocation is sent
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, env := range exchangers {
			for range workers {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						began := time.Now()
						r := env.Exchange(t, "orchestrator", parent, "", nil)
						switch {
						case r.Status == http.StatusOK:
							child := r.String("access_token")
							if at := revokedAt.Load(); at != nil && began.After(*at) {
								lateWins.Add(1)
							}
							mu.Lock()
							issued = append(issued, child)
							mu.Unlock()
							// One more hop, racing too.
							if g := env.Exchange(t, "orchestrator", child, "", nil); g.Status == http.StatusOK {
								mu.Lock()
								issued = append(issued, g.String("access_token"))
								mu.Unlock()
							} else if g.Error() != oauth.CodeInvalidRequest {
								t.Errorf("a grandchild's exchange: %d %s", g.Status, g.Raw)
							}
						case r.Error() == oauth.CodeInvalidRequest:
							if strings.Contains(r.String("error_description"), "while the exchange was decided") {
								storeRefusals.Add(1)
							}
							if !revoking.Load() {
								t.Errorf("refused before the revocation: %s", r.Raw)
							}
						default:
							t.Errorf("an exchange during the race: %d %s", r.Status, r.Raw)
						}
					}
				})
			}
		}
		time.Sleep(time.Duration(5+round*3) * time.Millisecond) // the exchanges run
		revoking.Store(true)
		a.Revoke(t, "orchestrator", parent)
		now := time.Now()
		revokedAt.Store(&now)
		time.Sleep(30 * time.Millisecond) // and go on, refused
		close(stop)
		wg.Wait()
	}
	t.Logf("%d rounds: %d tokens issued before the revocations; %d exchanges refused by the store's own check (the race's window), %d won after a revocation was acknowledged",
		rounds, len(issued), storeRefusals.Load(), lateWins.Load())
	if n := lateWins.Load(); n != 0 {
		t.Errorf("%d exchanges that began after the revocation was acknowledged succeeded", n)
	}
	if len(issued) == 0 {
		t.Fatal("no exchange succeeded before a revocation: the race was not run")
	}

	// Never recorded after the revocation: every token stored below a
	// revoked parent committed before the parent's revocation did.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var below, late int
	err = conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE pg_xact_commit_timestamp(t.xmin) > pg_xact_commit_timestamp(r.xmin))
		FROM mandate_tokens t JOIN mandate_revocations r ON (t.record::jsonb -> 'lineage') ? r.jti
		WHERE r.jti = ANY($1)`, parents).Scan(&below, &late)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens recorded below the revoked parents", below)
	if late != 0 || below == 0 {
		t.Errorf("%d of %d tokens below a revoked parent were recorded after its revocation committed", late, below)
	}

	// No child is usable anywhere.
	for _, tok := range issued {
		for _, env := range rs {
			if r := env.Introspect(t, "no-grants-rs", tok); r.Status != http.StatusOK || r.JSON["active"] != false {
				t.Fatalf("a child of a revoked token at replica %s: %d %s", env.Base, r.Status, r.Raw)
			}
		}
	}
	c := rs[2]
	keys, err := tokens.NewSetResolver(c.Get(t, c.Base+"/.well-known/jwks.json").Raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := verifier.Config{Issuer: c.URL, Audience: "https://db.example", ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"), Now: c.Clock.Now}
	feed, err := verifier.NewFeed(cfg, c.Endpoint(t, "revocation_feed_endpoint"), func([]string) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(cfg, keys, feed)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(context.Background(), a.Mint(t, "orchestrator", nil)); err != nil {
		t.Fatalf("the verifier refuses a live token: %v", err)
	}
	for _, tok := range issued {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatal("the verifier accepts a child of a revoked token")
		}
	}
}
